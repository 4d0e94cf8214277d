"""pipeline.confirm's choice of candidates and seeds; tests/e2e/test_sweep.py confirms a real
sweep."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from pipeline.compose import compose
from pipeline.confirm import (
    candidates,
    confirmation_markdown,
    confirmation_params,
    fresh_seeds,
    top,
)
from pipeline.errors import ConfigError
from tests.conftest import REPO


@pytest.fixture
def sweep(tmp_path) -> pd.DataFrame:
    """Three jobs (learning rates) of two models x 2 seeds. The best validation score belongs to
    minilm at lr 3e-4, whose test score is not the best: selection must not look at test."""
    rows = []
    validation = {("minilm", "1e-4"): 0.80, ("minilm", "3e-4"): 0.84, ("tiny_bert", "1e-4"): 0.70,
                  ("tiny_bert", "3e-4"): 0.71, ("minilm", "1e-3"): 0.60, ("tiny_bert", "1e-3"): 0.65}
    for job, rate in enumerate(("1e-4", "3e-4", "1e-3")):
        folder = tmp_path / str(job)
        folder.mkdir()
        (folder / "params.yaml").write_text(compose([f"train.learning_rate={rate}"], REPO / "conf"))
        for model in ("minilm", "tiny_bert"):
            for seed in (1, 2):
                rows.append({"job": str(job), "status": "success",
                             "model": f"{model} train.learning_rate={rate}",
                             "model_name": model, "seed": seed, "job_dir": str(folder),
                             "best_validation_metric": validation[model, rate] + seed / 1000,
                             "finetuned_accuracy": 0.9 if rate == "1e-4" else 0.7})
    return pd.DataFrame(rows)


def test_candidates_are_ranked_by_the_validation_score_they_were_selected_on(sweep):
    chosen = top(candidates(sweep, "accuracy"), 2)
    assert [candidate.label for candidate in chosen] == [
        "minilm train.learning_rate=3e-4", "minilm train.learning_rate=1e-4"]
    assert chosen[0].validation == pytest.approx(0.8415)
    assert chosen[0].sweep_test == pytest.approx(0.7) and chosen[0].sweep_seeds == [1, 2]


def test_fresh_seeds_are_new_ones(sweep):
    chosen = top(candidates(sweep, "accuracy"), 1)
    assert fresh_seeds(chosen, sweep, None) == [3, 4, 5]
    assert fresh_seeds(chosen, sweep, [11, 12]) == [11, 12]
    with pytest.raises(ConfigError, match=r"--seeds: \[2\] took part in the sweep's selection"):
        fresh_seeds(chosen, sweep, [2, 9])


def test_a_confirmation_job_trains_only_its_model_on_the_fresh_seeds(sweep):
    (candidate,) = top(candidates(sweep, "accuracy"), 1)
    raw = confirmation_params(candidate, [3, 4, 5])
    assert list(raw["models"]) == ["minilm"] and raw["seeds"] == [3, 4, 5]
    assert raw["train"]["learning_rate"] == pytest.approx(3e-4)
    assert yaml.safe_load((candidate.job_dir / "params.yaml").read_text())["seeds"] == [1, 2, 3]


def test_the_confirmation_table_puts_selection_and_confirmed_scores_side_by_side(sweep):
    chosen = top(candidates(sweep, "accuracy"), 2)
    confirmed = pd.DataFrame({"job": ["1", "1", "2", "2"], "status": ["success"] * 4,
                              "model": ["a"] * 2 + ["b"] * 2,
                              "finetuned_accuracy": [0.68, 0.70, 0.88, 0.90]})
    text = confirmation_markdown(chosen, confirmed, "accuracy", None, [3, 4])
    assert "| 1 | minilm train.learning_rate=3e-4 | 0.8415 | 0.7 | 0.69 | n/a | -0.01 |" in text
    assert "| 2 | minilm train.learning_rate=1e-4 | 0.8015 | 0.9 | 0.89 | n/a | -0.01 |" in text
