"""Rerun the cells that failed, and only those: `python -m pipeline.retry_failed`.

A cell that fails at run time writes its outputs as a `failed` record, so the
other cells go on and the results table shows it. DVC then holds those stages as
up to date (and remembers them in its run cache), so they are forced here, after
what they read is brought up to date (the fix may be a repaired model folder, which
`tokenize@<model>` watches); the `dvc repro` that follows (`make repro` runs both)
refreshes the results table.
"""

from __future__ import annotations

import subprocess

from pipeline.config import cell_name
from pipeline.errors import PipelineError, run_cli
from pipeline.experiment import load_experiment
from pipeline.paths import baseline_metrics_file, final_metrics_file, train_metrics_file
from pipeline.records import FAILED, read_record

#: Each cell stage and the record it writes.
CELL_STAGES = {"baseline_eval": baseline_metrics_file, "train": train_metrics_file,
               "final_eval": final_metrics_file}


def failed_cells() -> list[tuple[str, int]]:
    params, _ = load_experiment()
    failed = []
    for model, seed in params.cells():
        cell = cell_name(model, seed)
        records = [(record(cell), stage) for stage, record in CELL_STAGES.items()]
        if any(path.is_file() and read_record(path, stage)["status"] == FAILED
               for path, stage in records):
            failed.append((model, seed))
    return failed


def repro(*arguments: str) -> None:
    result = subprocess.run(["dvc", "repro", *arguments], check=False)
    if result.returncode != 0:
        raise PipelineError(f"dvc repro {' '.join(arguments)} failed (exit {result.returncode})")


def main() -> None:
    cells = failed_cells()
    if not cells:
        return
    names = [cell_name(model, seed) for model, seed in cells]
    print(f"retrying failed cells: {', '.join(names)}", flush=True)
    repro(*sorted({f"tokenize@{model}" for model, _ in cells}))  # and what it depends on
    repro("--force", "--single-item", *(f"{stage}@{name}" for name in names
                                         for stage in CELL_STAGES))


if __name__ == "__main__":
    run_cli(main)
