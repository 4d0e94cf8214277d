"""Killing `dvc repro` (SIGKILL) during training, then running it again, resumes from the last
checkpoint and ends with the same metrics as a run that was never interrupted: full
fine-tuning, and LoRA (whose checkpoints hold the adapter and the optimizer state only). The
LoRA project is also the end-to-end test of LoRA and of an extra test set: the adapter and
the merged model it saves, the cost and extra-set figures in the reports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.conftest import save_local_model
from tests.e2e.project import make_project, run, stages_run

RESUME_EXPERIMENT = """\
# @package _global_
defaults:
  - /model@models.tiny: tiny_bert_scratch
  - override /dataset: rotten_tomatoes

experiment_name: e2e_tiny
seeds: [1]
dataset:
  max_rows: {train: 480, validation: 64, test: 64}
models:
  tiny:
    architecture: {hidden_size: 64, num_hidden_layers: 2, intermediate_size: 256}
train:
  epochs: 2
  batch_size: 16
  eval_strategy: steps
  eval_steps: 6
  logging_steps: 6
  early_stopping_patience: null
"""
#: A small pretrained-style BERT (tests/conftest.py) fine-tuned with LoRA, and scored on an
#: extra test set: other Rotten Tomatoes reviews (another split seed, so partly seen in training:
#: the pipeline only needs a set whose labels are the main set's).
LORA_EXPERIMENT = RESUME_EXPERIMENT.replace("/model@models.tiny: tiny_bert_scratch", """\
/model@models.tiny: minilm
  - /dataset@evaluation.extra.other_reviews: rotten_tomatoes""").replace("""\
models:
  tiny:
    architecture: {hidden_size: 64, num_hidden_layers: 2, intermediate_size: 256}
""", """\
evaluation:
  extra:
    other_reviews:
      split_seed: 7
      max_rows: {test: 48}
      watch: ${oc.select:source_pins.${.source},${.path}}
models:
  tiny:
    source: local
    path: local_model
    train:
      learning_rate: 1.0e-3
      peft: {method: lora, r: 4, alpha: 8}
""")
EXPERIMENTS = {"full": RESUME_EXPERIMENT, "lora": LORA_EXPERIMENT}


def repro_env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "HF_HUB_OFFLINE": "1", "MLFLOW_TRACKING_URI": ""}


def new_project(root: Path, experiment: str) -> Path:
    root.mkdir()
    save_local_model(root / "local_model", corrupt=False)
    return make_project(root, experiment)


def kill_after_first_checkpoint(root: Path) -> list[str]:
    """Kill the whole `dvc repro` once a checkpoint is written; return the checkpoint's files."""
    process = subprocess.Popen(["dvc", "repro"], cwd=root, env=repro_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while not (written := list((root / "checkpoints/tiny-1").glob(
                "checkpoint-*/trainer_state.json"))):
            assert process.poll() is None, "dvc repro ended before writing a checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return sorted(path.name for path in written[0].parent.iterdir())


def final_metrics(root: Path) -> dict:
    record = json.loads((root / "metrics/final/tiny-1.json").read_text())
    return {key: value for key, value in record.items() if key != "report"}


@pytest.fixture(scope="module", params=sorted(EXPERIMENTS))
def uninterrupted(request, tmp_path_factory) -> tuple[str, Path]:
    root = new_project(tmp_path_factory.mktemp(request.param) / "uninterrupted",
                       EXPERIMENTS[request.param])
    run(["dvc", "repro"], root)
    return request.param, root


def test_killed_training_resumes_and_matches_an_uninterrupted_run(uninterrupted, tmp_path):
    method, uninterrupted = uninterrupted
    interrupted = new_project(tmp_path / "interrupted", EXPERIMENTS[method])
    checkpoint = kill_after_first_checkpoint(interrupted)
    assert ("adapter_model.safetensors" in checkpoint) == (method == "lora")
    assert ("model.safetensors" in checkpoint) == (method == "full")
    assert "optimizer.pt" in checkpoint
    assert not (interrupted / "metrics/train/tiny-1.json").exists()
    result = run(["dvc", "repro"], interrupted)
    assert "tiny-1: resuming from the last checkpoint" in result.stdout + result.stderr

    # Same config and seed give identical metrics on CPU, interrupted or not.
    assert final_metrics(interrupted) == final_metrics(uninterrupted)
    baselines = [(root / "metrics/baseline/tiny-1.json").read_text()
                 for root in (interrupted, uninterrupted)]
    assert baselines[0] == baselines[1]
    train = json.loads((interrupted / "metrics/train/tiny-1.json").read_text())
    assert train["steps"] == 2 * 480 // 16
    assert not (interrupted / "checkpoints/tiny-1").exists()
    client = MlflowClient(tracking_uri=f"sqlite:///{interrupted / 'mlflow.db'}")
    (mlflow_run,) = client.search_runs(
        [client.get_experiment_by_name("text_classification/rotten_tomatoes").experiment_id],
        "tags.purpose = 'fine-tune'")
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.info.run_id == train["mlflow_run_id"]



def test_a_lora_cell_saves_its_adapter_and_a_merged_model_equal_to_it(uninterrupted):
    """The merged model loads with the Auto classes and gives the logits of the adapter on
    top of the starting model."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    method, root = uninterrupted
    if method != "lora":
        pytest.skip("a LoRA cell")
    folder = root / "models/tiny-1"
    assert (folder / "adapter/adapter_model.safetensors").stat().st_size < 100_000
    assert json.loads((folder / "adapter/adapter_config.json").read_text())["r"] == 4
    merged = AutoModelForSequenceClassification.from_pretrained(folder / "model").eval()
    assert merged.config.id2label == {0: "fresh", 1: "rotten"}
    start = AutoModelForSequenceClassification.from_pretrained(
        root / "local_model", num_labels=2, id2label=merged.config.id2label,
        label2id=merged.config.label2id)
    adapted = PeftModel.from_pretrained(start, folder / "adapter").eval()
    tokenizer = AutoTokenizer.from_pretrained(folder / "model")
    inputs = tokenizer(["A warm, funny and moving film.", "Dull."], padding=True,
                       return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(merged(**inputs).logits, adapted(**inputs).logits, atol=1e-5)


def test_lora_costs_and_the_extra_test_set_reach_the_reports(uninterrupted):
    method, root = uninterrupted
    results = pd.read_csv(root / "reports/results.csv")
    (row,) = results.to_dict("records")
    assert row["peft"] == ("lora r=4 alpha=8" if method == "lora" else "none")
    assert 0 < row["train_trainable_share"] < (0.2 if method == "lora" else 1.0 + 1e-9)
    assert row["train_peak_rss_mb"] > 100 and row["train_weights_mb"] > 0
    summary = (root / "reports/summary.md").read_text()
    assert "## Cost of fine-tuning" in summary
    if method == "full":
        assert row["train_trainable_share"] == 1.0
        return
    assert row["improvement_other_reviews_accuracy"] == pytest.approx(  # 6 digits each in CSV
        row["finetuned_other_reviews_accuracy"] - row["base_other_reviews_accuracy"], abs=2e-6)
    assert "## Extra test sets: accuracy" in summary and "| tiny | other_reviews |" in summary
    manifest = json.loads((root / "data/extra/other_reviews/manifest.json").read_text())
    assert manifest["rows"] == 48 and set(manifest["label_counts"]) == {"fresh", "rotten"}
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    (cell,) = client.search_runs([client.get_experiment_by_name(
        "text_classification/rotten_tomatoes").experiment_id], "tags.purpose = 'fine-tune'")
    assert cell.data.metrics["finetuned_other_reviews_accuracy"] == pytest.approx(
        row["finetuned_other_reviews_accuracy"])
    assert cell.data.metrics["train_trainable_parameters"] == row["train_trainable_parameters"]
    assert cell.data.params["train.peft.method"] == "lora"


def test_changing_the_extra_test_set_reruns_its_download_and_the_evaluations_only(
        uninterrupted):
    method, root = uninterrupted
    if method != "lora":
        pytest.skip("the project with an extra test set")
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("test: 48", "test: 40"))
    result = run(["dvc", "repro"], root)
    assert sorted(stages_run(result.stdout)) == [
        "baseline_eval@tiny-1", "download_extra@other_reviews", "final_eval@tiny-1", "report",
        "tokenize@tiny"]
