"""What the cell stages (baseline_eval, train, final_eval) share as entry points: parsing
their cell from the command line and keeping a cell's fault inside that cell."""

from __future__ import annotations

import argparse
import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from pipeline.config import Params
from pipeline.experiment import Cell, experiment_cell
from pipeline.launch import use_available_cores
from pipeline.records import failure
from pipeline.tracking import finish_run


def parse_cell(description: str) -> Cell:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", required=True, help="a key of `models` in params.yaml")
    parser.add_argument("--seed", required=True, type=int, help="one of `seeds` in params.yaml")
    args = parser.parse_args()
    return experiment_cell(args.model, args.seed)


def run_cell_stage(stage: str, body: Callable[[], None],
                   on_failure: Callable[[dict[str, Any]], None]) -> None:
    """Run one cell's stage. Any fault inside it (a broken checkpoint, out of memory, NaN
    loss) concerns this model x seed only: it is handed to `on_failure`, which writes the
    stage's outputs as a failed cell, so the other cells go on and the results table shows
    it. `python -m pipeline.retry_failed` (run by `make repro`) retries such cells."""
    use_available_cores()
    try:
        body()
    except Exception as error:
        logging.getLogger(stage).exception("cell failed")
        on_failure(failure(stage, error))


def interrupted(signum: int, frame: Any) -> NoReturn:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def ends_run_if_interrupted(params: Params, run_id: str) -> Iterator[None]:
    """Ctrl-C (SIGINT, which `dvc repro` passes on) or SIGTERM while a stage works on an MLflow
    run ends that run as KILLED, not RUNNING forever."""
    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        yield
    except KeyboardInterrupt:
        finish_run(params, run_id, killed=True)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
