"""Running the whole DAG as a job in a folder of its own: a small DVC project (no git) with this
repository's dvc.yaml, pipeline code and DVC cache, and the job's own params.yaml. `dvc repro`
there runs the same stages as here, and DVC's run cache (in the shared cache) restores any
stage already run with the same code, params and inputs, by another job or by this
repository. Hydra sweeps (pipeline/run.py) and sweep confirmations (pipeline/confirm.py)
run their jobs so.

The pipeline code is copied into each job rather than linked: a job then runs the code it
started with even if the repository changes meanwhile, and the stages' code dependencies
keep the same relative paths as in this repository, which is what lets the run cache be
shared with it.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from filelock import FileLock

from pipeline.config import PARAMS_FILE
from pipeline.errors import PipelineError
from pipeline.experiment import checked_params
from pipeline.io import atomic_file
from pipeline.launch import threads_per_process
from pipeline.paths import EXTRA_DIR, PRETRAINED_DIR, RESULTS_FILE, pretrained_dir
from pipeline.records import SUCCESS

log = logging.getLogger(__name__)

#: What a job's DVC project needs from this repository besides its params.
PROJECT_FILES = ("dvc.yaml", ".dvcignore", "requirements.txt", "requirements-data.txt",
                 PRETRAINED_DIR / "README.md", EXTRA_DIR / "README.md")
PREPARE_TARGETS = ("download", "tokenize@*")
PREPARE_LOCK = ".dvc/tmp/pipeline-run-prepare.lock"
REPRO_LOG = "repro.log"


def anchored(raw: dict[str, Any], root: Path) -> dict[str, Any]:
    """Relative local paths (and the paths DVC watches for them), which mean this repository,
    made absolute for a job that runs in another folder; models pre-trained by the job itself
    keep their relative path."""
    built_here = {pretrained_dir(name).as_posix() for name in raw.get("pretraining") or {}}
    sources = [raw["dataset"], *(raw.get("models") or {}).values(),
               *((raw.get("evaluation") or {}).get("extra") or {}).values()]
    for source in sources:
        if source.get("source") != "local":
            continue
        for key in ("path", "watch"):
            path = source.get(key)
            if path and not Path(path).is_absolute() and Path(path).as_posix() not in built_here:
                source[key] = str((root / path).resolve())
    return raw


def dvc_cache_dir(root: Path) -> Path:
    return Path(run_dvc(["cache", "dir"], root).strip())


def run_dvc(arguments: list[str], cwd: Path, env: dict[str, str] | None = None,
            log_file: Path | None = None) -> str:
    """Run DVC; with `log_file`, its output is shown as it comes and kept in that file."""
    command = [sys.executable, "-m", "dvc", *arguments]
    process = subprocess.Popen(command, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    lines = []
    with open(log_file or os.devnull, "a", encoding="utf-8") as log_handle:
        for line in process.stdout:
            lines.append(line)
            if log_file:
                sys.stdout.write(line)
                log_handle.write(line)
    output = "".join(lines)
    if process.wait() != 0:
        raise PipelineError(f"`dvc {' '.join(arguments)}` failed in {cwd}:\n{output[-3000:]}")
    return output


def make_job_project(job_dir: Path, root: Path, params_text: str) -> None:
    """A DVC project (no git) with this repository's stages, code and cache."""
    if not (root / ".dvc").is_dir():
        raise PipelineError(f"{root}: not a DVC repository. Run `python -m pipeline.run` from "
                            "the root of your clone (where dvc.yaml is).")
    job_dir.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        (job_dir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / name, job_dir / name)
    shutil.rmtree(job_dir / "pipeline", ignore_errors=True)
    shutil.copytree(root / "pipeline", job_dir / "pipeline",
                    ignore=shutil.ignore_patterns("__pycache__"))
    if not (job_dir / ".dvc").is_dir():
        run_dvc(["init", "--no-scm", "--quiet"], job_dir)
    (job_dir / ".dvc/config").write_text(
        f"[core]\n    no_scm = True\n    analytics = false\n"
        f"[cache]\n    dir = {dvc_cache_dir(root)}\n", encoding="utf-8")
    with atomic_file(job_dir / PARAMS_FILE) as scratch:
        scratch.write_text(params_text, encoding="utf-8")


def job_environment(root: Path, configured_uri: str | None, parallel_jobs: int) -> dict[str, str]:
    """This repository's MLflow store (the job folder is not the repository), the Python that
    runs this command, and each job's share of the cores when several run at once: PyTorch
    otherwise starts a thread per core in every job, and threads that keep losing their core
    to another job's wait for each other at every operation."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    if not configured_uri and not env.get("MLFLOW_TRACKING_URI"):
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    if parallel_jobs > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(threads_per_process(parallel_jobs))
    return env


def validation_objective(job_dir: Path) -> float:
    """Mean best validation metric over the job's successful cells: what a sweeper tunes
    (never the test split). NaN when every cell failed (Optuna records a failed trial)."""
    results = pd.read_csv(job_dir / RESULTS_FILE)
    succeeded = results[results["status"] == SUCCESS]
    if succeeded.empty:
        log.warning("%s: every cell failed; see its reports/results.csv", job_dir)
        return math.nan
    return float(succeeded["best_validation_metric"].mean())


def run_job(raw: dict[str, Any], root: Path, job_dir: Path, parallel: int = 1) -> float:
    """Run the DAG on the composed params `raw` in `job_dir`; return the job's objective."""
    raw = anchored(raw, root)
    params_text = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
    params = checked_params(params_text, f"job {job_dir}")
    make_job_project(job_dir, root, params_text)
    env = job_environment(root, params.tracking.tracking_uri, parallel)
    with FileLock(root / PREPARE_LOCK):
        run_dvc(["repro", "--glob", *PREPARE_TARGETS], job_dir, env, job_dir / REPRO_LOG)
    run_dvc(["repro"], job_dir, env, job_dir / REPRO_LOG)
    objective = validation_objective(job_dir)
    log.info("%s: mean best validation metric %.6g", job_dir, objective)
    return objective
