"""Stage `final_eval@<model>-<seed>`: the fine-tuned model on the test split; close the MLflow run.

Logs baseline, fine-tuned and improvement metrics side by side, with the resolved
config, the per-class report and the test predictions as artifacts.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import yaml

from pipeline.data import load_split
from pipeline.errors import run_cli
from pipeline.io import atomic_file, read_json, write_json
from pipeline.modeling import load_trained
from pipeline.paths import cell_dir, metrics_file, predictions_file
from pipeline.stages.common import (
    FAILED,
    SUCCESS,
    Cell,
    UpstreamFailure,
    load_tokenized,
    parse_cell,
    read_manifest,
    run_cell_stage,
    setup_logging,
)
from pipeline.tracking import finish_run, log_artifacts, log_metrics

STAGE = "final"


def comparison(baseline: dict[str, Any], final: dict[str, float]) -> dict[str, float]:
    """base_, finetuned_ and improvement_ (fine-tuned minus base) for every scalar metric."""
    values = {}
    for name, value in final.items():
        values[f"finetuned_{name}"] = value
        if isinstance(baseline.get(name), int | float):
            values[f"base_{name}"] = baseline[name]
            values[f"improvement_{name}"] = value - baseline[name]
    return values


def per_label_metrics(reports: dict[str, Any]) -> dict[str, float]:
    """`finetuned_PER_f1`-style metrics from the baseline and fine-tuned per-label reports."""
    return {f"{stage}_{label}_{name}": values[name]
            for stage, report in reports.items() if report
            for label, values in report.get("per_label", {}).items()
            for name in ("precision", "recall", "f1")}


def log_to_mlflow(cell: Cell, run_id: str, metrics: dict[str, float], reports: dict[str, Any],
                  predictions: Path, manifest: dict[str, Any]) -> None:
    metrics = {**metrics, **per_label_metrics(reports)}
    log_metrics(cell.params, run_id, [(name, value, 0) for name, value in metrics.items()])
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "config.yaml"
        resolved = dataclasses.asdict(cell.params)
        resolved["models"] = {cell.model: resolved["models"][cell.model]}
        resolved["seeds"] = [cell.seed]
        config.write_text(yaml.safe_dump(resolved, sort_keys=False), encoding="utf-8")
        report_file = Path(scratch) / "report.json"
        write_json(report_file, reports)
        artifacts = [config, report_file, predictions]
        if manifest["label_counts"]:  # tasks with labels
            distribution = Path(scratch) / "label_distribution.json"
            write_json(distribution, manifest["label_counts"])
            artifacts.append(distribution)
        if cell.params.tracking.log_model:
            artifacts.append(cell_dir(cell.name) / "model")
        log_artifacts(cell.params, run_id, artifacts)


def main() -> None:
    cell = parse_cell(__doc__)
    record = metrics_file(STAGE, cell.name)
    predictions = predictions_file(cell.name)
    baseline = read_json(metrics_file("baseline", cell.name))
    trained = read_json(cell_dir(cell.name) / "train.json")
    run_id = trained["mlflow_run_id"]

    def body() -> None:
        for upstream in (baseline, trained):
            if upstream["status"] == FAILED:
                raise UpstreamFailure(f"{upstream['stage']} stage: {upstream['error']}")
        manifest = read_manifest(cell.params)
        model, tokenizer = load_trained(cell.task, cell_dir(cell.name) / "model")
        test = load_tokenized(cell.model)[0]["test"]
        batch_size = cell.training.eval_batch_size
        scalars, report, outputs = cell.task.evaluate(model, tokenizer, test, manifest,
                                                      batch_size, f"final {cell.name}")
        table = cell.task.prediction_table(load_split(cell.params.dataset.name, "test"), outputs,
                                           manifest, test["labels"])
        with atomic_file(predictions) as scratch:
            table.to_csv(scratch, index=False)
        log_to_mlflow(cell, run_id, {**comparison(baseline, scalars),
                                     **baseline.get("reference_scores", {})},
                      {"base": baseline.get("report"), "finetuned": report}, predictions, manifest)
        write_json(record, {"status": SUCCESS, **scalars, "report": report})
        finish_run(cell.params, run_id)

    def on_failure(failure: dict[str, Any]) -> None:
        with atomic_file(predictions) as scratch:
            scratch.write_text("", encoding="utf-8")
        write_json(record, failure)
        finish_run(cell.params, run_id, failed_error=failure["error"])

    run_cell_stage(STAGE, body, on_failure)


if __name__ == "__main__":
    setup_logging()
    run_cli(main)
