"""Test-set uncertainty in the reports, checked against independent computations on
predictions tables written here."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline.comparison import summary_markdown
from pipeline.config import ReportConfig, TaskConfig
from pipeline.tasks.text_classification import TextClassification
from pipeline.uncertainty import measure_uncertainty, summary_columns, with_cell_intervals

TASK = TextClassification(TaskConfig("text_classification"))
LABELS = ["neg", "pos"]
CONFIG = ReportConfig(bootstrap_samples=2000, bootstrap_seed=3)


def write_cell(root, name: str, references: list[str], predictions: list[str],
               base: list[str]) -> None:
    folder = root / "reports/predictions"
    (folder / "base").mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"text": [f"t{i}" for i in range(len(references))], "reference": references,
                  "prediction": predictions}).to_csv(folder / f"{name}.csv", index=False)
    pd.DataFrame({"text": [f"t{i}" for i in range(len(references))], "reference": references,
                  "prediction": base}).to_csv(folder / "base" / f"{name}.csv", index=False)


def predictions_with(correct: int, references: list[str], wrong_first: bool = False) -> list[str]:
    """`correct` predictions right: the first ones, or (`wrong_first`) the last ones."""
    flip = {"neg": "pos", "pos": "neg"}
    wrong = len(references) - correct
    return [flip[ref] if (i < wrong if wrong_first else i >= correct) else ref
            for i, ref in enumerate(references)]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """Two models x 3 seeds on 200 test examples; `good` is right on 150-152 of them, `weak`
    on 140-141, mostly other ones (so another test sample could reorder them), each seed's
    untuned model on 100."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/raw/ds").mkdir(parents=True)
    (tmp_path / "data/raw/ds/manifest.json").write_text(json.dumps({"labels": LABELS}))
    references = ["pos", "neg"] * 100
    rows = []
    for model, correct in (("good", (150, 151, 152)), ("weak", (140, 141, 140))):
        for seed, right in zip((1, 2, 3), correct, strict=True):
            write_cell(tmp_path, f"{model}-{seed}", references,
                       predictions_with(right, references, wrong_first=model == "good"),
                       predictions_with(100, references))
            rows.append({"status": "success", "model": model, "seed": seed,
                         "base_accuracy": 0.5, "finetuned_accuracy": right / 200,
                         "improvement_accuracy": right / 200 - 0.5})
    return pd.DataFrame(rows)


def test_each_cell_gets_a_bootstrap_interval_over_its_test_examples(project):
    uncertainty = measure_uncertainty(project, TASK, "accuracy", "ds", "good", CONFIG)
    cell = uncertainty.cells.set_index(["model", "seed"]).loc[("good", 1)]
    correct = np.array([1.0] * 150 + [0.0] * 50)
    reference = stats.bootstrap((correct,), np.mean, n_resamples=20000, method="percentile",
                                random_state=0).confidence_interval
    assert cell["finetuned_accuracy_ci95_low"] == pytest.approx(reference.low, abs=0.01)
    assert cell["finetuned_accuracy_ci95_high"] == pytest.approx(reference.high, abs=0.01)
    assert cell["finetuned_accuracy_test_se"] == pytest.approx(math.sqrt(0.75 * 0.25 / 200),
                                                               rel=0.08)
    # the gain is paired: fine-tuned and untuned on the same resampled examples
    assert cell["improvement_accuracy_ci95_low"] > 0


def test_models_show_both_variance_sources_and_the_seeds_plan(project):
    uncertainty = measure_uncertainty(project, TASK, "accuracy", "ds", "good", CONFIG)
    good = uncertainty.models.set_index("model").loc["good"]
    assert good["finetuned_seed_std"] == pytest.approx(np.std([0.75, 0.755, 0.76], ddof=1))
    assert good["finetuned_test_se"] == pytest.approx(
        uncertainty.cells.query("model == 'good'")["finetuned_accuracy_test_se"].mean())
    assert good["finetuned_low"] < 0.75 < good["finetuned_high"]
    # the test-sample error dominates here: with ~0.03 per cell, more seeds cannot halve it
    assert good["gain_test_se"] > 3 * good["gain_seed_std"]
    z = stats.norm.ppf(0.975)
    budget = (good["target_half_width"] / z) ** 2 - good["gain_test_se"] ** 2
    expected = None if budget <= 0 else max(2, math.ceil(good["gain_seed_std"] ** 2 / budget))
    assert good["seeds_needed"] == expected
    assert good["target_half_width"] == pytest.approx(good["gain_half_width"] / 2)
    columns = summary_columns(uncertainty)
    assert {"finetuned_accuracy_seed_std", "finetuned_accuracy_test_se",
            "improvement_accuracy_combined_low", "seeds_needed"} <= set(columns.columns)


def test_comparisons_are_adjusted_for_their_number(project):
    third = project[project["model"] == "weak"].assign(model="other")
    results = pd.concat([project, third], ignore_index=True)
    for seed in (1, 2, 3):  # "other" predicts like "weak"
        source = pd.read_csv(f"reports/predictions/weak-{seed}.csv")
        source.to_csv(f"reports/predictions/other-{seed}.csv", index=False)
        base = pd.read_csv(f"reports/predictions/base/weak-{seed}.csv")
        base.to_csv(f"reports/predictions/base/other-{seed}.csv", index=False)
    uncertainty = measure_uncertainty(results, TASK, "accuracy", "ds", "good", CONFIG)
    comparisons = uncertainty.comparisons.set_index("model")
    raw = comparisons["p_value"].to_numpy()
    order = np.argsort(raw)
    holm = np.empty(2)
    running = 0.0
    for rank, index in enumerate(order):  # Holm, by hand
        running = max(running, min(1.0, (2 - rank) * raw[index]))
        holm[index] = running
    assert comparisons["p_adjusted"].to_numpy() == pytest.approx(holm)
    assert comparisons.loc["weak", "difference"] == pytest.approx(
        np.mean([140, 141, 140]) / 200 - np.mean([150, 151, 152]) / 200)


def test_the_summary_tells_seed_noise_from_test_sample_noise(project):
    uncertainty = measure_uncertainty(project, TASK, "accuracy", "ds", "good", CONFIG)
    text = summary_markdown(project, ("accuracy",), (), "Results",
                            uncertainty)
    assert "## How sure: seeds and test examples (accuracy)" in text
    assert "the test split (200 of them; the standard error from 2000 bootstrap" in text
    # three seeds this close: the t-test calls the gap real, the test sample could reverse it
    row = next(line for line in text.splitlines() if line.startswith("| weak | 3 | -"))
    assert "beyond seed noise only: another test sample could reverse it" in row
    assert "p adjusted (Holm)" in text and "winner's curse" in text


def test_results_gain_their_cell_intervals_beside_the_values(project):
    uncertainty = measure_uncertainty(project, TASK, "accuracy", "ds", "good", CONFIG)
    table = with_cell_intervals(project, uncertainty)
    columns = list(table.columns)
    start = columns.index("finetuned_accuracy")
    assert columns[start:start + 4] == ["finetuned_accuracy", "finetuned_accuracy_ci95_low",
                                        "finetuned_accuracy_ci95_high",
                                        "finetuned_accuracy_test_se"]
    assert len(table) == len(project)
    again = with_cell_intervals(table, uncertainty)  # a sweep pools tables that have them
    assert again.columns.tolist() == columns and again.equals(table)


def test_no_predictions_means_no_test_set_intervals(project, tmp_path):
    for path in (tmp_path / "reports/predictions").glob("*.csv"):
        path.unlink()
    assert measure_uncertainty(project, TASK, "accuracy", "ds", "good", CONFIG) is None
