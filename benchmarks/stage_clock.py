"""`python benchmarks/stage_clock.py <log> <command...>`: run a stage's command and append its
wall seconds to <log> (one JSON line). The benchmark's throw-away project wraps every stage in
it, because DVC reports no durations: `dvc repro`'s wall time minus the stages' is what DVC
itself spent (hashing, caching, locks)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    log, command = Path(argv[0]), argv[1:]
    started = time.perf_counter()
    code = subprocess.call(command)
    record = {"command": " ".join(command), "seconds": round(time.perf_counter() - started, 3),
              "exit_code": code}
    with log.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
