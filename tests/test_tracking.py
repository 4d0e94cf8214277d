from pathlib import Path

from pipeline.tracking import REDACTED, bounded_params, flatten, repository_root, tracking_uri


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
