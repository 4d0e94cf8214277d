"""Killing `dvc repro` (SIGKILL) during training, then running it again, resumes from the last
checkpoint and ends with the same metrics as a run that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.e2e.project import make_project, run

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
  epochs: 4
  batch_size: 16
  eval_strategy: steps
  eval_steps: 6
  logging_steps: 6
  early_stopping_patience: null
"""


def repro_env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "HF_HUB_OFFLINE": "1", "MLFLOW_TRACKING_URI": ""}


def kill_after_first_checkpoint(root: Path) -> None:
    process = subprocess.Popen(["dvc", "repro"], cwd=root, env=repro_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while not list((root / "checkpoints/tiny-1").glob("checkpoint-*/trainer_state.json")):
            assert process.poll() is None, "dvc repro ended before writing a checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def final_metrics(root: Path) -> dict:
    record = json.loads((root / "metrics/final/tiny-1.json").read_text())
    return {key: value for key, value in record.items() if key != "report"}


def test_killed_training_resumes_and_matches_an_uninterrupted_run(tmp_path):
    uninterrupted = make_project(tmp_path / "uninterrupted", RESUME_EXPERIMENT)
    run(["dvc", "repro"], uninterrupted)

    interrupted = make_project(tmp_path / "interrupted", RESUME_EXPERIMENT)
    kill_after_first_checkpoint(interrupted)
    assert not (interrupted / "metrics/train/tiny-1.json").exists()
    result = run(["dvc", "repro"], interrupted)
    assert "tiny-1: resuming from the last checkpoint" in result.stdout + result.stderr

    # Same config and seed give identical metrics on CPU, interrupted or not.
    assert final_metrics(interrupted) == final_metrics(uninterrupted)
    baselines = [(root / "metrics/baseline/tiny-1.json").read_text()
                 for root in (interrupted, uninterrupted)]
    assert baselines[0] == baselines[1]
    train = json.loads((interrupted / "metrics/train/tiny-1.json").read_text())
    assert train["steps"] == 4 * 480 // 16
    assert not (interrupted / "checkpoints/tiny-1").exists()
    client = MlflowClient(tracking_uri=f"sqlite:///{interrupted / 'mlflow.db'}")
    (mlflow_run,) = client.search_runs(
        [client.get_experiment_by_name("text_classification/rotten_tomatoes").experiment_id],
        "tags.purpose = 'fine-tune'")
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.info.run_id == train["mlflow_run_id"]

