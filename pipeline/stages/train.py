"""Stage `train@<model>-<seed>`: fine-tune one model with one seed; open its MLflow run (with
the dataset's splits as its inputs).

Writes models/<model>-<seed>/ (the best checkpoint by the configured validation
metric, its tokenizer, the training curves and the MLflow run id) and
metrics/train/<model>-<seed>.json. A run killed mid-training resumes from its last
checkpoint (pipeline/training.py); the checkpoints are removed once the cell has finished.

With `train.launcher` set, this process starts `train.processes` copies of itself through
torchrun or `accelerate launch` (pipeline/launch.py) and waits for them; rank 0 writes the
outputs.
"""

from __future__ import annotations

import logging
import shutil
from typing import Any

from pipeline import launch
from pipeline.errors import run_cli
from pipeline.experiment import read_manifest
from pipeline.io import write_json
from pipeline.paths import checkpoint_dir, train_metrics_file, train_output_dir
from pipeline.stages.common import ends_run_if_interrupted, parse_cell, run_cell_stage
from pipeline.tracking import finish_run, log_dataset_inputs, reopen_run, start_cell_run
from pipeline.training import fingerprint, logged_params, remember_run, resumable_run, train_cell

log = logging.getLogger("train")


def main() -> None:
    cell = parse_cell(__doc__)
    manifest = read_manifest(cell.params)
    handoff = launch.worker_handoff()
    if handoff is not None:
        launch.run_as_worker(handoff, lambda: train_cell(
            cell, manifest, handoff.mlflow_run_id, handoff.resume, launched=True))
        return
    cfg = cell.training
    checkpoints = checkpoint_dir(cell.name)
    identity = fingerprint(cell, cfg, manifest)
    run_id = resumable_run(checkpoints, identity)
    resume = run_id is not None
    if resume:
        log.info("%s: resuming from the last checkpoint in %s", cell.name, checkpoints)
        reopen_run(cell.params, run_id)
    else:
        run_id = start_cell_run(cell.params, cell.model, cell.seed, logged_params(cell, cfg))
        log_dataset_inputs(cell.params, run_id, manifest)

    def body() -> None:
        if cfg.launcher == "none":
            train_cell(cell, manifest, run_id, resume, launched=False)
        else:
            launch.run_workers(cfg, f"{cell.where}.train", "pipeline.stages.train",
                               ["--model", cell.model, "--seed", str(cell.seed)], run_id, resume)
        shutil.rmtree(checkpoints, ignore_errors=True)
        finish_run(cell.params, run_id)  # final_eval reopens it for the test metrics

    def on_failure(failure: dict[str, Any]) -> None:
        record = {**failure, "mlflow_run_id": run_id}
        train_output_dir(cell.name).mkdir(parents=True, exist_ok=True)
        write_json(train_output_dir(cell.name) / "train.json", record)
        write_json(train_metrics_file(cell.name), record)
        finish_run(cell.params, run_id, failed_error=failure["error"])

    with ends_run_if_interrupted(cell.params, run_id):
        if not resume:
            remember_run(checkpoints, identity, run_id)
        run_cell_stage("train", body, on_failure)

if __name__ == "__main__":
    run_cli(main)
