"""The comparison across seeds, checked against an independent computation from results.csv:
the csv module, `statistics`, and the t distribution by hand."""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path

import pandas as pd
import pytest
from scipy.stats import t as student_t

from pipeline.comparison import paired_comparison, summary_markdown, summary_table

# model, seed, status, base_accuracy, finetuned_accuracy, base_loss, finetuned_loss, train_seconds
CELLS = [
    ("mini", 1, "success", 0.50, 0.80, 0.70, 0.40, 60.0),
    ("mini", 2, "success", 0.55, 0.83, 0.69, 0.35, 62.5),
    ("mini", 3, "success", 0.45, 0.81, 0.71, 0.38, 59.0),
    ("big", 1, "success", 0.52, 0.75, 0.72, 0.30, 120.0),
    ("big", 2, "success", 0.49, 0.78, 0.70, 0.45, 130.0),
    ("big", 3, "success", 0.51, 0.74, 0.69, 0.50, 125.0),
    ("tiny", 1, "success", 0.48, 0.70, 0.73, 0.30, 20.0),
    ("tiny", 2, "failed", 0.47, None, 0.74, None, None),
    ("tiny", 3, "success", 0.53, 0.79, 0.68, 0.20, 21.0),
    ("dead", 1, "failed", None, None, None, None, None),
]
MODELS = ["mini", "big", "tiny", "dead"]
NUMERIC = ["base_accuracy", "finetuned_accuracy", "improvement_accuracy", "base_loss",
           "finetuned_loss", "improvement_loss", "train_seconds"]


@pytest.fixture
def results_csv(tmp_path) -> Path:
    """A results.csv as the report stage writes it: a failed seed, and a model with no success."""
    path = tmp_path / "results.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["status", "model", "seed", *NUMERIC, "steps", "error"])
        for model, seed, status, base_acc, acc, base_loss, loss, seconds in CELLS:
            gain_acc = None if acc is None else acc - base_acc
            gain_loss = None if loss is None else loss - base_loss
            writer.writerow([status, model, seed, base_acc, acc, gain_acc, base_loss, loss,
                             gain_loss, seconds, 10, "" if status == "success" else "boom"])
    return path


@pytest.fixture
def results(results_csv) -> pd.DataFrame:
    return pd.read_csv(results_csv)


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def successful_values(rows: list[dict[str, str]], model: str, column: str) -> dict[int, float]:
    return {int(row["seed"]): float(row[column]) for row in rows
            if row["model"] == model and row["status"] == "success" and row[column] != ""}


def expected_interval(values: list[float]) -> tuple[float, float]:
    mean = statistics.mean(values)
    half = student_t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean - half, mean + half


def hand_paired_test(differences: list[float]) -> float:
    """Two-sided p-value of the paired t statistic, from the differences alone."""
    n = len(differences)
    statistic = statistics.mean(differences) / (statistics.stdev(differences) / math.sqrt(n))
    return 2 * student_t.sf(abs(statistic), n - 1)


def test_summary_table_matches_an_independent_computation(results, results_csv):
    summary = summary_table(results)
    rows = csv_rows(results_csv)
    assert list(summary["model"]) == MODELS  # order of appearance, not alphabetical
    assert list(summary["seeds"]) == [3, 3, 3, 1]
    assert list(summary["failed"]) == [0, 0, 1, 1]
    assert not any(column.startswith(("steps", "seed_")) for column in summary.columns)
    for _, row in summary.iterrows():
        for column in NUMERIC:
            values = list(successful_values(rows, row["model"], column).values())
            if not values:
                assert all(math.isnan(row[f"{column}_{name}"]) for name in
                           ("mean", "std", "ci95_low", "ci95_high", "min", "max"))
                continue
            assert row[f"{column}_mean"] == pytest.approx(statistics.mean(values))
            assert row[f"{column}_min"] == pytest.approx(min(values))
            assert row[f"{column}_max"] == pytest.approx(max(values))
            if len(values) < 2:
                assert math.isnan(row[f"{column}_std"]) and math.isnan(row[f"{column}_ci95_low"])
                continue
            assert row[f"{column}_std"] == pytest.approx(statistics.stdev(values))
            low, high = expected_interval(values)
            assert row[f"{column}_ci95_low"] == pytest.approx(low)
            assert row[f"{column}_ci95_high"] == pytest.approx(high)


def test_the_failed_seed_is_left_out_of_every_statistic(results):
    tiny = summary_table(results).set_index("model").loc["tiny"]
    # tiny-2's baseline ran (0.47) but the cell failed: its base score is not averaged in
    assert tiny["base_accuracy_mean"] == pytest.approx((0.48 + 0.53) / 2)
    assert tiny["finetuned_accuracy_min"] == pytest.approx(0.70)


def test_paired_comparison_matches_a_hand_computed_t_test(results, results_csv):
    paired = paired_comparison(results, "accuracy", lower_is_better=False).set_index("model")
    rows = csv_rows(results_csv)
    assert list(paired.index) == MODELS
    assert list(paired["best"]) == [True, False, False, False]
    best = successful_values(rows, "mini", "finetuned_accuracy")
    for model in ("big", "tiny"):
        mine = successful_values(rows, model, "finetuned_accuracy")
        seeds = sorted(set(mine) & set(best))
        differences = [mine[seed] - best[seed] for seed in seeds]
        row = paired.loc[model]
        assert row["n_pairs"] == len(seeds)
        assert row["mean_difference"] == pytest.approx(statistics.mean(differences))
        low, high = expected_interval(differences)
        assert (row["ci95_low"], row["ci95_high"]) == pytest.approx((low, high))
        assert row["p_value"] == pytest.approx(hand_paired_test(differences))
    assert paired.loc["big", "n_pairs"] == 3 and paired.loc["tiny", "n_pairs"] == 2
    assert paired.loc["big", "p_value"] < 0.05 < paired.loc["tiny", "p_value"]
    assert paired.loc["big", "note"] == "worse than mini beyond seed noise"
    assert paired.loc["tiny", "note"] == "within seed noise of mini"
    assert paired.loc["mini", "note"] == "best model" and math.isnan(paired.loc["mini", "p_value"])
    assert paired.loc["dead", "n_pairs"] == 0 and math.isnan(paired.loc["dead", "p_value"])
    assert "fewer than 2 paired seeds" in paired.loc["dead", "note"]


def test_lower_is_better_picks_the_minimum(results):
    # mean fine-tuned loss: mini 0.377, big 0.417, tiny 0.25
    lower = paired_comparison(results, "loss", lower_is_better=True)
    higher = paired_comparison(results, "loss", lower_is_better=False)
    assert lower.loc[lower["best"], "model"].item() == "tiny"
    assert higher.loc[higher["best"], "model"].item() == "big"
    mini = lower.set_index("model").loc["mini"]
    assert mini["mean_difference"] == pytest.approx(((0.40 - 0.30) + (0.38 - 0.20)) / 2)


def test_identical_differences_have_no_p_value_and_say_why():
    frame = pd.DataFrame({"status": ["success"] * 4, "model": ["a", "a", "b", "b"],
                          "seed": [1, 2, 1, 2], "finetuned_accuracy": [0.9, 0.8, 0.85, 0.75]})
    row = paired_comparison(frame, "accuracy", lower_is_better=False).set_index("model").loc["b"]
    assert row["mean_difference"] == pytest.approx(-0.05)
    assert math.isnan(row["p_value"])
    assert "same difference" in row["note"]


def test_markdown_names_the_best_model_the_p_values_and_the_failed_cells(results, results_csv):
    text = summary_markdown(results, ("accuracy", "loss"), ("loss",), "Results: test")
    rows = csv_rows(results_csv)
    best = successful_values(rows, "mini", "finetuned_accuracy")
    assert text.startswith("# Results: test")
    assert "| **mini** (best) | 3 / 3 |" in text
    assert "Failed cells: 2 of 10 (tiny-2, dead-1)" in text
    for model in ("big", "tiny"):
        mine = successful_values(rows, model, "finetuned_accuracy")
        p_value = hand_paired_test([mine[seed] - best[seed] for seed in sorted(set(mine) & set(best))])
        assert f"| {p_value:.3f} |" in text
    assert "big is worse than mini beyond seed noise" in text
    assert "low power" in text
    assert "loss (lower is better)" in text  # the other metrics' table
    # mean ± std, the std (0.0153) to two significant digits and the mean to the same place
    assert f"| {statistics.mean(best.values()):.3f} ± {statistics.stdev(best.values()):.3f} |" in text


def test_markdown_without_any_successful_cell_says_so():
    frame = pd.DataFrame({"status": ["failed"], "model": ["a"], "seed": [1],
                          "base_accuracy": [0.5], "finetuned_accuracy": [float("nan")],
                          "improvement_accuracy": [float("nan")]})
    text = summary_markdown(frame, ("accuracy",), (), "Results")
    assert "No successful cell: nothing to compare." in text
    assert "Failed cells: 1 of 1 (a-1)" in text
