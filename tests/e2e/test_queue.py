"""Two queued experiments run at once (`dvc queue start -j 2`) and write to the same MLflow sqlite
store, in the user's repository (not in DVC's temporary copies), without losing a run; then
`python -m pipeline.pool_experiments` pools them into one report and parent run."""

from __future__ import annotations

import io
import sys
import time

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.e2e.project import make_project, run
from tests.e2e.test_train_resume import RESUME_EXPERIMENT

QUICK_EXPERIMENT = RESUME_EXPERIMENT.replace("epochs: 4", "epochs: 1")
RATES = ("1e-4", "3e-4")
#: README's `dvc exp show` view: drop every column but these.
SHORT_VIEW_DROP = r"(?!Experiment|Created|seeds|dataset\.|train\.|models\.|.*_mean$)"


@pytest.fixture(scope="module")
def queued(tmp_path_factory):
    """Two experiments queued and run 2 at a time: the project, its MLflow client and
    experiment, and each experiment's parent run."""
    root = make_project(tmp_path_factory.mktemp("queue") / "project", QUICK_EXPERIMENT)
    for rate in RATES:
        run(["dvc", "exp", "run", "--queue", "-S", "experiment=e2e_tiny",
             "-S", f"models.tiny.train.learning_rate={rate}"], root)
    run(["dvc", "queue", "start", "-j", "2"], root)
    deadline = time.monotonic() + 600
    while True:
        status = run(["dvc", "queue", "status"], root).stdout
        if "Queued" not in status and "Running" not in status:
            break
        assert time.monotonic() < deadline, status
        time.sleep(3)
    assert status.count("Success") == 2, status
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("text_classification/rotten_tomatoes")
    parents = client.search_runs([experiment.experiment_id], "tags.purpose = 'results'")
    return root, client, experiment, parents


def test_two_queued_experiments_share_one_mlflow_store(queued):
    root, client, experiment, parents = queued
    runs = client.search_runs([experiment.experiment_id], "tags.purpose = 'fine-tune'")
    assert sorted(float(r.data.params["train.learning_rate"]) for r in runs) == [1e-4, 3e-4]
    assert all(r.info.status == "FINISHED" and r.data.tags.get("dvc_experiment") for r in runs)
    assert all("finetuned_accuracy" in r.data.metrics for r in runs)
    assert sorted(p.data.tags["dvc_experiment"] for p in parents) == sorted(
        r.data.tags["dvc_experiment"] for r in runs)
    for parent in parents:
        (cell,) = client.search_runs([experiment.experiment_id],
                                     f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
        assert cell.data.tags["dvc_experiment"] == parent.data.tags["dvc_experiment"]

    # the short view the README gives: what differs, and each model's means over its seeds
    shown = pd.read_csv(io.StringIO(run(["dvc", "exp", "show", "--csv", "--only-changed", "--drop",
                                         SHORT_VIEW_DROP], root).stdout))
    assert not [column for column in shown if column.startswith("metrics/")], list(shown.columns)
    assert {"models.tiny.train.learning_rate", "tiny.finetuned_accuracy_mean"} <= set(shown.columns)
    queued = shown[shown["Experiment"].isin([p.data.tags["dvc_experiment"] for p in parents])]
    assert len(queued) == 2, shown
    assert sorted(queued["tiny.finetuned_accuracy_mean"].astype(float)) == pytest.approx(sorted(
        p.data.metrics["tiny.finetuned_accuracy_mean"] for p in parents), abs=1e-5)


def test_the_queued_experiments_pool_into_one_report_and_parent_run(queued):
    root, client, experiment, parents = queued
    done = run([sys.executable, "-m", "pipeline.pool_experiments"], root)
    (folder,) = (root / "experiments").iterdir()
    assert "2 experiments pooled" in done.stdout
    results = pd.read_csv(folder / "reports/results.csv")
    assert sorted(results["models.tiny.train.learning_rate"].astype(float)) == [1e-4, 3e-4]
    assert set(results["job"]) == {p.data.tags["dvc_experiment"] for p in parents}
    summary = pd.read_csv(folder / "reports/summary.csv")
    assert len(summary) == 2  # one row per setting: tiny at each learning rate
    assert (folder / "reports/plots/base_vs_finetuned.png").stat().st_size > 10_000
    (pooled,) = client.search_runs([experiment.experiment_id], "tags.purpose = 'sweep'")
    assert pooled.data.tags["swept"] == "models.tiny.train.learning_rate"
    nested = client.search_runs([experiment.experiment_id],
                                f"tags.mlflow.parentRunId = '{pooled.info.run_id}'")
    assert sorted(run.info.run_id for run in nested) == sorted(p.info.run_id for p in parents)
