"""Confirm a sweep's winners on fresh seeds: `python -m pipeline.confirm <sweep folder>
[--top 3] [--seeds 101 102 103]`.

A sweep (Hydra multirun, Optuna, or pooled DVC experiments) picks its best settings by their
validation scores, and the best of many noisy scores is biased upward by the very act of
picking it: the winner's curse. This reruns the top-k candidates (a model with its setting),
ranked by the score the sweep selected on (the mean best validation metric over their seeds,
which is what the Optuna sweeper optimizes; never a test score), with seeds that took no part
in the selection, each as a job of its own under `<folder>/confirm/<n>/`. The confirmed test
scores, with their intervals over seeds and test examples, are the sweep's result;
`<folder>/confirm/reports/confirmation.md` shows them beside the selection-time scores, so the
inflation the selection caused can be seen.
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pipeline.config import PARAMS_FILE, Params, load_params
from pipeline.errors import ConfigError, run_cli
from pipeline.io import atomic_file
from pipeline.jobs import run_job
from pipeline.markdown import interval, number, table
from pipeline.paths import REPORTS_DIR, RESULTS_FILE
from pipeline.pooling import Job, pool_jobs, pooled_results, swept_keys
from pipeline.records import SUCCESS
from pipeline.tasks import get_task
from pipeline.uncertainty import measure_uncertainty

CONFIRM_DIR = "confirm"
CONFIRMATION_FILE = REPORTS_DIR / "confirmation.md"


@dataclass(frozen=True)
class Candidate:
    """A model with the setting its sweep job gave it, and how the sweep scored it."""

    label: str
    model: str
    job_dir: Path
    validation: float
    sweep_test: float
    sweep_seeds: list[int]


def sweep_table(folder: Path) -> pd.DataFrame:
    path = folder / RESULTS_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: missing. Point pipeline.confirm at a sweep's folder "
                          "(multirun/<time>/ or experiments/<time>/) that holds its pooled "
                          "reports.")
    results = pd.read_csv(path)
    if "job_dir" not in results:
        raise ConfigError(f"{path}: not a pooled sweep table (no job_dir column)")
    return results


def lower_is_better(params: Params, model: str) -> bool:
    """The direction of the validation metric the model kept its best checkpoint by."""
    metric = params.model(model).training(params.train).metric_for_best_model
    return metric in get_task(params.task).lower_is_better


def candidates(results: pd.DataFrame, metric: str) -> list[Candidate]:
    """Every model x setting of the sweep with its selection-time (validation) score."""
    found = []
    for label, rows in results[results["status"] == SUCCESS].groupby("model", sort=False):
        found.append(Candidate(str(label), str(rows["model_name"].iloc[0]),
                               Path(rows["job_dir"].iloc[0]),
                               float(rows["best_validation_metric"].mean()),
                               float(rows[f"finetuned_{metric}"].mean()),
                               sorted(int(seed) for seed in rows["seed"])))
    return found


def top(found: list[Candidate], count: int) -> list[Candidate]:
    if not found:
        raise ConfigError("the sweep has no successful cell to confirm")
    lower = lower_is_better(load_params(found[0].job_dir / PARAMS_FILE), found[0].model)
    return sorted(found, key=lambda c: c.validation if lower else -c.validation)[:count]


def fresh_seeds(chosen: list[Candidate], results: pd.DataFrame, given: list[int] | None) -> list[int]:
    """Seeds the selection never saw (the next ones after every seed of the sweep, as many
    as the candidates had, at least 3), or the ones given, checked to be new."""
    used = {int(seed) for seed in results["seed"]}
    if given:
        reused = sorted(used & set(given))
        if reused:
            raise ConfigError(f"--seeds: {reused} took part in the sweep's selection; confirm "
                              "with seeds it never saw")
        return given
    count = max(3, *(len(candidate.sweep_seeds) for candidate in chosen))
    return list(range(max(used) + 1, max(used) + 1 + count))


def confirmation_params(candidate: Candidate, seeds: list[int]) -> dict[str, Any]:
    """The candidate's job params, with only its model and the fresh seeds."""
    raw = yaml.safe_load((candidate.job_dir / PARAMS_FILE).read_text(encoding="utf-8"))
    raw = copy.deepcopy(raw)
    raw["models"] = {candidate.model: raw["models"][candidate.model]}
    raw["seeds"] = seeds
    return raw


def confirmation_markdown(chosen: list[Candidate], confirmed: pd.DataFrame, metric: str,
                          uncertainty: Any, seeds: list[int]) -> str:
    """Selection-time and confirmed scores side by side."""
    intervals = (uncertainty.models.set_index("model") if uncertainty is not None
                 else pd.DataFrame())
    header = ["rank at selection", "candidate", "validation (selected on)",
              f"sweep test {metric}", f"confirmed test {metric}", "95% CI (seeds + test)",
              "confirmed - sweep"]
    rows = []
    for rank, candidate in enumerate(chosen, start=1):
        mine = confirmed[(confirmed["job"] == str(rank)) & (confirmed["status"] == SUCCESS)]
        score = float(mine[f"finetuned_{metric}"].mean()) if len(mine) else float("nan")
        label = mine["model"].iloc[0] if len(mine) else ""
        low, high = ((intervals.loc[label, "finetuned_low"], intervals.loc[label, "finetuned_high"])
                     if label in intervals.index else (float("nan"), float("nan")))
        rows.append([str(rank), candidate.label, number(candidate.validation),
                     number(candidate.sweep_test), number(score), interval(low, high),
                     number(score - candidate.sweep_test, signed=True)])
    return "\n".join([
        "# Sweep confirmation", "",
        f"The top {len(chosen)} candidates by the score the sweep selected on (mean best "
        f"validation metric over their sweep seeds), trained again with seeds {seeds}, which "
        "took no part in the selection. The confirmed test scores are the sweep's result: "
        "picking the best of many noisy scores inflates it (the winner's curse), and the last "
        "column shows by how much.", "", *table(header, rows), "",
        "The interval resamples the fresh seeds and the test examples together; "
        "summary.md beside this file compares the candidates with each other.", ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a sweep's folder (multirun/<time>/, "
                                                  "experiments/<time>/)")
    parser.add_argument("--top", type=int, default=3, help="how many candidates (default 3)")
    parser.add_argument("--seeds", type=int, nargs="+", help="fresh seeds (default: the next "
                                                             "ones after the sweep's)")
    args = parser.parse_args()
    if args.top < 1:
        raise ConfigError(f"--top: must be at least 1, got {args.top}")
    results = sweep_table(args.folder)
    params = load_params(Path(results["job_dir"].iloc[0]) / PARAMS_FILE)
    task = get_task(params.task)
    metric = task.metric_names[0]
    chosen = top(candidates(results, metric), args.top)
    seeds = fresh_seeds(chosen, results, args.seeds)
    folder = args.folder / CONFIRM_DIR
    jobs = []
    for rank, candidate in enumerate(chosen, start=1):  # a job's name is its candidate's rank
        job_dir = folder / str(rank)
        run_job(confirmation_params(candidate, seeds), Path.cwd(), job_dir)
        jobs.append(Job(str(rank), job_dir, {"candidate": candidate.label},
                        f"tags.run_dir = '{job_dir.resolve()}'"))
    confirmed = pooled_results(jobs, swept_keys(jobs))
    uncertainty = measure_uncertainty(confirmed, task, metric, params.dataset.name, None,
                                      params.report)
    with atomic_file(folder / CONFIRMATION_FILE) as scratch:
        scratch.write_text(confirmation_markdown(chosen, confirmed, metric, uncertainty, seeds),
                           encoding="utf-8")
    pool_jobs(folder, jobs, [folder / CONFIRMATION_FILE])
    print(f"{len(chosen)} candidates confirmed on seeds {seeds}: {folder / CONFIRMATION_FILE}")


if __name__ == "__main__":
    run_cli(main)
