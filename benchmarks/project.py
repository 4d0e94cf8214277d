"""A throw-away copy of this repository, in which the pipeline's real stages run under `dvc repro`.

Its params.yaml is the benchmark's experiment cut to one model and one seed; the other variants
read the same file, so all three train on the same rows with the same settings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
COPIED_FILES = ("dvc.yaml", ".gitignore", ".dvcignore", "pyproject.toml", "requirements.txt",
                "requirements-data.txt", "data/extra/README.md")  # data/extra: every tokenize's dep
COPIED_FOLDERS = ("conf", "pipeline", "pretrained")
STAGE_LOG = "stage_seconds.jsonl"  # written by benchmarks/stage_clock.py around every stage


def environment(threads: int | None) -> dict[str, str]:
    """The environment of every child: offline, this venv's tools first, MLflow kept inside the
    throw-away project. A thread count is passed on only when one was asked for, so that by
    default the pipeline's stages run as a user's would."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options every benchmark shares: threads, where its work goes, the JSON of figures."""
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for every variant (default: torch's own choice, "
                             "which the pipeline's stages get too)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the run's work folder goes (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder afterwards")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")


def chosen_variants(parser: argparse.ArgumentParser, text: str, allowed: tuple[str, ...]) -> list[str]:
    """`--variants a,b` as a list, in the order given; an unknown name stops the run."""
    variants = [v.strip() for v in text.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(allowed))
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from {list(allowed)}")
    return variants


def work_folder(workdir: Path | None, benchmark: str) -> Path:
    """A fresh folder for one run, under `workdir` (made if missing) or the temp folder."""
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"benchmark-{benchmark.replace('_', '-')}-", dir=workdir))


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}) in {cwd}:\n"
                           f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def overrides(experiment: str, train_rows: int | None, validation_rows: int | None,
              test_rows: int | None, epochs: float | None, seeds: list[int],
              extra: list[str], model: str | None = None) -> list[str]:
    """Hydra overrides of an experiment preset (conf/experiment/) for a benchmark. `epochs`
    also goes to `model`'s own training settings, where a preset's value would win."""
    chosen = [f"experiment={experiment}", f"seeds=[{','.join(map(str, seeds))}]"]
    for split, rows in (("train", train_rows), ("validation", validation_rows),
                        ("test", test_rows)):
        if rows is not None:
            chosen.append(f"dataset.max_rows.{split}={rows}")
    if epochs is not None:
        chosen.append(f"train.epochs={epochs}")
        if model is not None:
            chosen.append(f"++models.{model}.train.epochs={epochs}")
    return chosen + extra


def benchmark_config(text: str, model: str | None, repo: Path = REPO) -> str:
    """The composed config with every other model removed (the presets have two or more; None
    keeps them all), and a local dataset's relative path and watched folder (read from the
    repository root, e.g. ../shared/data/...) made absolute, so that they hold in the
    throw-away project too."""
    data = yaml.safe_load(text)
    if model is not None and model not in data["models"]:
        raise ValueError(f"model '{model}' is not in the composed experiment "
                         f"({sorted(data['models'])})")
    if model is not None:
        data["models"] = {model: data["models"][model]}
    dataset = data.get("dataset", {})
    if dataset.get("source") == "local":
        for key in ("path", "watch"):
            if dataset.get(key) and not Path(dataset[key]).expanduser().is_absolute():
                dataset[key] = str((repo / dataset[key]).resolve())
    return yaml.safe_dump(data, sort_keys=False)


def clocked(dvc_yaml: str, log: Path) -> str:
    """dvc.yaml with every stage's command run under benchmarks/stage_clock.py."""
    data = yaml.safe_load(dvc_yaml)
    for stage in data["stages"].values():
        body = stage.get("do", stage)
        body["cmd"] = f"{sys.executable} {REPO / 'benchmarks' / 'stage_clock.py'} {log} {body['cmd']}"
    return yaml.safe_dump(data, sort_keys=False)


def stage_seconds(root: Path) -> list[dict[str, Any]]:
    """The stages run so far in `root`, in order: command and wall seconds."""
    log = root / STAGE_LOG
    if not log.is_file():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line]


def stage_label(command: str) -> str:
    """`python -m pipeline.stages.train --model minilm --seed 1` -> `train`."""
    return command.split("pipeline.stages.", 1)[1].split()[0]


def write_params(root: Path, hydra_overrides: list[str], model: str | None) -> Path:
    """The benchmark's params.yaml in `root`, composed from this repository's conf/."""
    from pipeline.compose import checked_params, compose

    text = benchmark_config(compose(hydra_overrides, REPO / "conf"), model)
    checked_params(text, "benchmark params")
    path = root / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def make_project(root: Path, hydra_overrides: list[str], model: str | None,
                 env: dict[str, str]) -> Path:
    """A git + DVC repository holding this project's pipeline, every stage timed, and the
    benchmark's params.yaml (one model, or all of the experiment's when `model` is None)."""
    for name in COPIED_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, root / name)
    for name in COPIED_FOLDERS:
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "dvc.yaml").write_text(clocked((REPO / "dvc.yaml").read_text(encoding="utf-8"),
                                           (root / STAGE_LOG).resolve()), encoding="utf-8")
    with (root / ".gitignore").open("a", encoding="utf-8") as ignored:
        ignored.write(f"\n/{STAGE_LOG}\n")
    write_params(root, hydra_overrides, model)
    run(["git", "init", "-q"], root, env)
    run(["dvc", "init", "-q"], root, env)
    run(["dvc", "config", "core.analytics", "false"], root, env)
    run(["git", "add", "-A"], root, env)
    run(["git", "-c", "user.name=benchmark", "-c", "user.email=benchmark@localhost", "commit",
         "-qm", "benchmark project"], root, env)
    return root
