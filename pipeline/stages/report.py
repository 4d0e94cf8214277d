"""Stage `report`: the experiment's reports from every cell's records (pipeline/reports.py):
reports/results.csv (one row per model x seed), the comparison across seeds and models
(summary.csv, summary.md, metrics.json), curves, per-label scores, plots, examples and a model
card per successful cell; then the parent MLflow run holding the cells, and with
`tracking.log_model` the best cell's model."""

from __future__ import annotations

from pipeline.errors import run_cli
from pipeline.experiment import load_experiment, read_manifest
from pipeline.reports import log_best_model, track_results, write_experiment_reports
from pipeline.tracking import check_store, experiment_link


def main() -> None:
    params, task = load_experiment()
    check_store(params)  # before any report is replaced
    results, artifacts = write_experiment_reports(params, task, read_manifest(params))
    track_results(params, results, artifacts)
    if params.tracking.log_model:
        log_best_model(params, task, results)
    print(results[["status", "model", "seed", *[c for c in results if c.startswith("finetuned_")]]]
          .to_string(index=False))
    print(f"MLflow (after `make ui`): {experiment_link(params)}")


if __name__ == "__main__":
    run_cli(main)
