"""Summarization, scored with ROUGE-1/2/L/Lsum (F1, Porter-stemmed), beside a lead-N baseline."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.tasks.seq2seq import SOURCE, TARGET, Seq2SeqTask, mean_words

if TYPE_CHECKING:
    from pipeline.bootstrap import ExampleStatistics

logging.getLogger("absl").setLevel(logging.WARNING)  # rouge_score logs each scorer it builds

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
#: A sentence ends at . ! or ? (optionally closed by a quote or bracket) before white space.
SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+")


def sentences(text: str) -> list[str]:
    return [part.strip() for part in SENTENCE_END.split(text.strip()) if part.strip()]


def lead(text: str, count: int) -> str:
    """The first `count` sentences: the baseline that news summaries must beat."""
    return " ".join(sentences(text)[:count])


def rouge_per_example(hypotheses: list[str], references: list[str]) -> dict[str, list[float]]:
    """F1 x 100 of each example; ROUGE-Lsum sees one sentence per line."""
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    totals: dict[str, list[float]] = {name: [] for name in ROUGE_TYPES}
    for hypothesis, reference in zip(hypotheses, references, strict=True):
        scores = scorer.score("\n".join(sentences(reference)), "\n".join(sentences(hypothesis)))
        for name in ROUGE_TYPES:
            totals[name].append(scores[name].fmeasure * 100)
    return totals


def rouge(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Mean F1 x 100 over examples."""
    return {name: float(np.mean(values)) for name, values
            in rouge_per_example(hypotheses, references).items()}


class Summarization(Seq2SeqTask):
    metric_names = (*ROUGE_TYPES, "gen_words", "loss")
    pipeline_tag = "summarization"

    def metrics(self, outputs: list[str], references: list[str],
                manifest: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
        scalars = {**rouge(outputs, references), "gen_words": mean_words(outputs)}
        return scalars, {"reference_words": mean_words(references)}

    def reference_scores(self, raw_test: pd.DataFrame) -> dict[str, float]:
        """ROUGE of the first `task.lead_sentences` sentences of each article, as `lead_*`."""
        leads = [lead(text, self.config.lead_sentences) for text in raw_test[SOURCE]]
        scores = {**rouge(leads, list(raw_test[TARGET])), "gen_words": mean_words(leads)}
        return {f"lead_{name}": value for name, value in scores.items()}

    def example_statistics(self, table: pd.DataFrame,
                           manifest: dict[str, Any]) -> dict[str, ExampleStatistics]:
        from pipeline import example_statistics as statistics

        hypotheses, references = self.texts_of(table)
        per_example = rouge_per_example(hypotheses, references)
        return {**{name: statistics.mean_score(scores) for name, scores in per_example.items()},
                "gen_words": statistics.mean_score([len(text.split()) for text in hypotheses])}
