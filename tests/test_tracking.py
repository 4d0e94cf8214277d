import subprocess
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
    bounded_params,
    check_store,
    client,
    finish_run,
    flatten,
    reopen_run,
    repository_root,
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
