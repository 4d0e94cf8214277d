"""The reports of an experiment, from its cells' records: one row per model x seed in
reports/results.csv, the comparison of models across seeds (summary.csv, summary.md,
metrics.json), the training curves (curves.csv), per-label scores, the label distribution,
figures in reports/plots/, a few test examples per model (examples.md), a model card per
successful cell (reports/cards/), and the parent MLflow run that holds the cells.

A cell that failed keeps its row, with status `failed` and the error; the other cells'
results are kept. The same functions write a sweep's pooled reports (pipeline/pooling.py).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.cards import card_body, write_cards
from pipeline.comparison import best_model, successful, summary_markdown, summary_table
from pipeline.config import Params, cell_name
from pipeline.costs import variant_sections
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
    TEST_INTERVALS_PLOT,
    TRAINING_CURVES_PLOT,
    baseline_metrics_file,
    final_metrics_file,
    predictions_file,
    train_metrics_file,
    train_output_dir,
)
from pipeline.plots import CURVE_COLUMNS, base_vs_finetuned, test_intervals, training_curves
from pipeline.records import (
    FAILED,
    SUCCESS,
    base_vs_finetuned_metrics,
    curve_points,
    extra_metrics,
    read_record,
)
from pipeline.sharing import best_cell, check_current, read_card, write_share_folder
from pipeline.tasks import TaskAdapter
from pipeline.tracking import log_model_folder, log_parent_run, register_model
from pipeline.uncertainty import measure_uncertainty, summary_columns, with_cell_intervals

HEADLINE_STATS = ("mean", "std", "ci95_low", "ci95_high")
UNCERTAINTY_STATS = ("test_se", "combined_low", "combined_high")
EXAMPLES_PER_MODEL = 3
PER_LABEL_COLUMNS = ["model", "seed", "stage", "label", "precision", "recall", "f1", "support"]
TRAIN_COLUMNS = ("train_seconds", "train_samples_per_second", "steps", "best_validation_metric",
                 "train_trainable_parameters", "train_trainable_share", "train_weights_mb",
                 "train_peak_rss_mb")
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
    training = model_cfg.training(params.train)
    row: dict[str, Any] = {
        "status": FAILED if failures else SUCCESS,
        "model": model,
        "checkpoint": model_cfg.origin,
        "pretrained": model_cfg.pretrained,
        "seed": seed,
        "gradient_accumulation_steps": training.gradient_accumulation_steps,
        "peft": training.peft.label,
    }
    finals = {name: final.get(name) for name in task.metric_names}
    if final["status"] == SUCCESS:
        row.update(base_vs_finetuned_metrics(baseline, finals))
        row.update(extra_metrics(baseline, final.get("extra", {})))
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
    first = ["status", "model", "checkpoint", "pretrained", "seed", "gradient_accumulation_steps",
             "peft"]
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
    """Each model's main metric over its seeds (base, fine-tuned, gain: mean, std, 95% CI; the
    test-sample error and the intervals over seeds and test examples together):
    reports/metrics.json, the columns `dvc exp show` compares experiments by (the per-cell
    metric files are too many to read there), and the parent MLflow run's metrics."""
    names = [f"{kind}_{metric}_{stat}" for kind in ("base", "finetuned", "improvement")
             for stat in (*HEADLINE_STATS, *UNCERTAINTY_STATS)]
    headline = {}
    for row in summary.to_dict("records"):
        figures = {name: float(row[name]) for name in names if pd.notna(row.get(name))}
        headline[row["model"]] = {"seeds_ok": int(row["seeds"] - row["failed"]), **figures}
    return headline


def write_comparison(results: pd.DataFrame, task: TaskAdapter, params: Params, title: str,
                     folder: Path) -> tuple[pd.DataFrame, list[Path]]:
    """results.csv, summary.csv, summary.md and the plots of the comparison under `folder`:
    an experiment's reports, or a sweep's pooled ones (pipeline/pooling.py), with the test-set
    uncertainty measured from the cells' predictions. Returns the summary table and the files
    written."""
    metric = task.metric_names[0]
    lower = metric in task.lower_is_better
    uncertainty = measure_uncertainty(results, task, metric, params.dataset.name,
                                      best_model(results, metric, lower), params.report)
    results = with_cell_intervals(results, uncertainty)
    paths = [folder / RESULTS_FILE, folder / SUMMARY_FILE, folder / SUMMARY_MARKDOWN_FILE,
             folder / COMPARISON_PLOT]
    write_csv(results, paths[0])
    summary = summary_table(results)
    extra = summary_columns(uncertainty)
    if extra is not None:
        summary = summary.merge(extra, on="model", how="left")
    write_csv(summary, paths[1])
    write_text(summary_markdown(results, task.metric_names, task.lower_is_better, title,
                                uncertainty)
               + variant_sections(results, summary, metric, lower), paths[2])
    base_vs_finetuned(results, metric, lower, paths[3], uncertainty)
    if uncertainty is not None:
        paths.append(folder / TEST_INTERVALS_PLOT)
        test_intervals(uncertainty, paths[-1])
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


def log_best_model(params: Params, task: TaskAdapter, results: pd.DataFrame) -> None:
    """`tracking.log_model`: the best cell's shareable folder (what `pipeline.publish`
    uploads) as the artifact `model` of its run, and with `tracking.register` a version of that
    registered model, its card as the description. The best cell only: one model is what
    a reader takes away, and every seed's weights would multiply the store's size."""
    if successful(results).empty:
        log.warning("no successful cell: no model logged to MLflow")
        return
    row = best_cell(results, task)
    check_current(row)
    card = read_card(row)
    with tempfile.TemporaryDirectory() as scratch:
        write_share_folder(row, card, Path(scratch) / "model")
        log_model_folder(params, row["mlflow_run_id"], Path(scratch) / "model")
    where = f"runs:/{row['mlflow_run_id']}/model"
    if params.tracking.register:
        version = register_model(params, row["mlflow_run_id"], card_body(card),
                                 {"cell": cell_name(row["model"], int(row["seed"])),
                                  "experiment": params.experiment_name})
        where += f", registered as {params.tracking.register} version {version}"
    log.info("best cell %s-%s logged to MLflow: %s", row["model"], row["seed"], where)


def write_experiment_reports(params: Params, task: TaskAdapter,
                             manifest: dict[str, Any]) -> tuple[pd.DataFrame, list[Path]]:
    """Every report of this project from its cells' records; returns the results table and
    the files the parent MLflow run keeps."""
    results = results_table(params, task)
    summary, written = write_comparison(results, task, params,
                                        f"Results: {params.experiment_name}", Path("."))
    curves = curves_table(results)
    write_csv(curves, CURVES_FILE)
    training_curves(curves, checkpoint_metrics(params), TRAINING_CURVES_PLOT)
    headline = headline_metrics(summary, task.metric_names[0])
    write_json(HEADLINE_FILE, headline)
    write_csv(per_label_table(params), PER_LABEL_FILE)
    write_csv(label_distribution_table(manifest), LABEL_DISTRIBUTION_FILE)
    write_text(examples_markdown(params, task), EXAMPLES_FILE)
    cards = write_cards(params, task, results, manifest)
    return results, [*written, CURVES_FILE, TRAINING_CURVES_PLOT, HEADLINE_FILE, cards]
