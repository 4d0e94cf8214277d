"""pipeline.jobs: each job's environment; tests/e2e/test_sweep.py runs real jobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.jobs import job_environment


def test_parallel_jobs_share_the_cores(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("pipeline.launch.available_cores", lambda: 8)
    assert job_environment(tmp_path, None, parallel_jobs=2)["OMP_NUM_THREADS"] == "4"
    assert job_environment(tmp_path, None, parallel_jobs=16)["OMP_NUM_THREADS"] == "1"
    assert "OMP_NUM_THREADS" not in job_environment(tmp_path, None, parallel_jobs=1)


def test_a_users_thread_setting_is_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert job_environment(tmp_path, None, parallel_jobs=2)["OMP_NUM_THREADS"] == "3"


def test_jobs_track_into_this_repositorys_store(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert job_environment(tmp_path, None, 1)["MLFLOW_TRACKING_URI"] == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert "MLFLOW_TRACKING_URI" not in job_environment(tmp_path, "http://127.0.0.1:5000", 1)
