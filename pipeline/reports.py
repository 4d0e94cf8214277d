"""The reports of an experiment, from its cells' records: one row per model x seed in
reports/results.csv, the comparison of models across seeds (summary.csv, summary.md,
metrics.json), the training curves (curves.csv), per-label scores, the label distribution,
figures in reports/plots/, a few test examples per model (examples.md), and the parent MLflow
run that holds the cells.

A cell that failed keeps its row, with status `failed` and the error; the other cells'
results are kept. The same functions write a sweep's pooled reports (pipeline/pooling.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.comparison import successful, summary_markdown, summary_table
from pipeline.config import Params, cell_name
from pipeline.io import atomic_file, read_json, write_json
from pipeline.paths import (
    COMPARISON_PLOT,
    CURVES_FILE,
    EXAMPLES_FILE,
    HEADLINE_FILE,
    LABEL_DISTRIBUTION_FILE,
    PER_LABEL_FILE,
    RESULTS_FILE,
    SUMMARY_FILE,
    SUMMARY_MARKDOWN_FILE,
    TRAINING_CURVES_PLOT,
    baseline_metrics_file,
    final_metrics_file,
    predictions_file,
    train_metrics_file,
    train_output_dir,
)
from pipeline.plots import CURVE_COLUMNS, base_vs_finetuned, training_curves
from pipeline.records import FAILED, SUCCESS, base_vs_finetuned_metrics, curve_points, read_record
from pipeline.tasks import TaskAdapter
from pipeline.tracking import log_parent_run

HEADLINE_STATS = ("mean", "std", "ci95_low", "ci95_high")
EXAMPLES_PER_MODEL = 3
PER_LABEL_COLUMNS = ["model", "seed", "stage", "label", "precision", "recall", "f1", "support"]
TRAIN_COLUMNS = ("train_seconds", "train_samples_per_second", "steps", "best_validation_metric")
log = logging.getLogger(__name__)


def cell_records(cell: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The baseline, training and final records of a cell (failed ones where missing)."""
    return (read_record(baseline_metrics_file(cell), "baseline_eval"),
            read_record(train_metrics_file(cell), "train"),
            read_record(final_metrics_file(cell), "final_eval"))


def cell_row(params: Params, task: TaskAdapter, model: str, seed: int) -> dict[str, Any]:
    baseline, trained, final = cell_records(cell_name(model, seed))
    failures = [record for record in (baseline, trained, final) if record["status"] != SUCCESS]
    model_cfg = params.model(model)
    row: dict[str, Any] = {
        "status": FAILED if failures else SUCCESS,
        "model": model,
        "checkpoint": model_cfg.origin,
        "pretrained": model_cfg.pretrained,
        "seed": seed,
        "gradient_accumulation_steps": model_cfg.training(params.train).gradient_accumulation_steps,
    }
    finals = {name: final.get(name) for name in task.metric_names}
    if final["status"] == SUCCESS:
        row.update(base_vs_finetuned_metrics(baseline, finals))
    else:
        row.update({f"base_{name}": baseline.get(name) for name in task.metric_names})
    row.update(baseline.get("reference_scores", {}))
    row.update({column: trained.get(column) for column in TRAIN_COLUMNS})
    row["mlflow_run_id"] = trained.get("mlflow_run_id")
    row["error"] = failures[0]["error"] if failures else ""
    return row


def results_table(params: Params, task: TaskAdapter) -> pd.DataFrame:
    rows = [cell_row(params, task, model, seed) for model, seed in params.cells()]
    table = pd.DataFrame(rows)
    metric_columns = [f"{kind}_{name}" for name in task.metric_names
                      for kind in ("base", "finetuned", "improvement")]
    for column in metric_columns:
        if column not in table:
            table[column] = float("nan")
    first = ["status", "model", "checkpoint", "pretrained", "seed", "gradient_accumulation_steps"]
    last = [*TRAIN_COLUMNS, "mlflow_run_id", "error"]
    reference = [column for column in table if column not in {*first, *metric_columns, *last}]
    return table[[*first, *metric_columns, *reference, *last]]


def per_label_table(params: Params) -> pd.DataFrame:
    """Precision, recall, F1 and support of every label (entity type, class), before and after
    fine-tuning, one row per model x seed x stage x label."""
    rows = []
    for model, seed in params.cells():
        baseline, _, final = cell_records(cell_name(model, seed))
        for name, record in (("base", baseline), ("finetuned", final)):
            for label, values in (record.get("report") or {}).get("per_label", {}).items():
                rows.append({"model": model, "seed": seed, "stage": name, "label": label,
                             **values})
    return pd.DataFrame(rows, columns=PER_LABEL_COLUMNS)


def label_distribution_table(manifest: dict[str, Any]) -> pd.DataFrame:
    """How often each label occurs per split (tokens for tagging, examples for classification)."""
    rows = []
    for split, counts in manifest["label_counts"].items():
        total = sum(counts.values())
        rows.extend({"split": split, "label": label, "count": count,
                     "share": round(count / total, 6)} for label, count in counts.items())
    return pd.DataFrame(rows, columns=["split", "label", "count", "share"])


def curves_table(results: pd.DataFrame) -> pd.DataFrame:
    """The training curves of every successful cell (training loss, validation metrics...),
    one row per logged point, from the Trainer history that `train` keeps in curves.json."""
    rows = []
    for cell in successful(results).itertuples():
        path = train_output_dir(cell_name(cell.model, cell.seed)) / "curves.json"
        if not path.is_file():
            log.warning("%s is missing: no training curve for this cell", path)
            continue
        rows.extend({"model": cell.model, "seed": cell.seed, "step": step, "name": name,
                     "value": value} for name, value, step in curve_points(read_json(path)))
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def checkpoint_metrics(params: Params) -> dict[str, str]:
    """The validation metric each model kept its best checkpoint by: the one its curves
    should show."""
    return {model: params.model(model).training(params.train).metric_for_best_model
            for model in params.models}


def examples_markdown(params: Params, task: TaskAdapter) -> str:
    """The first test predictions of each model's first successful seed, to read beside
    the numbers (inputs, references, predictions or generated texts)."""
    lines = [f"# Test examples: {params.experiment_name}", ""]
    for model in params.models:
        for seed in params.seeds:
            path = predictions_file(cell_name(model, seed))
            if path.is_file() and path.stat().st_size:
                table = pd.read_csv(path, keep_default_na=False).head(EXAMPLES_PER_MODEL)
                lines += [f"## {cell_name(model, seed)}", "", *task.examples_markdown(table), ""]
                break
    return "\n".join(lines)


def write_csv(table: pd.DataFrame, path: Path) -> None:
    with atomic_file(path) as scratch:
        table.to_csv(scratch, index=False, float_format="%.6g")


def write_text(text: str, path: Path) -> None:
    with atomic_file(path) as scratch:
        scratch.write_text(text, encoding="utf-8")


def headline_metrics(summary: pd.DataFrame, metric: str) -> dict[str, dict[str, float]]:
    """Each model's main metric over its seeds (base, fine-tuned, gain: mean, std, 95% CI):
    reports/metrics.json, the columns `dvc exp show` compares experiments by (the per-cell
    metric files are too many to read there), and the parent MLflow run's metrics."""
    names = [f"{kind}_{metric}_{stat}" for kind in ("base", "finetuned", "improvement")
             for stat in HEADLINE_STATS]
    headline = {}
    for row in summary.to_dict("records"):
        figures = {name: float(row[name]) for name in names if pd.notna(row.get(name))}
        headline[row["model"]] = {"seeds_ok": int(row["seeds"] - row["failed"]), **figures}
    return headline


def write_comparison(results: pd.DataFrame, task: TaskAdapter, title: str,
                     folder: Path) -> tuple[pd.DataFrame, list[Path]]:
    """results.csv, summary.csv, summary.md and the base-vs-fine-tuned plot under `folder`:
    an experiment's reports, or a sweep's pooled ones (pipeline/pooling.py). Returns the summary
    table and the files written."""
    paths = [folder / RESULTS_FILE, folder / SUMMARY_FILE, folder / SUMMARY_MARKDOWN_FILE,
             folder / COMPARISON_PLOT]
    write_csv(results, paths[0])
    summary = summary_table(results)
    write_csv(summary, paths[1])
    write_text(summary_markdown(results, task.metric_names, task.lower_is_better, title), paths[2])
    metric = task.metric_names[0]
    base_vs_finetuned(results, metric, metric in task.lower_is_better, paths[3])
    return summary, paths


def track_results(params: Params, results: pd.DataFrame, artifacts: list[Path]) -> None:
    """The parent MLflow run of this table: its cells nested under it, the reports as
    artifacts, the headline metrics (reports/metrics.json) as `<model>.<figure>`. Tagged with
    this folder, so a sweep (pipeline/pooling.py) finds the parent of each of its jobs."""
    headline = read_json(HEADLINE_FILE)
    metrics = {f"{model}.{name}": value for model, figures in headline.items()
               for name, value in figures.items()}
    log_parent_run(params, f"{params.experiment_name}: {len(results)} cells",
                   results["mlflow_run_id"].dropna(), purpose="results",
                   tags={"run_dir": str(Path.cwd().resolve())}, metrics=metrics,
                   artifacts=artifacts)



def write_experiment_reports(params: Params, task: TaskAdapter,
                             manifest: dict[str, Any]) -> tuple[pd.DataFrame, list[Path]]:
    """Every report of this project from its cells' records; returns the results table and
    the files the parent MLflow run keeps."""
    results = results_table(params, task)
    summary, written = write_comparison(results, task, f"Results: {params.experiment_name}",
                                        Path("."))
    curves = curves_table(results)
    write_csv(curves, CURVES_FILE)
    training_curves(curves, checkpoint_metrics(params), TRAINING_CURVES_PLOT)
    headline = headline_metrics(summary, task.metric_names[0])
    write_json(HEADLINE_FILE, headline)
    write_csv(per_label_table(params), PER_LABEL_FILE)
    write_csv(label_distribution_table(manifest), LABEL_DISTRIBUTION_FILE)
    write_text(examples_markdown(params, task), EXAMPLES_FILE)
    return results, [*written, CURVES_FILE, TRAINING_CURVES_PLOT, HEADLINE_FILE]
