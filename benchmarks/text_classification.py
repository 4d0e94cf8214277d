"""Text classification, MiniLM on Rotten Tomatoes: the pipeline against the example recipe and a
raw PyTorch loop, in one run on one machine, plus the fp32 matrix-multiply ceiling.

Every variant runs in its own fresh process, one after the other (never at once: they would
compete for the cores). The table and the ratios against the issue's goals are printed at the
end; `--json` keeps every figure. The driver here (`main`) runs token classification too
(benchmarks/token_classification.py), with that benchmark's experiment and variants.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.project import (
    REPO,
    add_run_options,
    chosen_variants,
    environment,
    make_project,
    overrides,
    work_folder,
)
from benchmarks.report import (
    PIPELINE,
    VARIANTS,
    Measurement,
    checks,
    checks_table,
    results_table,
)
from benchmarks.variants import MATMUL_VARIANT, TEXT_CLASSIFICATION

ALL = (*VARIANTS, MATMUL_VARIANT)


@dataclass(frozen=True)
class Benchmark:
    """A fine-tuning benchmark: which preset it cuts, and how its variants are told apart."""

    name: str  # its module in benchmarks/, whose variants `python -m benchmarks.variants` runs
    experiment: str  # the preset in conf/experiment/
    metric: str  # the final_eval figure that is the test score
    example_shape: str  # how the example recipe pads, for the setup line
    description: str
    model: str = "minilm"  # the experiment's model that runs unless --model names another


TEXT_CLASSIFICATION_BENCHMARK = Benchmark(
    TEXT_CLASSIFICATION, "rotten_tomatoes", "accuracy", "example 128 (padded)", __doc__)


def parse_args(argv: list[str] | None = None,
               benchmark: Benchmark = TEXT_CLASSIFICATION_BENCHMARK) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=benchmark.description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_argument_group(f"size (default: those of experiment={benchmark.experiment}, "
                                     "conf/experiment/)")
    size.add_argument("--train-rows", type=int, default=None, help="cap on training rows")
    size.add_argument("--validation-rows", type=int, default=None, help="cap")
    size.add_argument("--test-rows", type=int, default=None, help="cap")
    size.add_argument("--epochs", type=float, default=None, help="training epochs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model", default=benchmark.model,
                        help=f"a model of the experiment (default: {benchmark.model})")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="a further Hydra override for every variant, e.g. train.batch_size=16")
    parser.add_argument("--variants", default=",".join(ALL),
                        help=f"comma-separated, run in this order (default: {','.join(ALL)})")
    parser.add_argument("--matmul-size", type=int, default=2048)
    add_run_options(parser)
    args = parser.parse_args(argv)
    args.variants = chosen_variants(parser, args.variants, ALL)
    return args


def launch(variant: str, benchmark: str, project: Path, folder: Path, env: dict[str, str],
           threads: int | None, options: tuple[str, ...] = ()) -> dict[str, Any]:
    """One variant of a benchmark in a fresh process; its output goes to <folder>/<variant>.log.
    `project` holds the params.yaml every variant reads."""
    out = folder / f"{variant}.json"
    command = [sys.executable, "-m", "benchmarks.variants", variant, "--benchmark", benchmark,
               "--project", str(project), "--out", str(out), "--launched-at", str(time.time()),
               *options]
    if threads is not None:
        command += ["--threads", str(threads)]
    log = folder / f"{variant}.log"
    print(f"running {variant} ... (log: {log})", flush=True)
    with log.open("w", encoding="utf-8") as handle:
        code = subprocess.run(command, cwd=REPO, env=env, stdout=handle,
                              stderr=subprocess.STDOUT).returncode
    if code != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"variant {variant} failed ({code}); end of {log}:\n{tail}")
    return json.loads(out.read_text(encoding="utf-8"))


def same_rows(results: dict[str, Any]) -> str:
    digests = {name: result.extra.get("rows") for name, result in results.items()}
    if len(set(digests.values())) > 1:
        return f"WARNING: the variants saw different rows: {digests}"
    return f"same rows in every variant (digest {next(iter(digests.values()), '-')})"


def describe_setup(project: Path, example_shape: str) -> str:
    from pipeline.config import load_params

    params = load_params(project / "params.yaml")
    (name, model), cfg = next(iter(params.models.items())), params.train
    cfg = model.training(cfg)
    caps = params.dataset.max_rows
    return (f"machine: {platform.machine()}, {os.cpu_count()} logical cores, "
            f"Python {platform.python_version()}\n"
            f"model {name} ({model.path}), dataset {params.dataset.name} (rows: train {caps.train}, "
            f"validation {caps.validation}, test {caps.test}), seed {params.seeds[0]}\n"
            f"epochs {cfg.epochs}, batch {cfg.batch_size}, learning rate {cfg.learning_rate}, "
            f"weight decay {cfg.weight_decay}, warm-up {cfg.warmup}, {cfg.lr_scheduler} schedule; "
            f"max length: pipeline and raw {model.max_length}, {example_shape}")


def pipeline_overhead(result: Measurement) -> list[str]:
    """Where the pipeline's wall time went besides training."""
    stages = ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in
                       result.extra.get("stage_seconds", {}).items())
    outside = result.wall_seconds - result.train_seconds
    mlflow = result.extra["mlflow"]
    return [f"pipeline stages (s, each stage's process): {stages}",
            f"DVC's own time (`dvc repro` minus its stages): {result.extra['dvc_seconds']:.1f} s "
            f"({100 * result.extra['dvc_seconds'] / result.train_seconds:.1f}% of the training)",
            f"MLflow's time in the cell (replayed; import and store opening in 2 stages, then the "
            f"calls): {mlflow['cell_seconds']:.2f} s "
            f"({100 * mlflow['cell_seconds'] / result.train_seconds:.1f}% of the training; import "
            f"{mlflow['import_seconds']:.2f} s, store {mlflow['open_seconds']:.2f} s, calls "
            f"{mlflow['calls_seconds']:.2f} s)",
            f"pipeline time outside the training loop: {outside:.1f} s of {result.wall_seconds:.1f} s "
            f"({100 * outside / result.wall_seconds:.0f}%)",
            f"no-op `dvc repro`: {result.extra['noop_repro_seconds']:.2f} s"]


def report(results: dict[str, Measurement], matmul: dict[str, Any] | None,
           setup: str) -> str:
    rate = matmul["flops_per_second"] if matmul else None
    lines = [setup, "", results_table(results, rate), ""]
    if matmul:
        lines.append(f"fp32 matmul {matmul['size']}x{matmul['size']}: {rate / 1e9:.1f} GFLOP/s "
                     f"with {matmul['threads']} threads")
    threads = {name: result.threads for name, result in results.items()}
    lines.append(f"torch threads per variant: {threads}")
    if results:
        lines.append(same_rows(results))
    if PIPELINE in results:
        lines += pipeline_overhead(results[PIPELINE])
    lines += ["", checks_table(checks(results, rate))]
    return "\n".join(lines)


def main(argv: list[str] | None = None,
         benchmark: Benchmark = TEXT_CLASSIFICATION_BENCHMARK) -> None:
    args = parse_args(argv, benchmark)
    folder = work_folder(args.workdir, benchmark.name)
    env = environment(args.threads)
    try:
        project = folder / "project"
        project.mkdir()
        make_project(project, overrides(benchmark.experiment, args.train_rows,
                                        args.validation_rows, args.test_rows, args.epochs,
                                        [args.seed], args.override, args.model),
                     args.model, env)
        results: dict[str, Measurement] = {}
        matmul = None
        for variant in args.variants:
            found = launch(variant, benchmark.name, project, folder, env, args.threads,
                           ("--matmul-size", str(args.matmul_size)))
            if variant == MATMUL_VARIANT:
                matmul = found
            else:
                results[variant] = Measurement.from_json(found)
        text = report(results, matmul, describe_setup(project, benchmark.example_shape))
        print("\n" + text)
        if args.json:
            args.json.write_text(json.dumps({
                "results": {name: result.to_json() for name, result in results.items()},
                "matmul": matmul, "report": text, "argv": sys.argv[1:]}, indent=2),
                encoding="utf-8")
    finally:
        if args.keep:
            print(f"work folder kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)

