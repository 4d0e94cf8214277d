"""Unit tests of pipeline.run's job set-up; tests/test_sweep_e2e.py runs real sweeps."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from pipeline.launch import available_cores
from pipeline.run import job_environment, parallel_jobs

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
BASIC = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


@pytest.mark.parametrize(("target", "n_jobs", "expected"), [
    (JOBLIB, 2, 2),
    (JOBLIB, 1, 1),
    (JOBLIB, -1, available_cores()),
    (JOBLIB, None, available_cores()),
    (JOBLIB, -available_cores() - 5, 1),
    (BASIC, None, 1),
])
def test_parallel_jobs_follows_joblibs_n_jobs(target: str, n_jobs: int | None,
                                              expected: int) -> None:
    launcher = OmegaConf.create({"_target_": target, "n_jobs": n_jobs})
    assert parallel_jobs(launcher) == expected


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
