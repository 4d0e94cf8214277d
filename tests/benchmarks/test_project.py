"""The throw-away project's config: the default experiment cut to one model and one seed."""

from __future__ import annotations

import pytest

from benchmarks.project import one_model, overrides


def test_overrides_cut_the_default_experiment_to_the_asked_size():
    assert overrides(256, None, 128, 0.5, 3, ["train.batch_size=16"]) == [
        "experiment=rotten_tomatoes", "seeds=[3]", "dataset.max_rows.train=256",
        "dataset.max_rows.test=128", "train.epochs=0.5", "train.batch_size=16"]


def test_one_model_keeps_only_the_benchmarked_model():
    text = "models:\n  minilm: {path: a}\n  tiny_bert: {path: b}\nseeds: [1]\n"
    assert one_model(text, "minilm") == "models:\n  minilm:\n    path: a\nseeds:\n- 1\n"
    with pytest.raises(ValueError, match="not in the composed experiment"):
        one_model(text, "bert")
