"""The cost table and the extra-test-set table of summary.md, from a results table."""

from __future__ import annotations

import pandas as pd

from pipeline.comparison import summary_table
from pipeline.costs import extra_sets, variant_sections

ROWS = [  # model, seed, peft, trainable, share, weights MB, seconds, peak MB, extra base/finetuned
    ("full", 1, "none", 22_700_000, 1.0, 86.7, 100.0, 1500.0, 0.60, 0.70),
    ("full", 2, "none", 22_700_000, 1.0, 86.7, 110.0, 1520.0, 0.62, 0.66),
    ("lora", 1, "lora r=8 alpha=16", 74_498, 0.00328, 0.29, 80.0, 1100.0, 0.60, 0.64),
    ("lora", 2, "lora r=8 alpha=16", 74_498, 0.00328, 0.29, 84.0, 1110.0, 0.62, 0.65),
]


def results(with_extra: bool = True) -> pd.DataFrame:
    table = pd.DataFrame([{
        "status": "success", "model": model, "seed": seed, "peft": peft,
        "base_accuracy": 0.5, "finetuned_accuracy": 0.8, "improvement_accuracy": 0.3,
        "train_trainable_parameters": trainable, "train_trainable_share": share,
        "train_weights_mb": weights, "train_seconds": seconds, "train_peak_rss_mb": peak,
        "base_news_accuracy": base, "finetuned_news_accuracy": tuned,
        "improvement_news_accuracy": tuned - base}
        for model, seed, peft, trainable, share, weights, seconds, peak, base, tuned in ROWS])
    return table if with_extra else table.drop(columns=[c for c in table if "_news_" in c])


def test_the_cost_table_holds_each_variants_means():
    table = results()
    text = variant_sections(table, summary_table(table), "accuracy", lower_is_better=False)
    assert "## Cost of fine-tuning (mean ± std over successful seeds)" in text
    assert "| full | none | 22,700,000 | 100% | 86.7 | 105.0 ± 7.1 | 1510 ± 14 |" in text
    assert "| lora | lora r=8 alpha=16 | 74,498 | 0.328% | 0.29 | 82.0 ± 2.8 | 1105.0 ± 7.1 |" in text


def test_extra_test_sets_are_found_by_their_columns_and_tabled():
    table = results()
    assert extra_sets(table, "accuracy") == ["news"]
    text = variant_sections(table, summary_table(table), "accuracy", lower_is_better=False)
    assert "## Extra test sets: accuracy (higher is better)" in text
    assert ("| lora | news | 0.610 ± 0.014 | 0.6450 ± 0.0071 | +0.0350 ± 0.0071 | "
            "[-0.02853, +0.09853] |") in text


def test_tables_without_those_columns_add_nothing():
    table = results(with_extra=False).drop(columns=["train_peak_rss_mb"])
    assert extra_sets(table, "accuracy") == []
    assert variant_sections(table, summary_table(table), "accuracy", False) == ""
