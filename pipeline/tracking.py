"""MLflow bookkeeping: one run per model x seed cell, in a sqlite store inside the repository.

The train stage opens the cell's run and logs its parameters and curves; the
final_eval stage adds the baseline and fine-tuned metrics and the artifacts, and
closes it. The run id travels between them in the train stage's outputs.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pipeline.config import Params
from pipeline.errors import PipelineError
from pipeline.io import write_json
from pipeline.paths import fine_tuned_model_dir, repository_root

if TYPE_CHECKING:
    from pipeline.experiment import Cell

SECRET_KEY = re.compile(r"token|password|passwd|secret|api[_-]?key|credential", re.IGNORECASE)
REDACTED = "***"
BATCH = 1000  # MLflow accepts at most 1000 metrics per log_batch call


def tracking_uri(configured: str | None) -> str:
    if configured:
        return configured
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{repository_root() / 'mlflow.db'}"


def experiment_name(params: Params) -> str:
    return f"{params.task.name}/{params.dataset.name}"


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`; values under secret-like keys are redacted."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if SECRET_KEY.search(str(key)):
            flat[name] = REDACTED
        elif isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def bounded_params(data: Mapping[str, Any], max_length: int) -> dict[str, str]:
    """Flattened parameters with values cut to `max_length` characters (MLflow has a limit)."""
    params = {}
    for key, value in flatten(data).items():
        text = str(value)
        params[key] = text if len(text) <= max_length else text[: max_length - 3] + "..."
    return params


def git_commit() -> str:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True, cwd=repository_root())
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return result.stdout.strip()


def client(params: Params):
    """A client whose store is ready. Opening a sqlite store creates or upgrades its tables;
    cells running in parallel (`dvc queue start -j 2`) take turns at that under a file lock,
    or two of them would race to create the same tables. Later writes wait on sqlite's own
    lock (MLflow sets a busy timeout)."""
    from filelock import FileLock
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(params.tracking.tracking_uri)
    if not uri.startswith("sqlite:///"):
        return MlflowClient(tracking_uri=uri)
    database = Path(uri.removeprefix("sqlite:///"))
    check_store(params)
    with FileLock(f"{database}.lock", timeout=600):
        return MlflowClient(tracking_uri=uri)


def check_store(params: Params) -> None:
    """Before a stage's work: a local store MLflow cannot write stops it with one line."""
    uri = tracking_uri(params.tracking.tracking_uri)
    if uri.startswith("sqlite:///"):
        check_writable(Path(uri.removeprefix("sqlite:///")))


def check_writable(database: Path) -> None:
    """sqlite writes the store and a journal beside it: say which cannot be written, before a
    stage works for nothing (rather than a traceback at its first MLflow call)."""
    for path in (database, database.parent):
        if path.exists() and not os.access(path, os.W_OK):
            what = "the file" if path == database else "its folder"
            raise PipelineError(f"{database}: MLflow cannot write its run store ({what} is "
                                "read-only). Make it writable (chmod u+w), or point "
                                "tracking.tracking_uri (or MLFLOW_TRACKING_URI) at another store.")


def artifact_location(uri: str) -> str | None:
    """Artifacts of a sqlite store go beside it (also when a sweep job, in its own folder,
    creates the experiment); a server decides for itself."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()


def _experiment_id(mlflow_client, name: str) -> str:
    from mlflow.exceptions import MlflowException

    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return mlflow_client.create_experiment(name, artifact_location=artifact_location(
            mlflow_client.tracking_uri))
    except MlflowException:  # another process created it first
        return mlflow_client.get_experiment_by_name(name).experiment_id


def run_tags(params: Params, purpose: str) -> dict[str, str]:
    """Tags every run carries, so that `mlflow.search_runs(filter_string="tags.purpose = ...")`
    and the UI's filters find runs by experiment, task, dataset and commit."""
    commit = git_commit()
    tags = {"task": params.task.name, "dataset": params.dataset.name,
            "experiment": params.experiment_name, "purpose": purpose, "git_commit": commit,
            "mlflow.source.git.commit": commit}
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_experiment"] = os.environ["DVC_EXP_NAME"]
    return tags


def start_cell_run(params: Params, model: str, seed: int, logged: Mapping[str, Any],
                   purpose: str = "fine-tune") -> str:
    """Open the MLflow run of one model x seed cell (or of a pre-training); return its id."""
    from mlflow.entities import Param

    mlflow_client = client(params)
    tags = {"model": model, "seed": str(seed), "run_dir": str(Path.cwd().resolve()),
            **run_tags(params, purpose)}
    name = f"{model}-seed{seed}" if purpose == "fine-tune" else f"{purpose}-{model}"
    experiment = _experiment_id(mlflow_client, experiment_name(params))
    end_abandoned_runs(mlflow_client, experiment, tags)
    run = mlflow_client.create_run(experiment, run_name=name, tags=tags)
    values = bounded_params(logged, params.tracking.max_param_length)
    items = [Param(key, value) for key, value in values.items()]
    for start in range(0, len(items), 100):
        mlflow_client.log_batch(run.info.run_id, params=items[start:start + 100])
    return run.info.run_id


def log_metrics(params: Params, run_id: str,
                points: Iterable[tuple[str, float, int]]) -> None:
    """Log (name, value, step) points in batches, not one call per point."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(name, float(value), now, int(step)) for name, value, step in points]
    mlflow_client = client(params)
    for start in range(0, len(metrics), BATCH):
        mlflow_client.log_batch(run_id, metrics=metrics[start:start + BATCH])


def log_artifacts(params: Params, run_id: str, paths: Iterable[Path]) -> None:
    mlflow_client = client(params)
    for path in paths:
        if path.is_dir():
            mlflow_client.log_artifacts(run_id, str(path), path.name)
        else:
            mlflow_client.log_artifact(run_id, str(path))


def per_label_metrics(reports: Mapping[str, Any]) -> dict[str, float]:
    """`finetuned_PER_f1`-style metrics from the baseline and fine-tuned per-label reports."""
    return {f"{stage}_{label}_{name}": values[name]
            for stage, report in reports.items() if report
            for label, values in report.get("per_label", {}).items()
            for name in ("precision", "recall", "f1")}


def log_evaluation(cell: Cell, run_id: str, metrics: Mapping[str, float],
                   reports: Mapping[str, Any], predictions: Path,
                   manifest: Mapping[str, Any]) -> None:
    """A cell's test metrics (base, fine-tuned, gain, per label) and its artifacts: the
    resolved config of this cell, the reports, the predictions, the label distribution."""
    params = cell.params
    metrics = {**metrics, **per_label_metrics(reports)}
    log_metrics(params, run_id, [(name, value, 0) for name, value in metrics.items()])
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "config.yaml"
        resolved = dataclasses.asdict(params)
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
        if params.tracking.log_model:
            artifacts.append(fine_tuned_model_dir(cell.name))
        log_artifacts(params, run_id, artifacts)


def end_abandoned_runs(mlflow_client: Any, experiment: str, tags: Mapping[str, str]) -> None:
    """Runs of this cell still RUNNING in this folder were left by a process killed outright
    (SIGKILL; an interrupt ends them itself): end them as KILLED before opening a new one."""
    keys = ("model", "seed", "purpose", "experiment", "run_dir", "dvc_experiment")
    conditions = [f"tags.{key} = '{tags[key]}'" for key in keys if key in tags]
    for run in mlflow_client.search_runs([experiment], " and ".join(
            [*conditions, "attributes.status = 'RUNNING'"])):
        mlflow_client.set_tag(run.info.run_id, "error", "its process ended without closing it")
        mlflow_client.set_terminated(run.info.run_id, "KILLED")


def reopen_run(params: Params, run_id: str) -> None:
    """A stage goes on with a cell's run (resumed training, evaluation): RUNNING meanwhile."""
    client(params).update_run(run_id, status="RUNNING")


def finish_run(params: Params, run_id: str, failed_error: str | None = None,
               killed: bool = False) -> None:
    """End a run: FINISHED, FAILED with its error, or KILLED (interrupted)."""
    mlflow_client = client(params)
    if failed_error is not None:
        mlflow_client.set_tag(run_id, "error", failed_error[:5000])
    status = "KILLED" if killed else "FAILED" if failed_error is not None else "FINISHED"
    mlflow_client.set_terminated(run_id, status)


def log_parent_run(params: Params, name: str, children: Iterable[str], purpose: str,
                   tags: Mapping[str, str] | None = None,
                   metrics: Mapping[str, float] | None = None,
                   artifacts: Iterable[Path] = ()) -> str:
    """One finished run that holds a table of cells (one `dvc repro`'s, or a sweep's), with
    the cells nested under it. A cell belongs to one parent: the latest table it is in."""
    from mlflow.entities import Metric, RunTag

    mlflow_client = client(params)
    run = mlflow_client.create_run(_experiment_id(mlflow_client, experiment_name(params)),
                                   run_name=name, tags={**run_tags(params, purpose), **(tags or {})})
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    values = [Metric(key, float(value), now, 0) for key, value in (metrics or {}).items()
              if value == value]  # NaN (a failed model) has no place in a metric
    for start in range(0, len(values), BATCH):
        mlflow_client.log_batch(run_id, metrics=values[start:start + BATCH])
    log_artifacts(params, run_id, artifacts)
    for child in children:
        mlflow_client.log_batch(child, tags=[RunTag("mlflow.parentRunId", run_id),
                                             RunTag("parent_name", name)])
    mlflow_client.set_terminated(run_id, "FINISHED")
    return run_id
