"""Two queued experiments run at once (`dvc queue start -j 2`) and write to the same MLflow sqlite
store, in the user's repository (not in DVC's temporary copies), without losing a run."""

from __future__ import annotations

import io
import time

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.stages.test_train_resume import RESUME_EXPERIMENT
from tests.test_pipeline_e2e import make_project, run

pytestmark = pytest.mark.e2e

QUICK_EXPERIMENT = RESUME_EXPERIMENT.replace("epochs: 4", "epochs: 1")
RATES = ("1e-4", "3e-4")
#: README's `dvc exp show` view: drop every column but these.
SHORT_VIEW_DROP = r"(?!Experiment|Created|seeds|dataset\.|train\.|models\.|.*_mean$)"


def test_two_queued_experiments_share_one_mlflow_store(tmp_path):
    root = make_project(tmp_path / "project", QUICK_EXPERIMENT)
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
    runs = client.search_runs([experiment.experiment_id], "tags.purpose = 'fine-tune'")
    assert sorted(float(r.data.params["train.learning_rate"]) for r in runs) == [1e-4, 3e-4]
    assert all(r.info.status == "FINISHED" and r.data.tags.get("dvc_experiment") for r in runs)
    assert all("finetuned_accuracy" in r.data.metrics for r in runs)
    parents = client.search_runs([experiment.experiment_id], "tags.purpose = 'results'")
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
