"""Comparing models across seeds, from the results table (one row per model x seed).

Every cell of an experiment is scored on the same test split, so what varies between a
model's seeds is training randomness (head initialisation, data order). The figures here
are statistics over a model's successful seeds: a mean with its spread and a 95% confidence
interval, and a paired t-test against the best model on the seeds both ran, which asks
whether a gap is larger than that seed-to-seed noise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.config import cell_name
from pipeline.records import FAILED, SUCCESS

CONFIDENCE = 0.95
SIGNIFICANCE = 0.05
#: Columns of results.csv that hold a number worth averaging over seeds.
NUMERIC_PREFIXES = ("base_", "finetuned_", "improvement_", "lead_", "train_")
STATISTICS = ("mean", "std", "ci95_low", "ci95_high", "min", "max")
PAIRED_COLUMNS = ["model", "best", "n_pairs", "mean_difference", "ci95_low", "ci95_high",
                  "p_value", "note"]


def successful(results: pd.DataFrame) -> pd.DataFrame:
    return results[results["status"] == SUCCESS]


def t_interval(values: Sequence[float] | pd.Series) -> tuple[float, float]:
    """95% confidence interval of the mean (Student t, n-1 degrees of freedom), which is wide
    with few seeds, as it should be; NaN below two values."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float("nan"), float("nan")
    mean = values.mean()
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(
        len(values))
    return float(mean - half), float(mean + half)


def seed_statistics(values: pd.Series) -> dict[str, float]:
    """Mean, sample std, 95% interval of the mean, min and max of one metric over seeds
    (missing values dropped)."""
    values = values.dropna().astype(float)
    low, high = t_interval(values)
    return {"mean": values.mean(), "std": values.std(ddof=1), "ci95_low": low,
            "ci95_high": high, "min": values.min(), "max": values.max()}


def numeric_columns(results: pd.DataFrame) -> list[str]:
    return [column for column in results.columns if column.startswith(NUMERIC_PREFIXES)]


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per model, in the order models appear: how many seeds ran and failed, and the
    seed statistics of every numeric column over the successful seeds."""
    columns = numeric_columns(results)
    rows = []
    for model, cells in results.groupby("model", sort=False):
        row = {"model": model, "seeds": len(cells),
               "failed": int((cells["status"] == FAILED).sum())}
        succeeded = successful(cells)
        for column in columns:
            row.update({f"{column}_{name}": value
                        for name, value in seed_statistics(succeeded[column]).items()})
        rows.append(row)
    stat_columns = [f"{column}_{name}" for column in columns for name in STATISTICS]
    return pd.DataFrame(rows, columns=["model", "seeds", "failed", *stat_columns])


def best_model(results: pd.DataFrame, metric: str, lower_is_better: bool) -> str | None:
    """The model with the best mean fine-tuned `metric` over its successful seeds; None when no
    cell succeeded. Ties go to the model listed first."""
    means = successful(results).groupby("model", sort=False)[f"finetuned_{metric}"].mean()
    means = means.dropna()
    if means.empty:
        return None
    return str(means.idxmin() if lower_is_better else means.idxmax())


def paired_values(results: pd.DataFrame, column: str, model: str, best: str) -> pd.DataFrame:
    """`model` and `best` side by side on the seeds where both succeeded."""
    values = successful(results).dropna(subset=[column])
    mine = values[values["model"] == model][["seed", column]]
    theirs = values[values["model"] == best][["seed", column]]
    return mine.merge(theirs, on="seed", suffixes=("_model", "_best")).sort_values("seed")


def paired_test(model_values: np.ndarray, best_values: np.ndarray) -> tuple[float, str]:
    """Paired t-test p-value (two-sided), or NaN with the reason it cannot be computed."""
    differences = model_values - best_values
    if len(differences) < 2:
        return float("nan"), "fewer than 2 paired seeds: no test"
    if np.allclose(differences, differences[0], rtol=1e-9, atol=1e-12):
        return float("nan"), "every seed gives the same difference: the t-test is undefined"
    return float(stats.ttest_rel(model_values, best_values).pvalue), ""


def reading(difference: float, p_value: float, lower_is_better: bool, best: str) -> str:
    """What a computed p-value says about the model against the best, in words."""
    if p_value >= SIGNIFICANCE:
        return f"within seed noise of {best}"
    worse = difference > 0 if lower_is_better else difference < 0
    return f"{'worse' if worse else 'better'} than {best} beyond seed noise"


def paired_comparison(results: pd.DataFrame, metric: str, lower_is_better: bool) -> pd.DataFrame:
    """Every model against the best one on fine-tuned `metric`: the mean difference (model
    minus best) on the seeds both ran successfully, its 95% interval, and the paired t-test
    p-value, to tell a real gap from seed-to-seed noise. `note` says why a p-value is missing,
    or how to read it."""
    best = best_model(results, metric, lower_is_better)
    column = f"finetuned_{metric}"
    rows = []
    for model in results["model"].drop_duplicates():
        pairs = (paired_values(results, column, model, best) if best is not None
                 else pd.DataFrame(columns=[f"{column}_model", f"{column}_best"]))
        model_values = pairs[f"{column}_model"].to_numpy(dtype=float)
        best_values = pairs[f"{column}_best"].to_numpy(dtype=float)
        differences = model_values - best_values
        low, high = t_interval(differences)
        p_value, note = paired_test(model_values, best_values)
        if model == best:
            p_value, note = float("nan"), "best model"
        elif not note:
            note = reading(differences.mean(), p_value, lower_is_better, best)
        rows.append({"model": model, "best": model == best, "n_pairs": len(pairs),
                     "mean_difference": differences.mean() if len(pairs) else float("nan"),
                     "ci95_low": low, "ci95_high": high, "p_value": p_value, "note": note})
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def number(value: float, signed: bool = False) -> str:
    """Four significant digits whatever the scale (accuracy, BLEU, perplexity)."""
    if pd.isna(value):
        return "n/a"
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def p_text(p_value: float) -> str:
    if pd.isna(p_value):
        return "n/a"
    return "< 0.001" if p_value < 0.001 else f"{p_value:.3f}"


def mean_std(statistics: pd.Series, column: str, signed: bool = False) -> str:
    """Mean ± std, the std to two significant digits and the mean to the same decimal place
    (digits beyond the seed-to-seed spread are noise)."""
    mean, std = statistics[f"{column}_mean"], statistics[f"{column}_std"]
    if pd.isna(std) or pd.isna(mean) or std == 0:
        return number(mean, signed)
    decimals = min(max(0, 1 - math.floor(math.log10(std))), 8)
    sign = "+" if signed else ""
    return f"{mean:{sign}.{decimals}f} ± {std:.{decimals}f}"


def interval(low: float, high: float, signed: bool = False) -> str:
    return "n/a" if pd.isna(low) else f"[{number(low, signed)}, {number(high, signed)}]"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows)]


def model_label(model: str, best: str | None) -> str:
    return f"**{model}** (best)" if model == best else model


def failed_cells_line(results: pd.DataFrame) -> str:
    failed = results[results["status"] == FAILED]
    if failed.empty:
        return f"Failed cells: none of {len(results)}."
    names = ", ".join(cell_name(row.model, row.seed) for row in failed.itertuples())
    return (f"Failed cells: {len(failed)} of {len(results)} ({names}); they are left out of "
            "every statistic below (see `error` in results.csv).")


def main_metric_section(summary: pd.DataFrame, metric: str, lower_is_better: bool,
                        best: str | None) -> list[str]:
    direction = "lower" if lower_is_better else "higher"
    header = ["model", "seeds (ok / run)", f"base {metric}", f"fine-tuned {metric}",
              "fine-tuned 95% CI", "fine-tuned [min, max]", "gain (fine-tuned - base)"]
    rows = [[model_label(row["model"], best), f"{row['seeds'] - row['failed']} / {row['seeds']}",
             mean_std(row, f"base_{metric}"), mean_std(row, f"finetuned_{metric}"),
             interval(row[f"finetuned_{metric}_ci95_low"], row[f"finetuned_{metric}_ci95_high"]),
             interval(row[f"finetuned_{metric}_min"], row[f"finetuned_{metric}_max"]),
             mean_std(row, f"improvement_{metric}", signed=True)]
            for _, row in summary.iterrows()]
    lines = [f"## {metric} on the test split ({direction} is better)", "",
             "Mean ± sample standard deviation over each model's successful seeds; the 95% "
             "confidence interval of the mean uses Student's t.", "", *table(header, rows), ""]
    lead = f"lead_{metric}_mean"
    if lead in summary and summary[lead].notna().any():
        lines += [f"Model-free reference (lead baseline): {metric} "
                  f"{number(summary[lead].dropna().iloc[0])}.", ""]
    return lines


def paired_reading(paired: pd.DataFrame, best: str) -> str:
    """One line saying what the paired tests found, and how little three seeds can show."""
    others = paired[~paired["best"]]
    beyond = others[others["p_value"] < SIGNIFICANCE]
    tested = others["p_value"].notna()
    if not tested.any():
        found = ("No model could be tested against the best (see the reading column: too few "
                 "paired seeds, or the same difference on every seed).")
    elif beyond.empty:
        found = f"No model differs from {best} by more than the seed-to-seed noise."
    else:
        found = "; ".join(f"{row.model} is {row.note} "
                          f"(p = {p_text(row.p_value)})" for row in beyond.itertuples()) + "."
    seeds = int(paired["n_pairs"].max())
    return (f"Reading: {found} The paired t-test compares the models seed by seed; with "
            f"{seeds} seed{'s' if seeds != 1 else ''} it has low power, so p ≥ {SIGNIFICANCE} does "
            "not show that two models are equal, only that these seeds cannot tell them apart.")


def paired_section(paired: pd.DataFrame, metric: str, best: str | None) -> list[str]:
    if best is None:
        return ["## Paired comparison", "", "No successful cell: nothing to compare.", ""]
    header = ["model", "paired seeds", f"mean difference (model - {best})",
              "95% CI of the difference", "p-value (paired t-test)", "reading"]
    rows = [[model_label(row.model, best), str(row.n_pairs), "reference", "", "", row.note]
            if row.best else
            [row.model, str(row.n_pairs), number(row.mean_difference, True),
             interval(row.ci95_low, row.ci95_high, signed=True), p_text(row.p_value), row.note]
            for row in paired.itertuples()]
    return [f"## Paired comparison with the best model ({best})", "",
            f"Fine-tuned {metric} of each model minus {best}'s, on the seeds both ran "
            "successfully.", "", *table(header, rows), "", paired_reading(paired, best), ""]


def other_metrics_section(summary: pd.DataFrame, metrics: Sequence[str],
                          lower_is_better: Sequence[str], best: str | None) -> list[str]:
    if not metrics:
        return []
    header = ["model", *(f"{name} ({'lower' if name in lower_is_better else 'higher'} is better)"
                         for name in metrics)]
    rows = [[model_label(row["model"], best),
             *(mean_std(row, f"finetuned_{name}") for name in metrics)]
            for _, row in summary.iterrows()]
    return ["## Other metrics (fine-tuned, mean ± std over successful seeds)", "",
            *table(header, rows), ""]


def summary_markdown(results: pd.DataFrame, metric_names: Sequence[str],
                     lower_is_better: Sequence[str], title: str) -> str:
    """reports/summary.md: the main metric per model with its spread over seeds, the paired
    comparison with the best model, then the other metrics, for reading without a notebook."""
    metric = metric_names[0]
    lower = metric in lower_is_better
    summary = summary_table(results)
    best = best_model(results, metric, lower)
    lines = [f"# {title}", "", failed_cells_line(results), "",
             *main_metric_section(summary, metric, lower, best),
             *paired_section(paired_comparison(results, metric, lower), metric, best),
             *other_metrics_section(summary, metric_names[1:], lower_is_better, best)]
    return "\n".join(lines)
