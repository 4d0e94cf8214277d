import json

import pandas as pd
import pytest

from pipeline.comparison import summary_table
from pipeline.reports import curves_table, headline_metrics


def test_curves_come_from_each_successful_cells_trainer_history(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    history = [{"loss": 0.7, "learning_rate": 1e-4, "epoch": 0.5, "step": 5},
               {"eval_accuracy": 0.8, "eval_loss": 0.5, "epoch": 1.0, "step": 10}]
    for cell in ("a-1", "b-1"):  # b-1 failed: its leftover curves are not read
        (tmp_path / "models" / cell).mkdir(parents=True)
        (tmp_path / "models" / cell / "curves.json").write_text(json.dumps(history))
    results = pd.DataFrame({"status": ["success", "failed", "success"], "model": ["a", "b", "c"],
                            "seed": [1, 1, 1]})
    curves = curves_table(results)
    assert set(curves["model"]) == {"a"}
    points = {(name, step): value for name, step, value
              in curves[["name", "step", "value"]].itertuples(index=False)}
    assert points == {("train_loss", 5): 0.7, ("train_learning_rate", 5): 1e-4,
                      ("val_accuracy", 10): 0.8, ("val_loss", 10): 0.5}
    assert "models/c-1/curves.json is missing" in caplog.text


def test_headline_metrics_are_the_summarys_main_metric_per_model():
    results = pd.DataFrame({
        "status": ["success", "success", "success", "failed", "failed"],
        "model": ["a", "a", "a", "b", "b"], "seed": [1, 2, 3, 1, 2],
        "base_accuracy": [0.5, 0.4, 0.6, None, None],
        "finetuned_accuracy": [0.8, 0.9, 0.7, None, None],
        "improvement_accuracy": [0.3, 0.5, 0.1, None, None],
        "finetuned_loss": [0.1, 0.2, 0.3, None, None],
    })
    headline = headline_metrics(summary_table(results), "accuracy")
    assert headline["b"] == {"seeds_ok": 0}  # nothing to average: no NaN in the JSON
    a = headline["a"]
    assert a["seeds_ok"] == 3
    assert a["finetuned_accuracy_mean"] == pytest.approx(0.8)
    assert a["finetuned_accuracy_std"] == pytest.approx(0.1)
    assert a["base_accuracy_mean"] == pytest.approx(0.5)
    assert a["improvement_accuracy_mean"] == pytest.approx(0.3)
    # t(0.975, 2) = 4.302653: the interval is mean -+ t * std / sqrt(3)
    assert a["finetuned_accuracy_ci95_low"] == pytest.approx(0.8 - 4.302653 * 0.1 / 3 ** 0.5)
    assert not any("loss" in key for key in a)
    json.dumps(headline, allow_nan=False)
