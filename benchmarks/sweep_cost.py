"""The cost of a sweep: how much of a 2-model x 3-seed experiment's time went to work that a
cache could have skipped.

In a throw-away git + DVC copy of this repository, the default experiment (MiniLM and a small
BERT from random weights, seeds 1, 2 and 3; cut to a small size by default) runs under
`dvc repro`; then one setting is changed (by default `train.data_fraction=0.5`, a step of the
learning curve `data_size_curve`) and `dvc repro` runs again on top of it, as a sweep's next
job would. Every stage's process is timed (benchmarks/stage_clock.py).

A stage's run was avoidable when its outputs are byte-identical (DVC's hashes in dvc.lock) to
outputs computed before by the same stage: in the first run, another cell's (e.g. a baseline
that does not depend on the seed, evaluated once per seed); in the second, its own first run's
(e.g. data downloaded or tokenized again although only a training setting changed). Outputs
that hold run ids or timings (training, the results table) never match, so they are never
counted: the figure is a lower bound of the waste, exact for the stages that compute data.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks.project import (
    add_run_options,
    environment,
    make_project,
    overrides,
    run,
    stage_label,
    stage_seconds,
    work_folder,
)
from benchmarks.report import markdown_table

NAME = "sweep_cost"
EXPERIMENT = "rotten_tomatoes"


@dataclass
class Execution:
    """One stage process: which stage, how long, what it wrote, and whether that was known."""

    stage: str  # as dvc.lock names it, e.g. baseline_eval@minilm-1
    kind: str  # the stage script, e.g. baseline_eval
    seconds: float
    outputs: tuple[str, ...]  # the hashes of its outputs, in dvc.yaml's order
    repeats: str | None = None  # the earlier run (stage, or "first run") it merely repeated


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run.py sweep_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-rows", type=int, default=400)
    parser.add_argument("--validation-rows", type=int, default=100)
    parser.add_argument("--test-rows", type=int, default=200)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated (default 1,2,3)")
    parser.add_argument("--change", default="train.data_fraction=0.5", metavar="KEY=VALUE",
                        help="the setting changed before the second run (a dotted key of "
                             "params.yaml; the value is read as YAML)")
    add_run_options(parser)
    args = parser.parse_args(argv)
    args.seeds = [int(seed) for seed in args.seeds.split(",")]
    if "=" not in args.change:
        parser.error(f"--change: expected KEY=VALUE, got '{args.change}'")
    return args


def locked_outputs(project: Path) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Each stage of dvc.lock: its command (as clocked) and the hashes of its outputs."""
    lock = yaml.safe_load((project / "dvc.lock").read_text(encoding="utf-8"))
    return {name: (stage["cmd"], tuple(out.get("md5", "") for out in stage.get("outs", [])))
            for name, stage in lock["stages"].items()}


def executions(project: Path, entries: list[dict[str, Any]]) -> list[Execution]:
    """The timed stage processes, matched with their dvc.lock entries by command."""
    locked = locked_outputs(project)
    found = []
    for entry in entries:
        matches = [name for name, (cmd, _) in locked.items() if cmd.endswith(" " + entry["command"])]
        if len(matches) != 1:
            raise RuntimeError(f"cannot match stage command '{entry['command']}' in dvc.lock: "
                               f"{matches or 'no stage'}")
        name = matches[0]
        found.append(Execution(name, stage_label(entry["command"]), entry["seconds"],
                               locked[name][1]))
    return found


def mark_repeats(run: list[Execution], earlier: dict[str, Execution]) -> None:
    """Flag executions whose outputs an earlier one of the same stage script already had:
    another cell's in this run, or this stage's own in the run before (`earlier`)."""
    seen: dict[tuple[str, tuple[str, ...]], str] = {}
    for execution in run:
        before = earlier.get(execution.stage)
        if before is not None and before.outputs == execution.outputs:
            execution.repeats = f"{execution.stage} (previous run)"
        elif (execution.kind, execution.outputs) in seen:
            execution.repeats = seen[(execution.kind, execution.outputs)]
        seen.setdefault((execution.kind, execution.outputs), execution.stage)


def repro(project: Path, env: dict[str, str], earlier: dict[str, Execution]) -> dict[str, Any]:
    """One `dvc repro`: its wall time and its timed, checked stage processes."""
    already = len(stage_seconds(project))
    started = time.perf_counter()
    run(["dvc", "repro"], project, env)
    wall = time.perf_counter() - started
    done = executions(project, stage_seconds(project)[already:])
    mark_repeats(done, earlier)
    return {"wall_seconds": round(wall, 2), "executions": done}


def change_setting(project: Path, change: str) -> None:
    """Set one dotted key of the project's params.yaml, as a sweep's next job would."""
    key, _, value = change.partition("=")
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    *parents, leaf = key.split(".")
    node = params
    for part in parents:
        node = node[part]
    if leaf not in node:
        raise SystemExit(f"--change: params.yaml has no key '{key}'")
    node[leaf] = yaml.safe_load(value)
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def summary_rows(label: str, result: dict[str, Any]) -> list[str]:
    done: list[Execution] = result["executions"]
    repeated = [execution for execution in done if execution.repeats]
    waste = sum(execution.seconds for execution in repeated)
    stages = sum(execution.seconds for execution in done)
    return [label, str(len(done)), f"{result['wall_seconds']:.1f}", f"{stages:.1f}",
            str(len(repeated)), f"{waste:.1f}", f"{100 * waste / result['wall_seconds']:.1f}%"]


def report(runs: dict[str, dict[str, Any]], setup: str) -> str:
    headers = ["run", "stages run", "wall s", "stages s", "repeated stages", "repeated s",
               "share"]
    lines = [setup, "", markdown_table(headers, [summary_rows(label, result)
                                                 for label, result in runs.items()])]
    for label, result in runs.items():
        kinds: dict[str, list[float]] = {}
        for execution in result["executions"]:
            kinds.setdefault(execution.kind, []).append(execution.seconds)
        lines.append(f"{label}: " + ", ".join(f"{kind} {len(times)} x {sum(times) / len(times):.1f} s"
                                              for kind, times in kinds.items()))
        for execution in result["executions"]:
            if execution.repeats:
                lines.append(f"  repeated: {execution.stage} ({execution.seconds:.1f} s) "
                             f"= {execution.repeats}")
    waste = sum(execution.seconds for result in runs.values()
                for execution in result["executions"] if execution.repeats)
    verdict = "met" if waste == 0 else "NOT MET"
    lines += ["", markdown_table(["check", "value", "goal", "verdict"],
                                 [["seconds of stages a cache could have skipped",
                                   f"{waste:.1f}", "0", verdict]])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    folder = work_folder(args.workdir, NAME)
    env = environment(args.threads)
    try:
        project = folder / "project"
        project.mkdir()
        make_project(project, overrides(EXPERIMENT, args.train_rows, args.validation_rows,
                                        args.test_rows, args.epochs, args.seeds, []), None, env)
        print(f"dvc repro of the experiment in {project} ...", flush=True)
        first = repro(project, env, {})
        change_setting(project, args.change)
        print(f"dvc repro after {args.change} ...", flush=True)
        second = repro(project, env, {execution.stage: execution
                                      for execution in first["executions"]})
        runs = {"experiment": first, f"after {args.change}": second}
        models = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))["models"]
        setup = (f"experiment {EXPERIMENT}: models {', '.join(models)}, seeds {args.seeds}; rows "
                 f"train {args.train_rows}, validation {args.validation_rows}, test "
                 f"{args.test_rows}; {args.epochs:g} epoch(s)")
        text = report(runs, setup)
        print("\n" + text)
        if args.json:
            args.json.write_text(json.dumps({
                "runs": {label: {**result, "executions": [asdict(e) for e in result["executions"]]}
                         for label, result in runs.items()},
                "report": text, "argv": argv}, indent=2), encoding="utf-8")
    finally:
        if args.keep:
            print(f"work folder kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
