"""Benchmarks: `python benchmarks/run.py [options]` (or `python -m benchmarks.run`).

For now one benchmark: text classification (MiniLM on Rotten Tomatoes), see
benchmarks/text_classification.py and benchmarks/RESULTS.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make this checkout's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.text_classification import main

if __name__ == "__main__":
    main()
