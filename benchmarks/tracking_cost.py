"""MLflow's share of a training cell, measured by making the cell's own MLflow calls again.

The stages cannot time their MLflow calls from outside, so after `dvc repro` the benchmark
replays, with the pipeline's own functions and the cell's real outputs (its parameters,
training curves, test metrics, reports and predictions), what `train` and `final_eval` send
to the project's sqlite store, in this process: the import of mlflow and the opening of the
store (each of the two stage processes pays both), then the run's creation, parameters,
curves, metrics, artifacts and its end.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any


def replay(project: Path, model: str, seed: int) -> dict[str, float]:
    """Seconds spent importing mlflow, opening the store and making one cell's calls again."""
    if "mlflow" in sys.modules:
        raise RuntimeError("mlflow already imported: its import time would not be measured")
    started = time.perf_counter()
    import mlflow  # noqa: F401  (timed: every stage process that tracks pays it)

    imported = time.perf_counter() - started
    here = Path.cwd()
    os.chdir(project)  # the store is the project's mlflow.db, found from the working folder
    try:
        opened, calls = cell_calls(project, model, seed)
    finally:
        os.chdir(here)
    return {"import_seconds": round(imported, 3), "open_seconds": round(opened, 3),
            "calls_seconds": round(calls, 3),
            "cell_seconds": round(2 * (imported + opened) + calls, 3)}


def cell_calls(project: Path, model: str, seed: int) -> tuple[float, float]:
    """Seconds to open the store (its module and ORM set-up, the database checked), then to
    make the calls."""
    from pipeline import tracking
    from pipeline.config import load_params
    from pipeline.experiment import Cell, read_manifest
    from pipeline.io import read_json
    from pipeline.paths import (
        baseline_metrics_file,
        final_metrics_file,
        predictions_file,
        train_output_dir,
    )
    from pipeline.records import base_vs_finetuned_metrics, curve_points
    from pipeline.tasks import get_task
    from pipeline.training import logged_params

    params = load_params(project / "params.yaml")
    cell = Cell(params, get_task(params.task), model, seed)
    history = read_json(project / train_output_dir(cell.name) / "curves.json")
    baseline = read_json(project / baseline_metrics_file(cell.name))
    final = read_json(project / final_metrics_file(cell.name))
    scalars = {name: value for name, value in final.items() if isinstance(value, int | float)}
    metrics = {**base_vs_finetuned_metrics(baseline, scalars), **baseline.get("reference_scores", {})}
    reports: dict[str, Any] = {"base": baseline.get("report"), "finetuned": final.get("report")}
    manifest = read_manifest(params)
    started = time.perf_counter()
    tracking.client(params).search_experiments(max_results=1)
    opened = time.perf_counter() - started
    started = time.perf_counter()
    run_id = tracking.start_cell_run(params, model, seed, logged_params(cell, cell.training))
    tracking.log_dataset_inputs(params, run_id, manifest)
    tracking.log_metrics(params, run_id, curve_points(history))
    tracking.log_evaluation(cell, run_id, metrics, reports, project / predictions_file(cell.name),
                            manifest)
    tracking.finish_run(params, run_id)
    return opened, time.perf_counter() - started
