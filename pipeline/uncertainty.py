"""How sure a comparison is, beyond the seeds. Every cell is scored on one finite test set, so
its test metric has a sampling error of its own, which another test sample could reverse; the
seeds say nothing about it. Resampling the test examples (from the predictions tables the cells
write: no model runs again) measures it, and resampling seeds and examples together gives
intervals and tests that account for both sources at once.

Per cell: a bootstrap interval of the fine-tuned metric and of its gain over the untuned model.
Per model: the two variance components side by side, the combined interval of the mean
fine-tuned metric and of the mean gain, and how many seeds (or test examples) would narrow the
gain's interval to a target. Per comparison with the best model: the combined interval of the
difference, its p-value, and the p-value adjusted for the number of comparisons.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.bootstrap import (
    ExampleStatistics,
    benjamini_hochberg,
    bootstrap_interval,
    combined_comparison,
    combined_interval,
    examples_needed,
    holm,
    seeds_needed,
)
from pipeline.config import ReportConfig, cell_name
from pipeline.io import read_json
from pipeline.markdown import interval, model_label, number, table
from pipeline.paths import base_predictions_file, manifest_file, predictions_file
from pipeline.records import SUCCESS
from pipeline.tasks import TaskAdapter

log = logging.getLogger(__name__)

SIGNIFICANCE = 0.05
ADJUSTMENTS = {"holm": holm, "bh": benjamini_hochberg}
ADJUSTMENT_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}
#: Columns the cell intervals add to results.csv for the main metric: not seed statistics.
CELL_COLUMNS = ("ci95_low", "ci95_high", "test_se")


@dataclass(frozen=True)
class CellEvidence:
    """A cell's per-example statistics of one metric, untuned (None when its predictions are
    missing) and fine-tuned, on the same test examples."""

    model: str
    seed: int
    base: ExampleStatistics | None
    finetuned: ExampleStatistics


@dataclass(frozen=True)
class Uncertainty:
    """What the report shows of test-set uncertainty for one metric."""

    metric: str
    lower_is_better: bool
    cells: pd.DataFrame
    models: pd.DataFrame
    comparisons: pd.DataFrame
    config: ReportConfig


def predictions_table(path: Path) -> pd.DataFrame | None:
    """A predictions CSV as written (empty cells stay empty strings), None when absent or
    empty (a failed cell writes an empty file)."""
    if not path.is_file() or not path.stat().st_size:
        return None
    return pd.read_csv(path, keep_default_na=False)


def folder_of(row: pd.Series) -> Path:
    """Where a row's cell ran: this project, or a sweep's job folder."""
    job_dir = row.get("job_dir")
    return Path(job_dir) if isinstance(job_dir, str) and job_dir else Path(".")


def cell_evidence(results: pd.DataFrame, task: TaskAdapter, metric: str,
                  dataset: str) -> list[CellEvidence]:
    """The successful cells whose fine-tuned predictions can rebuild `metric` exactly."""
    evidence = []
    manifests: dict[Path, dict[str, Any]] = {}
    for _, row in results[results["status"] == SUCCESS].iterrows():
        folder, cell = folder_of(row), cell_name(row["model_name"] if "model_name" in row
                                                 else row["model"], int(row["seed"]))
        final = predictions_table(folder / predictions_file(cell))
        manifest_path = folder / manifest_file(dataset)
        if final is None or not manifest_path.is_file():
            continue
        manifest = manifests.setdefault(folder, read_json(manifest_path))
        finetuned = task.example_statistics(final, manifest).get(metric)
        if finetuned is None:
            continue
        base_table = predictions_table(folder / base_predictions_file(cell))
        base = (task.example_statistics(base_table, manifest).get(metric)
                if base_table is not None else None)
        evidence.append(CellEvidence(row["model"], int(row["seed"]),
                                     base if base is not None and base.n == finetuned.n else None,
                                     finetuned))
    return evidence


def cell_intervals(evidence: Sequence[CellEvidence], metric: str,
                   config: ReportConfig) -> pd.DataFrame:
    """Per cell: the fine-tuned metric's and the gain's 95% bootstrap interval over test
    examples, and their standard errors (the test-sample component of the variance)."""
    rows = []
    for cell in evidence:
        finetuned = bootstrap_interval(cell.finetuned, config.bootstrap_samples,
                                       config.bootstrap_seed)
        row = {"model": cell.model, "seed": cell.seed, "value": finetuned.estimate,
               f"finetuned_{metric}_ci95_low": finetuned.low,
               f"finetuned_{metric}_ci95_high": finetuned.high,
               f"finetuned_{metric}_test_se": finetuned.standard_error}
        if cell.base is not None:
            gain = combined_interval([cell.finetuned], [cell.base], config.bootstrap_samples,
                                     config.bootstrap_seed)
            row.update({f"improvement_{metric}_ci95_low": gain.low,
                        f"improvement_{metric}_ci95_high": gain.high,
                        f"improvement_{metric}_test_se": gain.standard_error})
        rows.append(row)
    return pd.DataFrame(rows)


def seed_std(values: Sequence[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def model_row(model: str, cells: list[CellEvidence], intervals: pd.DataFrame, metric: str,
              config: ReportConfig) -> dict[str, Any]:
    """One model's two variance components, its combined intervals and its seeds plan."""
    samples, seed = config.bootstrap_samples, config.bootstrap_seed
    mine = intervals[intervals["model"] == model]
    finetuned = combined_interval([cell.finetuned for cell in cells], None, samples, seed)
    row = {"model": model, "seeds": len(cells), "test_examples": cells[0].finetuned.n,
           "finetuned_mean": finetuned.estimate,
           "finetuned_seed_std": seed_std([cell.finetuned.value for cell in cells]),
           "finetuned_test_se": float(mine[f"finetuned_{metric}_test_se"].mean()),
           "finetuned_low": finetuned.low, "finetuned_high": finetuned.high}
    paired = [cell for cell in cells if cell.base is not None]
    if not paired:
        return row
    gain = combined_interval([cell.finetuned for cell in paired], [cell.base for cell in paired],
                             samples, seed)
    gains = [cell.finetuned.value - cell.base.value for cell in paired]
    row.update({"gain_mean": gain.estimate, "gain_seed_std": seed_std(gains),
                "gain_test_se": float(mine[f"improvement_{metric}_test_se"].mean()),
                "gain_low": gain.low, "gain_high": gain.high})
    row.update(seeds_plan(row, len(paired), config))
    return row


def seeds_plan(row: dict[str, Any], seeds: int, config: ReportConfig) -> dict[str, Any]:
    """The seeds (with today's test set) and the test examples (with today's seeds) that would
    bring the gain's 95% interval to the target half-width; None where the other source
    alone is already wider than the target."""
    half_width = (row["gain_high"] - row["gain_low"]) / 2
    target = config.target_half_width or half_width / 2
    plan: dict[str, Any] = {"gain_half_width": half_width, "target_half_width": target,
                            "seeds_needed": None, "examples_needed": None}
    if seeds < 2 or not target > 0 or np.isnan(row["gain_seed_std"]):
        return plan
    plan["seeds_needed"] = seeds_needed(row["gain_seed_std"], row["gain_test_se"], target)
    plan["examples_needed"] = examples_needed(row["gain_seed_std"], row["gain_test_se"],
                                              row["test_examples"], seeds, target)
    return plan


def model_table(evidence: Sequence[CellEvidence], intervals: pd.DataFrame, metric: str,
                config: ReportConfig) -> pd.DataFrame:
    models = list(dict.fromkeys(cell.model for cell in evidence))
    return pd.DataFrame([model_row(model, [c for c in evidence if c.model == model], intervals,
                                   metric, config) for model in models])


def comparison_table(evidence: Sequence[CellEvidence], best: str | None,
                     config: ReportConfig) -> pd.DataFrame:
    """Each model minus the best on the seeds both ran, resampling seeds and test examples
    together; p-values adjusted for the number of comparisons made."""
    columns = ["model", "paired_seeds", "difference", "low", "high", "p_value", "p_adjusted"]
    cells = {(cell.model, cell.seed): cell for cell in evidence}
    rows = []
    for model in dict.fromkeys(cell.model for cell in evidence):
        if model == best:
            continue
        seeds = sorted(seed for name, seed in cells if name == model and (best, seed) in cells)
        if not seeds:
            rows.append({"model": model, "paired_seeds": 0})
            continue
        result = combined_comparison([cells[model, seed].finetuned for seed in seeds],
                                     [cells[best, seed].finetuned for seed in seeds],
                                     config.bootstrap_samples, config.bootstrap_seed)
        rows.append({"model": model, "paired_seeds": len(seeds), "difference": result.difference,
                     "low": result.low, "high": result.high, "p_value": result.p_value})
    table = pd.DataFrame(rows, columns=columns[:-1])
    table["p_adjusted"] = ADJUSTMENTS[config.adjustment](table["p_value"].to_numpy(dtype=float))
    return table


def measure_uncertainty(results: pd.DataFrame, task: TaskAdapter, metric: str, dataset: str,
                         best: str | None, config: ReportConfig) -> Uncertainty | None:
    """Everything the report shows of test-set uncertainty for `metric`; None when no cell's
    predictions can rebuild it (a task whose tables do not hold it, or pooled DVC experiments,
    whose predictions stay in their own caches)."""
    evidence = cell_evidence(results, task, metric, dataset)
    if not evidence:
        log.info("no predictions table rebuilds %s: no test-set intervals", metric)
        return None
    intervals = cell_intervals(evidence, metric, config)
    return Uncertainty(metric, metric in task.lower_is_better, intervals,
                       model_table(evidence, intervals, metric, config),
                       comparison_table(evidence, best, config), config)


def with_cell_intervals(results: pd.DataFrame, uncertainty: Uncertainty | None) -> pd.DataFrame:
    """results.csv with each cell's intervals of the main metric beside its values."""
    if uncertainty is None:
        return results
    metric = uncertainty.metric
    results = results.drop(columns=[column for column in uncertainty.cells
                                    if column in results and column not in ("model", "seed")])
    merged = results.merge(uncertainty.cells.drop(columns="value"), on=["model", "seed"],
                           how="left")
    order = []
    for column in results.columns:
        order.append(column)
        for kind in ("finetuned", "improvement"):
            if column == f"{kind}_{metric}":
                order += [f"{kind}_{metric}_{suffix}" for suffix in CELL_COLUMNS
                          if f"{kind}_{metric}_{suffix}" in merged]
    return merged[order]


def how_sure_section(uncertainty: Uncertainty, best: str | None) -> list[str]:
    """Both sources of noise side by side, and the intervals that account for both."""
    metric, models = uncertainty.metric, uncertainty.models
    examples = int(models["test_examples"].max())
    header = ["model", "seeds", f"fine-tuned {metric}", "seed-to-seed std", "test-sample SE",
              "95% CI (seeds + test)", "gain", "gain: seed std", "gain: test SE",
              "gain 95% CI (seeds + test)"]
    rows = [[model_label(row["model"], best), str(row["seeds"]), number(row["finetuned_mean"]),
             number(row["finetuned_seed_std"]), number(row["finetuned_test_se"]),
             interval(row["finetuned_low"], row["finetuned_high"]),
             number(row.get("gain_mean", float("nan")), True),
             number(row.get("gain_seed_std", float("nan"))),
             number(row.get("gain_test_se", float("nan"))),
             interval(row.get("gain_low", float("nan")), row.get("gain_high", float("nan")),
                      signed=True)]
            for _, row in models.iterrows()]
    samples = uncertainty.config.bootstrap_samples
    return [f"## How sure: seeds and test examples ({metric})", "",
            "Two sources of noise. *Seed-to-seed*: which seed initialised and ordered the "
            "training (the std over seeds). *Test sample*: which examples happened to be in "
            f"the test split ({examples} of them; the standard error from {samples} bootstrap "
            "resamples of them, averaged over seeds). Every seed is scored on the same test "
            "examples, so more seeds shrink the first and never the second. The 95% intervals "
            "marked *seeds + test* resample seeds and test examples together; the gain is "
            "fine-tuned minus untuned on each resample.", "", *table(header, rows), ""]


def seeds_plan_section(uncertainty: Uncertainty) -> list[str]:
    models = uncertainty.models
    if "seeds_needed" not in models:
        return []
    header = ["model", "gain 95% half-width now", "target half-width", "seeds needed",
              "test examples needed"]

    def count(value: Any, what: str) -> str:
        return f"{int(value):,}" if pd.notna(value) else f"none suffices ({what} alone is wider)"

    rows = [[row["model"], number(row["gain_half_width"]), number(row["target_half_width"]),
             count(row["seeds_needed"], "the test-sample error"),
             count(row["examples_needed"], "the seed-to-seed spread")]
            for _, row in models.iterrows() if pd.notna(row.get("gain_half_width"))]
    if not rows:
        return []
    target = ("report.target_half_width" if uncertainty.config.target_half_width
              else "half of today's (set report.target_half_width)")
    return ["### How many seeds (or test examples) would narrow the gain's interval?", "",
            f"From the spreads above (normal approximation; the target is {target}): the seeds "
            "needed with today's test set, and the test examples needed with today's seeds. "
            "With few seeds the seed-to-seed std is itself uncertain: read these as orders of "
            "magnitude.", "", *table(header, rows), ""]


def comparison_columns(uncertainty: Uncertainty | None, model: str) -> dict[str, float]:
    """The combined test of `model` against the best, as columns for the paired section."""
    if uncertainty is None:
        return {}
    rows = uncertainty.comparisons[uncertainty.comparisons["model"] == model]
    return rows.iloc[0].to_dict() if len(rows) else {}


def summary_columns(uncertainty: Uncertainty | None) -> pd.DataFrame | None:
    """The per-model figures as summary.csv columns (`finetuned_accuracy_test_se`, ...)."""
    if uncertainty is None:
        return None
    metric = uncertainty.metric
    names = {"finetuned_seed_std": f"finetuned_{metric}_seed_std",
             "finetuned_test_se": f"finetuned_{metric}_test_se",
             "finetuned_low": f"finetuned_{metric}_combined_low",
             "finetuned_high": f"finetuned_{metric}_combined_high",
             "gain_seed_std": f"improvement_{metric}_seed_std",
             "gain_test_se": f"improvement_{metric}_test_se",
             "gain_low": f"improvement_{metric}_combined_low",
             "gain_high": f"improvement_{metric}_combined_high",
             "target_half_width": f"improvement_{metric}_target_half_width",
             "seeds_needed": "seeds_needed", "examples_needed": "test_examples_needed"}
    models = uncertainty.models
    return models[["model", *[name for name in names if name in models]]].rename(columns=names)
