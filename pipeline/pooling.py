"""Pooling several runs of the DAG into one report: a Hydra sweep's jobs
(`python -m pipeline.run -m`, pipeline/sweep.py) or queued DVC experiments
(`python -m pipeline.pool_experiments`). Both hand a list of `Job`s to `pool_jobs`.

Written to `<folder>/reports/`: every job's cells in one results.csv, the comparison across
settings, models and seeds, plots, and a parent MLflow run holding each job's own parent
run. A row's `setting` is what its job's overrides set apart from the seeds, so the seeds of
one setting pool together and settings are compared like models. When a single numeric
setting is swept (`train.data_fraction` in data_size_curve), the fine-tuned metric is also
plotted against it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline.config import PARAMS_FILE, Params, load_params
from pipeline.paths import CURVES_FILE, PLOTS_DIR, REPORTS_DIR, RESULTS_FILE, TRAINING_CURVES_PLOT
from pipeline.plots import CURVE_COLUMNS, metric_over_setting, training_curves
from pipeline.reports import checkpoint_metrics, write_comparison
from pipeline.tasks import get_task
from pipeline.tracking import client, experiment_name, log_parent_run

log = logging.getLogger(__name__)

SEED_KEYS = ("seeds",)
MAX_CURVE_ROWS = 12  # one row of panels per model and setting: more would not be readable


@dataclass(frozen=True)
class Job:
    """One run of the whole DAG: its name, the folder holding its params.yaml and reports/,
    the `key: value` settings it was given, and the MLflow filter that finds its own parent
    run (the report stage's)."""

    name: str
    folder: Path
    overrides: dict[str, str] = field(default_factory=dict)
    parent_filter: str = ""


def finished(jobs: list[Job]) -> list[Job]:
    """The jobs that got as far as writing their results."""
    return [job for job in jobs if (job.folder / RESULTS_FILE).is_file()]


def swept_keys(jobs: list[Job]) -> list[str]:
    """Keys whose value differs between jobs, seeds apart."""
    keys = sorted({key for job in jobs for key in job.overrides} - set(SEED_KEYS))
    return [key for key in keys if len({job.overrides.get(key) for job in jobs}) > 1]


def pooled_results(jobs: list[Job], keys: list[str]) -> pd.DataFrame:
    """Every job's results.csv, with its job name, swept values and `setting` label; the
    `model` column names model and setting together, so the comparison tells them apart."""
    tables = []
    for job in jobs:
        table = pd.read_csv(job.folder / RESULTS_FILE)
        setting = " ".join(f"{key}={job.overrides.get(key, '')}" for key in keys)
        table.insert(0, "job", job.name)
        table["job_dir"] = str(job.folder)
        for key in keys:
            table[key] = job.overrides.get(key)
        table["setting"] = setting
        table["model_name"] = table["model"]
        table["model"] = (table["model"] + " " + setting).str.strip()
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def pooled_curves(results: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Every job's training curves, models named as in the pooled results, and the
    validation metric each one kept its best checkpoint by."""
    tables, validation = [], {}
    for job_dir, setting in results.groupby("job_dir", sort=False)["setting"].first().items():
        label = {model: f"{model} {setting}".strip() for model in results["model_name"]}
        metrics = checkpoint_metrics(load_params(Path(job_dir) / PARAMS_FILE))
        validation.update({label[model]: metric for model, metric in metrics.items()
                           if model in label})
        if (Path(job_dir) / CURVES_FILE).is_file():
            table = pd.read_csv(Path(job_dir) / CURVES_FILE)
            tables.append(table.assign(model=table["model"].map(label)))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(
        columns=CURVE_COLUMNS), validation


def numeric(values: pd.Series) -> pd.Series | None:
    converted = pd.to_numeric(values, errors="coerce")
    return None if converted.isna().any() else converted


def write_pooled_reports(results: pd.DataFrame, keys: list[str], params: Params,
                         folder: Path) -> list[Path]:
    task = get_task(params.task)
    main_metric = task.metric_names[0]
    _, paths = write_comparison(results, task, params,
                                f"Sweep {folder.name}: {params.experiment_name}", folder)
    curves, validation = pooled_curves(results)
    if curves["model"].nunique() <= MAX_CURVE_ROWS:
        paths.append(folder / TRAINING_CURVES_PLOT)
        training_curves(curves, validation, paths[-1])
    if len(keys) == 1 and (values := numeric(results[keys[0]])) is not None:
        curve = results.assign(setting=values, model=results["model_name"])
        paths.append(folder / PLOTS_DIR / f"{main_metric}_over_{keys[0]}.png")
        metric_over_setting(curve, keys[0], main_metric, main_metric in task.lower_is_better,
                            paths[-1])
    return paths


def nested_runs(params: Params, results: pd.DataFrame, jobs: list[Job]) -> list[str]:
    """Each job's own parent run, or the job's cells when DVC restored its table from the run
    cache (the report stage did not run, so there is no parent of it)."""
    mlflow_client = client(params)
    experiment = mlflow_client.get_experiment_by_name(experiment_name(params))
    found = []
    for job in jobs:
        runs = mlflow_client.search_runs(
            [experiment.experiment_id], max_results=1, order_by=["attributes.start_time DESC"],
            filter_string=f"tags.purpose = 'results' and {job.parent_filter}")
        cells = results.loc[results["job"] == job.name, "mlflow_run_id"].dropna()
        found.extend([run.info.run_id for run in runs] or cells)
    return found


def pool_jobs(folder: Path, jobs: list[Job], extra_artifacts: list[Path] = ()) -> Path | None:
    """Pool the finished jobs into `folder/reports/` and a parent MLflow run; return the
    summary's path, None when no job wrote its results."""
    jobs = finished(jobs)
    if not jobs:
        log.warning("%s: no job wrote its results; no pooled report", folder)
        return None
    keys = swept_keys(jobs)
    results = pooled_results(jobs, keys)
    params = load_params(jobs[0].folder / PARAMS_FILE)
    paths = write_pooled_reports(results, keys, params, folder)
    run_id = log_parent_run(
        params, f"sweep {folder.name}", nested_runs(params, results, jobs), purpose="sweep",
        tags={"sweep_dir": str(folder.resolve()), "swept": " ".join(keys) or "seeds"},
        artifacts=[*paths, *extra_artifacts])
    log.info("%d jobs pooled: %s; MLflow parent run %s", len(jobs),
             folder / REPORTS_DIR / "summary.md", run_id)
    return folder / REPORTS_DIR / "summary.md"
