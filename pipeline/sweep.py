"""What a `python -m pipeline.run -m ...` sweep ends with: one table of every job's cells,
the comparison across settings, models and seeds, plots, and a parent MLflow run.

Written to `<sweep folder>/reports/`. A row's `setting` is what its job's overrides set
apart from the seeds, so seeds of one setting pool together and settings are compared like
models. When a single numeric setting is swept (`train.data_fraction` in
data_size_curve), the fine-tuned metric is also plotted against it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from pipeline.config import PARAMS_FILE, Params, load_params
from pipeline.paths import REPORTS_DIR
from pipeline.plots import CURVE_COLUMNS, metric_over_setting, training_curves
from pipeline.stages.export_csv import (
    CURVES_FILE,
    PLOTS_DIR,
    RESULTS_FILE,
    TRAINING_CURVES_PLOT,
    validation_metrics,
    write_comparison,
)
from pipeline.tasks import get_task
from pipeline.tracking import client, experiment_name, log_parent_run

log = logging.getLogger("pipeline.sweep")

SEED_KEYS = ("seeds",)
MAX_CURVE_ROWS = 12  # one row of panels per model and setting: more would not be readable
OVERRIDES_FILE = Path(".hydra/overrides.yaml")


def job_folders(sweep_dir: Path) -> list[Path]:
    """Jobs that got as far as writing their results, in job order."""
    jobs = [path.parent.parent for path in sweep_dir.glob(f"*/{RESULTS_FILE}")]
    return sorted(jobs, key=lambda path: int(path.name) if path.name.isdigit() else path.name)


def job_overrides(job_dir: Path) -> dict[str, str]:
    overrides = yaml.safe_load((job_dir / OVERRIDES_FILE).read_text()) or []
    return dict(item.lstrip("+~").split("=", 1) for item in overrides)


def swept_keys(overrides: list[dict[str, str]]) -> list[str]:
    """Keys whose value differs between jobs, seeds apart."""
    keys = sorted({key for job in overrides for key in job} - set(SEED_KEYS))
    return [key for key in keys if len({job.get(key) for job in overrides}) > 1]


def sweep_results(sweep_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """Every job's results.csv, with its job number, swept values and `setting` label; the
    `model` column names model and setting together, so the comparison tells them apart."""
    jobs = job_folders(sweep_dir)
    overrides = [job_overrides(job) for job in jobs]
    keys = swept_keys(overrides)
    tables = []
    for job, values in zip(jobs, overrides, strict=True):
        table = pd.read_csv(job / RESULTS_FILE)
        setting = " ".join(f"{key}={values.get(key, '')}" for key in keys)
        table.insert(0, "job", job.name)
        table["job_dir"] = str(job)
        for key in keys:
            table[key] = values.get(key)
        table["setting"] = setting
        table["model_name"] = table["model"]
        table["model"] = (table["model"] + " " + setting).str.strip()
        tables.append(table)
    return pd.concat(tables, ignore_index=True), keys


def sweep_curves(results: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Every job's training curves, models named as in the sweep's results, and the
    validation metric each one kept its best checkpoint by."""
    tables, validation = [], {}
    for job, setting in results.groupby("job", sort=False)["setting"].first().items():
        job_dir = Path(results.loc[results["job"] == job, "job_dir"].iloc[0])
        label = {model: f"{model} {setting}".strip() for model in results["model_name"]}
        metrics = validation_metrics(load_params(job_dir / PARAMS_FILE))
        validation.update({label[model]: metric for model, metric in metrics.items()
                           if model in label})
        if (job_dir / CURVES_FILE).is_file():
            table = pd.read_csv(job_dir / CURVES_FILE)
            tables.append(table.assign(model=table["model"].map(label)))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(
        columns=CURVE_COLUMNS), validation


def numeric(values: pd.Series) -> pd.Series | None:
    converted = pd.to_numeric(values, errors="coerce")
    return None if converted.isna().any() else converted


def write_reports(results: pd.DataFrame, keys: list[str], params: Params,
                  folder: Path) -> list[Path]:
    task = get_task(params.task)
    main_metric = task.metric_names[0]
    _, paths = write_comparison(results, task, f"Sweep {folder.name}: {params.experiment_name}",
                                folder)
    curves, validation = sweep_curves(results)
    if curves["model"].nunique() <= MAX_CURVE_ROWS:
        paths.append(folder / TRAINING_CURVES_PLOT)
        training_curves(curves, validation, paths[-1])
    if len(keys) == 1 and (values := numeric(results[keys[0]])) is not None:
        curve = results.assign(setting=values, model=results["model_name"])
        paths.append(folder / PLOTS_DIR / f"{main_metric}_over_{keys[0]}.png")
        metric_over_setting(curve, keys[0], main_metric, main_metric in task.lower_is_better,
                            paths[-1])
    return paths


def children(params: Params, results: pd.DataFrame, job_dirs: list[Path],
             parent_filter: Callable[[Path], str]) -> list[str]:
    """Each job's own parent run (export_csv's, found by `parent_filter`), or the job's cells
    when DVC restored its table from the run cache (export_csv did not run)."""
    mlflow_client = client(params)
    experiment = mlflow_client.get_experiment_by_name(experiment_name(params))
    found = []
    for job_dir in job_dirs:
        runs = mlflow_client.search_runs(
            [experiment.experiment_id], max_results=1, order_by=["attributes.start_time DESC"],
            filter_string=f"tags.purpose = 'results' and {parent_filter(job_dir)}")
        cells = results.loc[results["job"] == job_dir.name, "mlflow_run_id"].dropna()
        found.extend([run.info.run_id for run in runs] or cells)
    return found


def report_sweep(sweep_dir: Path, parent_filter: Callable[[Path], str]) -> Path | None:
    """Pool the job folders of `sweep_dir` into `sweep_dir/reports/` and a parent MLflow run;
    return the summary's path, None when no job wrote its results."""
    jobs = job_folders(sweep_dir)
    if not jobs:
        log.warning("%s: no job wrote its results; no sweep report", sweep_dir)
        return None
    results, keys = sweep_results(sweep_dir)
    params = load_params(jobs[0] / PARAMS_FILE)
    paths = write_reports(results, keys, params, sweep_dir)
    optuna = sweep_dir / "optimization_results.yaml"
    run_id = log_parent_run(
        params, f"sweep {sweep_dir.name}", children(params, results, jobs, parent_filter),
        purpose="sweep",
        tags={"sweep_dir": str(sweep_dir.resolve()), "swept": " ".join(keys) or "seeds"},
        artifacts=[*paths, *([optuna] if optuna.is_file() else [])])
    log.info("sweep of %d jobs: %s; MLflow parent run %s", len(jobs),
             sweep_dir / REPORTS_DIR / "summary.md", run_id)
    return sweep_dir / REPORTS_DIR / "summary.md"


def run_dir_filter(job_dir: Path) -> str:
    return f"tags.run_dir = '{job_dir.resolve()}'"


class SweepReport(Callback):
    """Hydra callback (conf/config.yaml): after the last job of a sweep."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        report_sweep(Path(config.hydra.sweep.dir), run_dir_filter)
