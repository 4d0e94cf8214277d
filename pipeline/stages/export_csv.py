"""Stage `export_csv`: one row per model x seed in reports/results.csv, the comparison of
models across seeds (reports/summary.csv, reports/summary.md), the training curves
(reports/curves.csv), figures in reports/plots/, and a few test examples per model in
reports/examples.md.

A cell that failed keeps its row, with status `failed` and the error; the other
cells' results are kept.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.comparison import successful, summary_markdown, summary_table
from pipeline.config import Params, cell_name
from pipeline.errors import run_cli
from pipeline.io import atomic_file, read_json, write_json
from pipeline.paths import REPORTS_DIR, cell_dir, metrics_file, predictions_file
from pipeline.plots import CURVE_COLUMNS, base_vs_finetuned, training_curves
from pipeline.stages.common import FAILED, SUCCESS, load_experiment, read_manifest, setup_logging
from pipeline.stages.final_eval import comparison
from pipeline.stages.train import curve_points
from pipeline.tasks.base import TaskAdapter
from pipeline.tracking import log_parent_run

RESULTS_FILE = REPORTS_DIR / "results.csv"
SUMMARY_FILE = REPORTS_DIR / "summary.csv"
SUMMARY_MARKDOWN_FILE = REPORTS_DIR / "summary.md"
HEADLINE_FILE = REPORTS_DIR / "metrics.json"
HEADLINE_STATS = ("mean", "std", "ci95_low", "ci95_high")
CURVES_FILE = REPORTS_DIR / "curves.csv"
PLOTS_DIR = REPORTS_DIR / "plots"
COMPARISON_PLOT = PLOTS_DIR / "base_vs_finetuned.png"
TRAINING_CURVES_PLOT = PLOTS_DIR / "training_curves.png"
PER_LABEL_FILE = REPORTS_DIR / "per_label.csv"
LABEL_DISTRIBUTION_FILE = REPORTS_DIR / "label_distribution.csv"
EXAMPLES_FILE = REPORTS_DIR / "examples.md"
EXAMPLES_PER_MODEL = 3
EXAMPLE_CELL_CHARS = 300  # articles are cut: the table is for reading at a glance
PER_LABEL_COLUMNS = ["model", "seed", "stage", "label", "precision", "recall", "f1", "support"]
TRAIN_COLUMNS = ("train_seconds", "train_samples_per_second", "steps", "best_validation_metric")
log = logging.getLogger("export_csv")


def read_record(stage: str, cell: str) -> dict[str, Any]:
    path = metrics_file(stage, cell)
    if not path.is_file():
        return {"status": FAILED, "stage": stage, "error": f"{path} is missing"}
    return read_json(path)


def cell_row(params: Params, task: TaskAdapter, model: str, seed: int) -> dict[str, Any]:
    cell = cell_name(model, seed)
    baseline, trained, final = (read_record(stage, cell) for stage in ("baseline", "train", "final"))
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
        row.update(comparison(baseline, finals))
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
        for stage, name in (("baseline", "base"), ("final", "finetuned")):
            record = read_record(stage, cell_name(model, seed))
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
        path = cell_dir(cell_name(cell.model, cell.seed)) / "curves.json"
        if not path.is_file():
            log.warning("%s is missing: no training curve for this cell", path)
            continue
        rows.extend({"model": cell.model, "seed": cell.seed, "step": step, "name": name,
                     "value": value} for name, value, step in curve_points(read_json(path)))
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def validation_metrics(params: Params) -> dict[str, str]:
    """The metric each model kept its best checkpoint by: the one its curves should show."""
    return {model: params.model(model).training(params.train).metric_for_best_model
            for model in params.models}


def markdown_cell(value: Any) -> str:
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= EXAMPLE_CELL_CHARS else text[:EXAMPLE_CELL_CHARS - 1] + "…"


def examples_markdown(params: Params) -> str:
    """The first test predictions of each model's first successful seed, to read beside
    the numbers (inputs, references, predictions or generated texts)."""
    lines = [f"# Test examples: {params.experiment_name}", ""]
    for model in params.models:
        for seed in params.seeds:
            path = predictions_file(cell_name(model, seed))
            if path.is_file() and path.stat().st_size:
                table = pd.read_csv(path, keep_default_na=False).head(EXAMPLES_PER_MODEL)
                lines += [f"## {cell_name(model, seed)}", "",
                          "| " + " | ".join(table.columns) + " |",
                          "|" + "---|" * len(table.columns)]
                lines += ["| " + " | ".join(markdown_cell(value) for value in row) + " |"
                          for row in table.itertuples(index=False)]
                lines.append("")
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
    this stage's reports, or a sweep's pooled ones (pipeline.sweep). Returns the summary
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


def track_results(params: Params, results: pd.DataFrame, headline: dict[str, dict[str, float]],
                  artifacts: list[Path]) -> None:
    """The parent MLflow run of this table: its cells nested under it, the reports as
    artifacts, the headline metrics as `<model>.<figure>`. Tagged with this folder, so a
    sweep (pipeline.sweep) finds the parent of each of its jobs."""
    metrics = {f"{model}.{name}": value for model, figures in headline.items()
               for name, value in figures.items()}
    log_parent_run(params, f"{params.experiment_name}: {len(results)} cells",
                   results["mlflow_run_id"].dropna(), purpose="results",
                   tags={"run_dir": str(Path.cwd().resolve())}, metrics=metrics,
                   artifacts=artifacts)


def main() -> None:
    params, task = load_experiment()
    results = results_table(params, task)
    summary, written = write_comparison(results, task, f"Results: {params.experiment_name}",
                                        Path("."))
    curves = curves_table(results)
    write_csv(curves, CURVES_FILE)
    training_curves(curves, validation_metrics(params), TRAINING_CURVES_PLOT)
    headline = headline_metrics(summary, task.metric_names[0])
    write_json(HEADLINE_FILE, headline)
    track_results(params, results, headline,
                  [*written, CURVES_FILE, TRAINING_CURVES_PLOT, HEADLINE_FILE])
    write_csv(per_label_table(params), PER_LABEL_FILE)
    write_csv(label_distribution_table(read_manifest(params)), LABEL_DISTRIBUTION_FILE)
    write_text(examples_markdown(params), EXAMPLES_FILE)
    print(results[["status", "model", "seed", *[c for c in results if c.startswith("finetuned_")]]]
          .to_string(index=False))


if __name__ == "__main__":
    setup_logging()
    run_cli(main)
