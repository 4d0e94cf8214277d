"""Training in several processes: the train stage starts them through torchrun or `accelerate
launch` and waits for them.

The stage process stays the one DVC sees: it opens the MLflow run, starts the launcher with
the run id in the environment, and records a failure. The workers only train; rank 0 writes
the cell's outputs. A worker that fails leaves its error in a file, so the cell's failure
names the worker's error rather than the launcher's exit code.
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.config import TrainConfig
from pipeline.errors import ConfigError
from pipeline.io import read_json, write_json

WORKER_ENV = "PIPELINE_TRAIN_WORKER"
PR_SET_PDEATHSIG = 1
log = logging.getLogger("launch")


@dataclass(frozen=True)
class Handoff:
    """What the stage process tells its workers through the environment."""

    mlflow_run_id: str
    resume: bool
    errors: str  # folder where a failing worker writes rank-<n>.json
    stage_pid: int


class WorkerFailure(RuntimeError):
    """A training process failed; the message carries its own error."""


def worker_handoff() -> Handoff | None:
    """The handoff when this process is a worker started by `run_workers`, else None."""
    text = os.environ.get(WORKER_ENV)
    return Handoff(**json.loads(text)) if text else None


def launcher_command(cfg: TrainConfig, module: str, arguments: list[str]) -> list[str]:
    """torchrun picks a free port itself (--standalone); accelerate does with port 0. accelerate
    starts several processes on CPU too with --multi_gpu (--cpu would start one); the worker
    selects the CPU and gloo itself (`distributed_flags`)."""
    count = str(cfg.processes)
    if cfg.launcher == "torchrun":
        launcher = ["torch.distributed.run", "--standalone", "--nnodes", "1",
                    "--nproc-per-node", count]
    else:
        launcher = ["accelerate.commands.launch", "--multi_gpu", "--num_machines", "1",
                    "--num_processes", count, "--main_process_port", "0",
                    "--mixed_precision", "no", "--dynamo_backend", "no"]
    return [sys.executable, "-m", *launcher, "-m", module, *arguments]


def available_cores(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The cores this process may run on: `taskset` or a container's CPU limit (cgroup v2
    `cpu.max`, e.g. Kubernetes' limits.cpu) may allow fewer than the machine has."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):  # no cgroup v2 limit here
        pass
    return cores


def use_available_cores() -> None:
    """PyTorch starts a thread per physical core of the machine, blind to `taskset` and to a
    container's CPU limit; more threads than cores make every matrix product wait for the
    slowest. An explicit OMP_NUM_THREADS (parallel jobs, launched workers) is kept."""
    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(min(torch.get_num_threads(), available_cores()))


def threads_per_process(processes: int) -> int:
    """The cores this process may use, shared between the workers: torchrun's default of one
    thread each leaves cores idle when there are more cores than processes."""
    return max(1, available_cores() // processes)


def check_devices(cfg: TrainConfig, where: str) -> None:
    """On CUDA every process needs a GPU of its own (NCCL refuses to share one)."""
    import torch

    gpus = torch.cuda.device_count()
    if gpus and cfg.processes > gpus:
        raise ConfigError(f"{where}.processes: {cfg.processes} processes, but {gpus} CUDA GPU(s) "
                          f"are visible and each process needs its own; set processes to {gpus} "
                          "or less")


def distributed_flags() -> dict[str, Any]:
    """TrainingArguments for a launched worker. Without CUDA, Trainer must be told to use the
    CPU, or each worker would train alone in a group of one. Each worker's loss stays the mean
    over its share of the batch, which DDP averages: Trainer's default (average tokens across
    devices) multiplies the loss by the number of processes for models that take
    `num_items_in_batch` but ignore it (BERT's classification heads), doubling the gradients
    and the logged loss with two processes."""
    import torch

    flags: dict[str, Any] = {"average_tokens_across_devices": False}
    if not torch.cuda.is_available():
        flags.update(use_cpu=True, ddp_backend="gloo")
    return flags


def run_workers(cfg: TrainConfig, where: str, module: str, arguments: list[str], run_id: str,
                resume: bool) -> None:
    """Start the workers and wait; raise WorkerFailure with a worker's error if any fails."""
    check_devices(cfg, where)
    with tempfile.TemporaryDirectory(prefix="train-workers-") as errors:
        handoff = Handoff(run_id, resume, errors, os.getpid())
        env = {**os.environ, WORKER_ENV: json.dumps(asdict(handoff))}
        env.setdefault("OMP_NUM_THREADS", str(threads_per_process(cfg.processes)))
        log.info("starting %d training processes with %s, %s CPU thread(s) each", cfg.processes,
                 cfg.launcher, env["OMP_NUM_THREADS"])
        code = subprocess.run(launcher_command(cfg, module, arguments), env=env, check=False,
                              preexec_fn=lambda: die_with_parent(signal.SIGTERM)).returncode
        reports = [read_json(path) for path in Path(errors).glob("rank-*.json")]
        if reports:  # the first error; the others may be its consequences (a peer gone)
            report = min(reports, key=lambda entry: entry["time"])
            raise WorkerFailure(f"training process {report['rank']} of {cfg.processes} "
                                f"({cfg.launcher}): {report['error']}")
        if code != 0:
            raise WorkerFailure(f"{cfg.launcher} exited with code {code} and no training process "
                                "reported an error (killed?); see the log above")


def run_as_worker(handoff: Handoff, body: Callable[[], None]) -> None:
    """Run a worker's part; on an error, leave it for the stage process, then fail."""
    die_with_parent(signal.SIGKILL)
    if orphaned(handoff):
        raise WorkerFailure("the launcher of this training process is gone")
    try:
        body()
    except Exception as error:
        rank = int(os.environ.get("RANK", "0"))
        write_json(Path(handoff.errors) / f"rank-{rank}.json",
                   {"rank": rank, "error": f"{type(error).__name__}: {error}".strip(),
                    "time": time.time()})
        raise


def die_with_parent(sig: int) -> None:
    """Ask Linux to send `sig` to this process when its parent dies. torchrun starts workers in
    sessions of their own, so killing `dvc repro` (even with SIGKILL) would otherwise leave
    them training on, writing checkpoints beside the run that resumes them."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def orphaned(handoff: Handoff) -> bool:
    """Whether the launcher died before `die_with_parent` could ask to follow it: then this
    process's parent is no longer the launcher started by the stage process."""
    if not sys.platform.startswith("linux"):
        return False
    stat = Path(f"/proc/{os.getppid()}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1]) != handoff.stage_pid
