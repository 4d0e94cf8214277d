"""What masked and causal language modelling share: texts concatenated and cut into blocks
of the model's `max_length`, scored by perplexity before and after training.

Training blocks drop the incomplete tail of each batch of texts (the usual recipe);
validation and test keep it, so every held-out token is scored.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Iterator
from itertools import chain
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipeline.config import DatasetConfig
from pipeline.data import column
from pipeline.errors import DataError
from pipeline.tasks.base import TaskAdapter, without_blank

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from pipeline.bootstrap import ExampleStatistics
    from pipeline.evaluation import TokenScores

TEXT = "text"


def blocks(encoded: dict[str, list[list[Any]]], size: int,
           keep_tail: bool) -> dict[str, list[list[Any]]]:
    """Every field of a batch of encoded texts joined end to end and cut into `size` pieces."""
    joined = {key: list(chain.from_iterable(values)) for key, values in encoded.items()}
    total = len(joined["input_ids"])
    end = total if keep_tail else total - total % size
    return {key: [values[start:start + size] for start in range(0, end, size)]
            for key, values in joined.items()}


class LanguageModeling(TaskAdapter):
    metric_names = ("perplexity", "loss", "token_accuracy")
    lower_is_better = ("perplexity", "loss")
    validation_metric_names = ("loss",)
    needs_label_column = False
    reports_truncation = False  # every block is cut at max_length by design
    #: The prediction table's columns.
    prediction_columns: tuple[str, ...]
    #: Position t predicts token t + 1 (causal) rather than token t (masked).
    causal: bool

    def prepare(self, frame: pd.DataFrame, cfg: DatasetConfig, where: str) -> pd.DataFrame:
        if len(cfg.text_columns) != 1:
            raise DataError(f"dataset.text_columns: {self.config.name} reads one text column, got "
                            f"{cfg.text_columns}")
        texts = column(frame, cfg.text_columns[0], where).astype("string").str.strip()
        if cfg.label_column and cfg.drop_labels:  # e.g. plot summaries among reviews
            texts = texts[~column(frame, cfg.label_column, where).astype(str).isin(cfg.drop_labels)]
        return without_blank(pd.DataFrame({TEXT: texts}), texts.fillna("").eq(""), where,
                             "empty text")

    def describe(self, splits: dict[str, pd.DataFrame]) -> dict[str, Any]:
        sizes = {split: {"texts": len(frame), "words": int(frame[TEXT].str.split().str.len().sum())}
                 for split, frame in splits.items()}
        return {"labels": [], "label_counts": {}, "lengths": sizes}

    def head_config(self, manifest: dict[str, Any]) -> dict[str, Any]:
        return {}

    def texts(self, frame: pd.DataFrame) -> Iterator[str]:
        yield from frame[TEXT]

    def inputs(self, frame: pd.DataFrame) -> pd.Series:
        return frame[TEXT].str.split().str.join(" ")

    @abstractmethod
    def encode_texts(self, texts: list[str],
                     tokenizer: PreTrainedTokenizerBase) -> dict[str, list[list[Any]]]:
        """Token ids of each text, with whatever the collator needs besides."""

    def tokenize(self, split: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int,
                 manifest: dict[str, Any], training: bool) -> Dataset:
        def encode(batch: dict[str, list]) -> dict[str, list]:
            return blocks(self.encode_texts(batch[TEXT], tokenizer), max_length,
                          keep_tail=not training)

        blocked = split.map(encode, batched=True, remove_columns=split.column_names,
                            desc="tokenize into blocks")
        return self.add_labels(blocked, tokenizer, training)

    @abstractmethod
    def add_labels(self, split: Dataset, tokenizer: PreTrainedTokenizerBase,
                   training: bool) -> Dataset:
        """Blocks with the `labels` the model is scored on, where they are fixed in advance:
        held-out blocks always, so every evaluation scores the same tokens."""

    def evaluate(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, split: Dataset,
                 manifest: dict[str, Any], batch_size: int,
                 desc: str) -> tuple[dict[str, float], dict[str, Any], list[dict[str, Any]]]:
        """Perplexity over the split's labelled tokens, and rows to read (see `examples`)."""
        from pipeline.evaluation import token_scores

        scores = token_scores(model, split, self.collator(tokenizer), batch_size, desc,
                              causal=self.causal)
        scalars, report = self.metrics(scores, None, manifest)
        rows = self.examples(model, tokenizer, split, scores)
        report["examples"] = rows[:5]
        return scalars, report, rows

    @abstractmethod
    def examples(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 split: Dataset, scores: TokenScores) -> list[dict[str, Any]]:
        """The prediction table's rows."""

    def metrics(self, scores: TokenScores, references: Any,
                manifest: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
        if not scores.counts.sum():
            raise DataError("language modelling: no token of the split was scored (too few or "
                            "too short texts?); perplexity needs at least one")
        loss = scores.mean_loss
        return ({"perplexity": math.exp(min(loss, 700.0)), "loss": loss,
                 "token_accuracy": scores.accuracy},
                {"scored_tokens": int(scores.counts.sum()), "blocks": len(scores.counts)})

    def validation_metrics(self, manifest: dict[str, Any]) -> None:
        return None

    def example_statistics(self, table: pd.DataFrame,
                           manifest: dict[str, Any]) -> dict[str, ExampleStatistics]:
        """Per scored block (the prediction table holds every block's loss sum, scored tokens
        and hits)."""
        from pipeline import example_statistics as statistics

        if "loss_sum" not in table:
            return {}
        losses, counts, hits = (table[name].to_numpy(dtype=float)
                                for name in ("loss_sum", "scored_tokens", "hits"))
        return {"perplexity": statistics.perplexity(losses, counts),
                "loss": statistics.ratio(losses, counts),
                "token_accuracy": statistics.ratio(hits, counts)}

    def prediction_table(self, raw: pd.DataFrame, outputs: list[dict[str, Any]],
                         manifest: dict[str, Any], labels: Any) -> pd.DataFrame:
        return pd.DataFrame(outputs, columns=list(self.prediction_columns))
