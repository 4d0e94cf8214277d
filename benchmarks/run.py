"""Benchmarks: `python benchmarks/run.py [BENCHMARK] [options]` (or `python -m benchmarks.run`).

BENCHMARK is one of
- text_classification (the default, so that `python benchmarks/run.py [options]` runs it):
  MiniLM on Rotten Tomatoes, see benchmarks/text_classification.py;
- token_classification: MiniLM on CoNLL-2003, see benchmarks/token_classification.py;
- generation: seq2seq generation at evaluation, Multi30k en-fr, see benchmarks/generation.py;
- sweep_cost: the work a 2-model x 3-seed experiment repeats that a cache could skip, see
  benchmarks/sweep_cost.py;
- seq2seq_training: BERT2BERT fine-tuning on Multi30k en-fr, see benchmarks/seq2seq_training.py
  (not in `all`: at the preset's size each of its variants trains for about 45 minutes);
- training_step: MiniLM's training step against candidate speed-ups (padding to a multiple of
  8, torch.compile), paired step by step, see benchmarks/training_step.py (after `make repro`);
- all: the first three, one after the other, each with its own default size (options other than
  --threads, --seed, --workdir and --keep are refused, as their meaning differs).

`python benchmarks/run.py BENCHMARK --help` lists a benchmark's options; the figures and the
commands that produced them are in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make this checkout's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BENCHMARKS = ("text_classification", "token_classification", "generation", "sweep_cost",
              "seq2seq_training", "training_step")
COMPARISONS = BENCHMARKS[:3]  # `all`: the pipeline against the example recipe and a raw loop
DEFAULT = "text_classification"
#: Options that mean the same in every benchmark, so `all` passes them on.
SHARED_OPTIONS = ("--threads", "--seed", "--workdir", "--keep")


def chosen(argv: list[str]) -> tuple[list[str], list[str]]:
    """The benchmarks named by the first argument (the default when it is an option or
    absent) and the arguments left for them."""
    if argv and argv[0] in (*BENCHMARKS, "all"):
        names = list(COMPARISONS) if argv[0] == "all" else [argv[0]]
        return names, argv[1:]
    if argv and not argv[0].startswith("-"):
        raise SystemExit(f"run.py: unknown benchmark '{argv[0]}'; choose from "
                         f"{', '.join((*BENCHMARKS, 'all'))} (default {DEFAULT})")
    return [DEFAULT], argv


def check_shared(rest: list[str]) -> None:
    """`all` runs benchmarks whose size options differ: only the shared ones are allowed."""
    for argument in rest:
        if argument.startswith("-") and argument.split("=", 1)[0] not in SHARED_OPTIONS:
            raise SystemExit(f"run.py all: '{argument}' is not an option of every benchmark; "
                             f"`all` takes only {', '.join(SHARED_OPTIONS)}")


def main(argv: list[str] | None = None) -> None:
    names, rest = chosen(sys.argv[1:] if argv is None else argv)
    if len(names) > 1:
        check_shared(rest)
    for name in names:
        if len(names) > 1:
            print(f"\n=== {name} ===", flush=True)
        importlib.import_module(f"benchmarks.{name}").main(rest)


if __name__ == "__main__":
    main()
