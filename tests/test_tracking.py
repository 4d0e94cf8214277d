import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from pipeline.compose import compose
from pipeline.config import Params, parse_params
from pipeline.errors import PipelineError
from pipeline.tracking import (
    REDACTED,
    bounded_description,
    bounded_params,
    check_store,
    client,
    experiment_name,
    finish_run,
    flatten,
    log_dataset_inputs,
    log_model_folder,
    register_model,
    reopen_run,
    repository_root,
    runs_link,
    start_cell_run,
    tracking_uri,
)
from tests.conftest import REPO


def test_flatten_nests_with_dots_and_redacts_secret_like_keys():
    flat = flatten({"a": {"b": 1, "hub_token": "hf_abc"}, "password": "p", "c": {}})
    assert flat == {"a.b": 1, "a.hub_token": REDACTED, "password": REDACTED, "c": {}}


def test_params_are_bounded_in_length():
    params = bounded_params({"id2label": {str(i): "x" * 50 for i in range(2)}, "long": "y" * 99},
                            max_length=20)
    assert params["long"] == "y" * 17 + "..."
    assert all(len(value) <= 20 for value in params.values())


def test_queued_experiments_track_into_the_users_repository():
    temp_copy = Path("/home/me/project/.dvc/tmp/exps/tmpabc123/sub")
    assert repository_root(temp_copy) == Path("/home/me/project")
    assert repository_root(Path("/home/me/project")) == Path("/home/me/project")


def test_default_store_is_an_absolute_sqlite_path(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking_uri(None)
    assert uri.startswith("sqlite:////") and uri.endswith("/mlflow.db")
    assert tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


@contextmanager
def immutable(path: Path) -> Iterator[None]:
    """A file nobody may write, root included (chattr +i): chmod alone does not stop root."""
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available on this file system")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def store_params(database: Path) -> Params:
    data = yaml.safe_load(compose([f"tracking.tracking_uri=sqlite:///{database}"], REPO / "conf"))
    return parse_params(data)


def test_a_store_mlflow_cannot_write_is_refused_in_one_line(tmp_path):
    database = tmp_path / "mlflow.db"
    database.write_bytes(b"")
    params = store_params(database)
    check_store(params)
    with immutable(database), pytest.raises(PipelineError) as error:
        check_store(params)
    assert str(error.value) == (f"{database}: MLflow cannot write its run store (the file is "
                                "read-only). Make it writable (chmod u+w), or point "
                                "tracking.tracking_uri (or MLFLOW_TRACKING_URI) at another store.")


def test_runs_left_running_by_a_killed_process_end_as_killed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = store_params(tmp_path / "mlflow.db")
    abandoned = start_cell_run(params, "m", 1, {})  # its process then killed outright
    other_seed = start_cell_run(params, "m", 2, {})
    current = start_cell_run(params, "m", 1, {})
    mlflow_client = client(params)
    status = {run: mlflow_client.get_run(run).info.status for run in (abandoned, other_seed, current)}
    assert status == {abandoned: "KILLED", other_seed: "RUNNING", current: "RUNNING"}
    finish_run(params, current, killed=True)
    assert mlflow_client.get_run(current).info.status == "KILLED"
    reopen_run(params, current)
    assert mlflow_client.get_run(current).info.status == "RUNNING"
    finish_run(params, current)
    assert mlflow_client.get_run(current).info.status == "FINISHED"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Params:
    """One sqlite store for the tests below (making its tables takes seconds); each test works
    in a folder of its own, which runs are tagged with."""
    return store_params(tmp_path_factory.mktemp("store") / "mlflow.db")


MANIFEST = {"source": {"source": "package", "path": "pkg/data.csv", "subset": None,
                       "revision": "1.0"},
            "splits": {"train": {"file": "train.parquet", "rows": 40, "sha256": "a" * 64},
                       "validation": {"file": "validation.parquet", "rows": 8, "sha256": "b" * 64},
                       "test": {"file": "test.parquet", "rows": 9, "sha256": "c" * 64}}}


def test_experiments_are_fine_tuning_ones_with_a_shared_view_of_their_cells(store, tmp_path,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = store
    start_cell_run(params, "m", 1, {})
    experiment = client(params).get_experiment_by_name(experiment_name(params))
    assert experiment.tags["mlflow.experimentKind"] == "finetuning"
    view = json.loads(experiment.tags["mlflow.sharedViewState.finetuning"])
    assert view["name"] == "Fine-tuning"
    assert json.loads(view["state"]) == {
        "selectedColumns": ["attributes.`Dataset`", "metrics.`base_accuracy`",
                            "metrics.`finetuned_accuracy`", "metrics.`improvement_accuracy`"],
        "orderByKey": "metrics.`finetuned_accuracy`", "orderByAsc": False}
    assert runs_link(experiment) == (
        f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs"
        "?workflowType=machine_learning&viewStateShareKey=finetuning")


def test_an_experiment_made_before_gets_the_tags_and_lower_is_better_sorts_up(store, tmp_path,
                                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = yaml.safe_load(compose([f"tracking.tracking_uri={store.tracking.tracking_uri}",
                                   "experiment=mlm_rotten_tomatoes"], REPO / "conf"))
    params = parse_params(data)
    mlflow_client = client(params)
    made = mlflow_client.create_experiment(experiment_name(params))
    assert runs_link(mlflow_client.get_experiment(made)).endswith("?workflowType=machine_learning")
    start_cell_run(params, "m", 1, {})
    experiment = mlflow_client.get_experiment(made)
    state = json.loads(json.loads(experiment.tags["mlflow.sharedViewState.finetuning"])["state"])
    assert (state["orderByKey"], state["orderByAsc"]) == ("metrics.`finetuned_perplexity`", True)


def test_a_cell_logs_its_splits_as_dataset_inputs(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = store
    run_id = start_cell_run(params, "m", 1, {})
    log_dataset_inputs(params, run_id, MANIFEST)
    inputs = client(params).get_run(run_id).inputs.dataset_inputs
    found = {(item.dataset.name, item.dataset.digest, item.dataset.source_type,
              tuple((tag.key, tag.value) for tag in item.tags)) for item in inputs}
    assert found == {("rotten_tomatoes", letter * 12, "local", (("mlflow.data.context", split),))
                     for letter, split in (("a", "train"), ("b", "validation"), ("c", "test"))}
    test = next(item.dataset for item in inputs if item.dataset.digest == "c" * 12)
    assert json.loads(test.profile) == {"num_rows": 9, "sha256": "c" * 64}
    assert json.loads(test.source) == {"uri": "data/raw/rotten_tomatoes/test.parquet",
                                       "origin": "package:pkg/data.csv", "revision": "1.0"}


def test_runs_carry_mlflows_source_tags(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for command in (["git", "init", "-q", "-b", "trial"],
                    ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                     "--allow-empty", "-m", "x"]):
        subprocess.run(command, check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "pipeline/stages/train.py")])  # the stage
    tags = client(store).get_run(start_cell_run(store, "m", 1, {})).data.tags
    assert (tags["mlflow.source.type"], tags["mlflow.source.git.commit"], tags["git_commit"],
            tags["mlflow.source.git.branch"]) == ("LOCAL", commit, commit, "trial")
    assert tags["mlflow.source.name"] == "pipeline/stages/train.py"  # relative to the run's folder


def test_the_best_model_is_registered_once_with_its_card(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = dataclasses.replace(store, tracking=dataclasses.replace(
        store.tracking, log_model=True, register="reviews"))
    run_id = start_cell_run(params, "m", 1, {})
    folder = tmp_path / "share"
    folder.mkdir()
    (folder / "README.md").write_text("# card")
    log_model_folder(params, run_id, folder)
    versions = [register_model(params, run_id, "the card", {"cell": "m-1"}) for _ in range(2)]
    assert versions == ["1", "1"]
    (version,) = client(params).search_model_versions("name = 'reviews'")
    assert (version.source, version.run_id, version.description, version.tags) == (
        f"runs:/{run_id}/model", run_id, "the card", {"cell": "m-1"})
    assert [item.path for item in client(params).list_artifacts(run_id, "model")] == [
        "model/README.md"]
    long = bounded_description("x" * 6000)
    assert len(long) == 5000 and long.endswith("README.md in the version's files)")
