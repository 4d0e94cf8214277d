"""A stand-in for the train stage's workers, started by `run_workers` in the tests.

`fail`: the last rank fails while the others wait for it in a collective that would never end.
`wait <folder>`: every rank writes its pid to the folder, then waits to be killed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch.distributed as dist

from pipeline.launch import run_as_worker, worker_handoff


def fail_on_last_rank() -> None:
    dist.init_process_group("gloo")
    if dist.get_rank() == dist.get_world_size() - 1:
        raise ValueError(f"rank {dist.get_rank()} broke")
    dist.barrier()


def wait_forever(folder: Path) -> None:
    dist.init_process_group("gloo")
    (folder / f"rank-{dist.get_rank()}.pid").write_text(str(os.getpid()))
    while True:
        time.sleep(1)


if __name__ == "__main__":
    handoff = worker_handoff()
    assert handoff is not None, "start me through pipeline.launch.run_workers"
    mode, *arguments = sys.argv[1:]
    run_as_worker(handoff, fail_on_last_rank if mode == "fail" else lambda: wait_forever(
        Path(arguments[0])))
