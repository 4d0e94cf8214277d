"""Translation, scored with sacreBLEU: corpus BLEU (with its signature) and chrF."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.tasks.seq2seq import Seq2SeqTask, mean_words

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.bootstrap import ExampleStatistics


class Translation(Seq2SeqTask):
    metric_names = ("bleu", "chrf", "gen_words", "loss")
    pipeline_tag = "translation"

    def metrics(self, outputs: list[str], references: list[str],
                manifest: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
        """sacreBLEU's defaults (13a tokenization, case-sensitive), as its command line scores
        the exported hypotheses against the references."""
        from sacrebleu.metrics import BLEU, CHRF

        bleu, chrf = BLEU(), CHRF()
        bleu_score = bleu.corpus_score(outputs, [references])
        chrf_score = chrf.corpus_score(outputs, [references])
        scalars = {"bleu": float(bleu_score.score), "chrf": float(chrf_score.score),
                   "gen_words": mean_words(outputs)}
        report = {"bleu": str(bleu_score), "bleu_signature": str(bleu.get_signature()),
                  "chrf_signature": str(chrf.get_signature()),
                  "reference_words": mean_words(references)}
        return scalars, report

    def example_statistics(self, table: pd.DataFrame,
                           manifest: dict[str, Any]) -> dict[str, ExampleStatistics]:
        from pipeline import example_statistics as statistics

        hypotheses, references = self.texts_of(table)
        return {"bleu": statistics.bleu(hypotheses, references),
                "chrf": statistics.chrf(hypotheses, references),
                "gen_words": statistics.mean_score([len(text.split()) for text in hypotheses])}
