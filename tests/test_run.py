"""pipeline.run: how many jobs run at once; tests/e2e/test_sweep.py runs real sweeps."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from pipeline.launch import available_cores
from pipeline.run import parallel_jobs

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
