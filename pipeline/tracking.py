"""MLflow bookkeeping: one run per model x seed cell, in a sqlite store inside the repository.

The train stage opens the cell's run and logs its parameters and curves; the
final_eval stage adds the baseline and fine-tuned metrics and the artifacts, and
closes it. The run id travels between them in the train stage's outputs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pipeline.config import Params
from pipeline.errors import PipelineError
from pipeline.io import write_json
from pipeline.paths import raw_dir, repository_root
from pipeline.tasks import get_task

if TYPE_CHECKING:
    from pipeline.experiment import Cell

SECRET_KEY = re.compile(r"token|password|passwd|secret|api[_-]?key|credential", re.IGNORECASE)
REDACTED = "***"
BATCH = 1000  # MLflow accepts at most 1000 metrics per log_batch call
#: The experiment kind MLflow's UI files our experiments under (a "Model training" kind).
EXPERIMENT_KIND = "finetuning"
#: The shared view of the runs table that `make ui` and the report stage link to.
VIEW_KEY = "finetuning"
#: What the UI's links need: the Model training view (MLflow 3.17 opens the GenAI overview
#: unless the URL or the user's toggle says otherwise) and our shared view of the runs.
UI_QUERY = "workflowType=machine_learning"
UI_ADDRESS = "http://127.0.0.1:5000"
DIGEST_CHARS = 12  # MLflow keeps at most 36 characters of a dataset digest
MODEL_ARTIFACT = "model"
DESCRIPTION_CHARS = 5000  # the registry's description column


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


def git(*args: str) -> str | None:
    """A git answer about the user's repository, or None outside one."""
    try:
        result = subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                                cwd=repository_root())
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout.strip()


def git_commit() -> str:
    return git("rev-parse", "HEAD") or "unknown"


def source_tags() -> dict[str, str]:
    """MLflow's own source tags, which its run page shows: the script (a stage) and the git
    commit and branch it ran from."""
    script = Path(sys.argv[0]).resolve()
    name = script.relative_to(Path.cwd().resolve()) if script.is_relative_to(Path.cwd().resolve()) \
        else script
    tags = {"mlflow.source.name": str(name), "mlflow.source.type": "LOCAL",
            "mlflow.source.git.commit": git_commit()}
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    if branch and branch != "HEAD":  # HEAD: a detached checkout has no branch
        tags["mlflow.source.git.branch"] = branch
    return tags


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


def runs_view(params: Params) -> dict[str, Any]:
    """The runs table as a fine-tuning experiment wants it: the Dataset column and the main
    metric before, after and gained, sorted by the fine-tuned value, which also lists the
    cells flat (sorted by anything but the start time, MLflow stops folding children under
    their parents)."""
    task = get_task(params.task)
    metric = task.metric_names[0]
    return {"selectedColumns": ["attributes.`Dataset`", *(f"metrics.`{kind}_{metric}`" for kind
                                                          in ("base", "finetuned", "improvement"))],
            "orderByKey": f"metrics.`finetuned_{metric}`",
            "orderByAsc": metric in task.lower_is_better}


def experiment_tags(params: Params) -> dict[str, str]:
    """Tags that make MLflow's UI show a fine-tuning experiment: its kind (MLflow 3.17's UI
    still picks the view from the link, see `runs_link`) and the shared view of its runs."""
    now = int(time.time() * 1000)
    view = {"name": "Fine-tuning", "createdAt": now, "updatedAt": now,
            "state": json.dumps(runs_view(params))}
    return {"mlflow.experimentKind": EXPERIMENT_KIND,
            f"mlflow.sharedViewState.{VIEW_KEY}": json.dumps(view)}


def _experiment_id(mlflow_client, params: Params) -> str:
    """The experiment of `params`, created with its tags if missing; one made before the tags
    existed gets them."""
    from mlflow.exceptions import MlflowException

    name = experiment_name(params)
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return mlflow_client.create_experiment(name, artifact_location=artifact_location(
                mlflow_client.tracking_uri), tags=experiment_tags(params))
        except MlflowException:  # another process created it first
            experiment = mlflow_client.get_experiment_by_name(name)
    for key, value in experiment_tags(params).items():
        if key not in experiment.tags:
            mlflow_client.set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


def runs_link(experiment: Any, address: str = UI_ADDRESS) -> str:
    """The UI's page of an experiment's runs in the Model training view, through our shared
    view when the experiment has it (the link must name the runs page: the experiment's bare
    page drops the view on its way there)."""
    link = f"{address}/#/experiments/{experiment.experiment_id}/runs?{UI_QUERY}"
    if f"mlflow.sharedViewState.{VIEW_KEY}" in experiment.tags:
        link += f"&viewStateShareKey={VIEW_KEY}"
    return link


def experiment_link(params: Params, address: str = UI_ADDRESS) -> str:
    mlflow_client = client(params)
    return runs_link(mlflow_client.get_experiment(_experiment_id(mlflow_client, params)), address)


def run_tags(params: Params, purpose: str) -> dict[str, str]:
    """Tags every run carries, so that `mlflow.search_runs(filter_string="tags.purpose = ...")`
    and the UI's filters find runs by experiment, task, dataset and commit."""
    source = source_tags()
    tags = {"task": params.task.name, "dataset": params.dataset.name,
            "experiment": params.experiment_name, "purpose": purpose,
            "git_commit": source["mlflow.source.git.commit"], **source}
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
    experiment = _experiment_id(mlflow_client, params)
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
        log_artifacts(params, run_id, artifacts)


def dataset_source(params: Params, manifest: Mapping[str, Any], split: str) -> tuple[str, str]:
    """MLflow's source type and source (JSON) of one split: the snapshot DVC keeps, and where
    it came from."""
    origin = manifest["source"]
    file = raw_dir(params.dataset.name) / manifest["splits"][split]["file"]
    if origin["source"] == "hub":
        return "hugging_face", json.dumps({"path": origin["path"], "config_name": origin["subset"],
                                           "revision": origin["revision"], "split": split,
                                           "snapshot": str(file)})
    return "local", json.dumps({"uri": str(file), "origin": f"{origin['source']}:{origin['path']}",
                                "revision": origin["revision"]})


def log_dataset_inputs(params: Params, run_id: str, manifest: Mapping[str, Any]) -> None:
    """The splits a cell is trained, validated and tested on, as the run's dataset inputs (the
    UI's Dataset column and run page show them): named after the dataset, the digest from
    the split's sha256 in the manifest, the split as context."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    inputs = []
    for split, info in manifest["splits"].items():
        source_type, source = dataset_source(params, manifest, split)
        dataset = Dataset(name=params.dataset.name, digest=info["sha256"][:DIGEST_CHARS],
                          source_type=source_type, source=source,
                          profile=json.dumps({"num_rows": info["rows"], "sha256": info["sha256"]}))
        inputs.append(DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, split)]))
    client(params).log_inputs(run_id, datasets=inputs)


def log_model_folder(params: Params, run_id: str, folder: Path) -> None:
    """A shareable model folder (pipeline/sharing.py) as the run's artifact `model`: what
    `runs:/<run>/model` names."""
    client(params).log_artifacts(run_id, str(folder), MODEL_ARTIFACT)


def bounded_description(text: str) -> str:
    """The registry keeps descriptions of at most 5000 characters: cut longer ones, saying so."""
    if len(text) <= DESCRIPTION_CHARS:
        return text
    note = "\n\n(cut here: the whole card is README.md in the version's files)"
    return text[:DESCRIPTION_CHARS - len(note)] + note


def register_model(params: Params, run_id: str, description: str, tags: Mapping[str, str]) -> str:
    """Register the run's `model` artifact under `tracking.register` (once per run: a report
    written again adds no version); return the version."""
    from mlflow.exceptions import MlflowException

    name = params.tracking.register
    mlflow_client = client(params)
    existing = mlflow_client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    if existing:
        return str(existing[0].version)
    try:
        mlflow_client.create_registered_model(
            name, description=f"Fine-tuned models of the experiment {experiment_name(params)}.")
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = mlflow_client.create_model_version(
        name, source=f"runs:/{run_id}/{MODEL_ARTIFACT}", run_id=run_id,
        description=bounded_description(description), tags=dict(tags))
    return str(version.version)


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
    run = mlflow_client.create_run(_experiment_id(mlflow_client, params), run_name=name,
                                   tags={**run_tags(params, purpose), **(tags or {})})
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
