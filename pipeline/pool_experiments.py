"""One report and one MLflow parent run for several DVC experiments, as for a Hydra sweep:
`python -m pipeline.pool_experiments [NAME ...]` (default: the experiments of the current commit,
as `dvc exp list` names them).

`dvc exp run --queue -S 'seeds=[1],[2],[3]'` makes one experiment per value, each with its
own results table and parent run. This puts them side by side: each experiment's
params.yaml, results and curves are read from its git ref into
`experiments/<time>/<name>/`, the params that differ between the experiments are what was
swept, and they are pooled into `experiments/<time>/reports/` and a parent run holding
each experiment's own parent run (pipeline/pooling.py, as for a Hydra sweep).
"""

from __future__ import annotations

import argparse
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import PARAMS_FILE
from pipeline.errors import ConfigError, run_cli
from pipeline.io import atomic_file
from pipeline.paths import CURVES_FILE, RESULTS_FILE
from pipeline.pooling import Job, pool_jobs

EXPERIMENT_FILES = (Path(PARAMS_FILE), RESULTS_FILE, CURVES_FILE)
REPORTS_ROOT = Path("experiments")


def command_output(command: list[str]) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def experiment_refs() -> dict[str, str]:
    """Name -> git ref of every DVC experiment of this repository (refs/exps/.../<name>)."""
    refs = command_output(["git", "for-each-ref", "--format=%(refname)", "refs/exps/"]).split()
    return {ref.rsplit("/", 1)[1]: ref for ref in refs if ref.count("/") >= 4}


def chosen_refs(names: list[str]) -> dict[str, str]:
    refs = experiment_refs()
    names = names or command_output(["dvc", "exp", "list", "--name-only"]).split()
    unknown = [name for name in names if name not in refs]
    if unknown or not names:
        raise ConfigError(f"experiments: {', '.join(unknown) or 'none of the current commit'} "
                          f"not found; the experiments here are: {', '.join(sorted(refs)) or 'none'} "
                          "(`dvc exp list --all-commits`); run some with `dvc exp run --queue`")
    return {name: refs[name] for name in names}


def flattened(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """params.yaml as `key.path -> value` (lists and dicts written inline), as Hydra
    overrides name them."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flattened(value, f"{prefix}{key}."))
        else:
            text = yaml.safe_dump(value, default_flow_style=True)
            flat[f"{prefix}{key}"] = text.removesuffix("...\n").strip()  # YAML's end of a scalar
    return flat


def differing(params: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Each experiment's settings: the params whose value is not the same in every
    experiment."""
    keys = sorted({key for flat in params.values() for key in flat})
    swept = [key for key in keys if len({flat.get(key) for flat in params.values()}) > 1]
    return {name: {key: flat.get(key, "") for key in swept} for name, flat in params.items()}


def write_experiment(name: str, ref: str, folder: Path) -> dict[str, str]:
    """The experiment's files from its git ref into `folder/<name>/`; its flattened params."""
    for path in EXPERIMENT_FILES:
        text = subprocess.run(["git", "show", f"{ref}:{path.as_posix()}"], capture_output=True,
                              text=True, check=False)
        if text.returncode == 0:
            with atomic_file(folder / name / path) as scratch:
                scratch.write_text(text.stdout, encoding="utf-8")
    if not (folder / name / RESULTS_FILE).is_file():
        raise ConfigError(f"experiments: {name} has no {RESULTS_FILE} (did it fail before "
                          f"the report stage? `dvc queue logs {name}`)")
    return flattened(yaml.safe_load((folder / name / PARAMS_FILE).read_text(encoding="utf-8")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="experiment names (default: `dvc exp list`)")
    names = parser.parse_args().names
    folder = REPORTS_ROOT / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    params = {name: write_experiment(name, ref, folder) for name, ref in chosen_refs(names).items()}
    jobs = [Job(name, folder / name, settings, f"tags.dvc_experiment = '{name}'")
            for name, settings in differing(params).items()]
    summary = pool_jobs(folder, jobs)
    print(f"{len(params)} experiments pooled: {summary}")


if __name__ == "__main__":
    run_cli(main)
