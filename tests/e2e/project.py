"""What the end-to-end tests share: a throw-away git + DVC repository holding this project's
pipeline and config, and running commands in it as a user would."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

#: Set in every command's environment; it must never reach MLflow, reports, logs or outputs.
SECRET = "hf_e2eSecretValue0123456789"


def run(command: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", "MLFLOW_TRACKING_URI": "", "HF_TOKEN": SECRET,
           "MLFLOW_TRACKING_PASSWORD": SECRET}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert SECRET not in result.stdout + result.stderr
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def make_project(root: Path, experiment: str) -> Path:
    """A fresh git + DVC repository holding this project's pipeline and config, with
    `experiment` as conf/experiment/e2e_tiny.yaml composed into its params.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", ".gitignore", ".dvcignore", "pyproject.toml", "requirements.txt",
                 "requirements-data.txt"):
        shutil.copy(REPO / name, root / name)
    for name in ("conf", "pipeline", "pretrained"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "data/extra").mkdir(parents=True)
    shutil.copy(REPO / "data/extra/README.md", root / "data/extra/README.md")
    (root / "conf/experiment/e2e_tiny.yaml").write_text(experiment)
    run(["git", "init", "-q"], root)
    run(["dvc", "init", "-q"], root)
    run(["dvc", "config", "core.analytics", "false"], root)
    run(["dvc", "config", "hydra.enabled", "true"], root)
    run([sys.executable, "-m", "pipeline.compose", "experiment=e2e_tiny"], root)
    run(["git", "add", "-A"], root)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], root)
    return root


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)
