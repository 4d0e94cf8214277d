"""Comparing models across seeds, from the results table (one row per model x seed).

Every cell of an experiment is scored on the same test split, so what varies between a
model's seeds is training randomness (head initialisation, data order). The figures here
are statistics over a model's successful seeds: a mean with its spread and a 95% confidence
interval, and a paired t-test against the best model on the seeds both ran, which asks
whether a gap is larger than that seed-to-seed noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.config import cell_name
from pipeline.markdown import interval, mean_std, model_label, number, p_text, table
from pipeline.records import FAILED, SUCCESS
from pipeline.uncertainty import (
    ADJUSTMENT_NAMES,
    CELL_COLUMNS,
    Uncertainty,
    comparison_columns,
    how_sure_section,
    seeds_plan_section,
)

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
    """Per-cell values to average over seeds (not a cell's own test-set interval)."""
    return [column for column in results.columns if column.startswith(NUMERIC_PREFIXES)
            and not column.endswith(CELL_COLUMNS)]


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


def combined_reading(row: dict[str, float], seed_note: str, lower_is_better: bool,
                     best: str, adjustment: str) -> str:
    """What the seeds-and-test-examples test adds to the seed-only t-test, in words."""
    p_adjusted = row.get("p_adjusted", float("nan"))
    if pd.isna(p_adjusted):
        return seed_note
    if p_adjusted < SIGNIFICANCE:
        worse = row["difference"] > 0 if lower_is_better else row["difference"] < 0
        return (f"{'worse' if worse else 'better'} than {best} beyond seed and test-sample noise "
                f"({adjustment}-adjusted)")
    if "beyond seed noise" in seed_note:
        return f"{seed_note.replace('beyond seed noise', 'beyond seed noise only')}: another " \
               "test sample could reverse it"
    return f"within seed and test-sample noise of {best}"


def paired_reading(paired: pd.DataFrame, best: str, uncertainty: Uncertainty | None) -> str:
    """One paragraph: what the tests found, how little few seeds can show, and the selection
    effect of picking the best on these same results."""
    others = paired[~paired["best"]]
    decided = others[others["reading"].str.contains("beyond")]
    if not others["p_value"].notna().any() and uncertainty is None:
        found = ("No model could be tested against the best (see the reading column: too few "
                 "paired seeds, or the same difference on every seed).")
    elif decided.empty:
        found = f"No model differs from {best} by more than the noise."
    else:
        found = "; ".join(f"{row.model} is {row.reading}" for row in decided.itertuples()) + "."
    seeds = int(paired["n_pairs"].max())
    text = (f"Reading: {found} The paired t-test compares the models seed by seed; with {seeds} "
            f"seed{'s' if seeds != 1 else ''} it has low power, so p ≥ {SIGNIFICANCE} does not "
            "show that two models are equal, only that these seeds cannot tell them apart.")
    if uncertainty is not None:
        adjustment = ADJUSTMENT_NAMES[uncertainty.config.adjustment]
        text += (" The seeds + test column resamples seeds and test examples together: a gap "
                 "the t-test finds but this one does not is within what another test sample "
                 f"could reverse. Its p-values are adjusted ({adjustment}) for the "
                 f"{len(others)} comparison{'s' if len(others) != 1 else ''} made.")
    if len(others):
        text += (f" {best} was picked as the best on these same test results, which flatters "
                 "its lead a little (a winner's curse); to confirm a small gap, run the top "
                 "settings again with fresh seeds (`python -m pipeline.confirm`).")
    return text


def paired_section(paired: pd.DataFrame, metric: str, best: str | None,
                   uncertainty: Uncertainty | None, lower_is_better: bool) -> list[str]:
    if best is None:
        return ["## Paired comparison", "", "No successful cell: nothing to compare.", ""]
    adjustment = ADJUSTMENT_NAMES[uncertainty.config.adjustment] if uncertainty else ""
    header = ["model", "paired seeds", f"mean difference (model - {best})",
              "95% CI over seeds (t)", "p (paired t over seeds)"]
    if uncertainty is not None:
        header += ["95% CI (seeds + test)", "p (seeds + test)", f"p adjusted ({adjustment})"]
    rows, readings = [], []
    for row in paired.itertuples():
        if row.best:
            cells = [model_label(row.model, best), str(row.n_pairs), "reference", "", ""]
            cells += ["", "", ""] if uncertainty is not None else []
            readings.append(row.note)
        else:
            combined = comparison_columns(uncertainty, row.model)
            cells = [row.model, str(row.n_pairs), number(row.mean_difference, True),
                     interval(row.ci95_low, row.ci95_high, signed=True), p_text(row.p_value)]
            if uncertainty is not None:
                cells += [interval(combined.get("low", float("nan")),
                                   combined.get("high", float("nan")), signed=True),
                          p_text(combined.get("p_value", float("nan"))),
                          p_text(combined.get("p_adjusted", float("nan")))]
            readings.append(combined_reading(combined, row.note, lower_is_better, best,
                                             adjustment))
        rows.append([*cells, readings[-1]])
    paired = paired.assign(reading=readings)
    return [f"## Paired comparison with the best model ({best})", "",
            f"Fine-tuned {metric} of each model minus {best}'s, on the seeds both ran "
            "successfully.", "", *table([*header, "reading"], rows), "",
            paired_reading(paired, best, uncertainty), ""]


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
                     lower_is_better: Sequence[str], title: str,
                     uncertainty: Uncertainty | None = None) -> str:
    """reports/summary.md: the main metric per model with its spread over seeds, how sure the
    numbers are (seeds and test examples), the paired comparison with the best model, then the
    other metrics, for reading without a notebook."""
    metric = metric_names[0]
    lower = metric in lower_is_better
    summary = summary_table(results)
    best = best_model(results, metric, lower)
    lines = [f"# {title}", "", failed_cells_line(results), "",
             *main_metric_section(summary, metric, lower, best)]
    if uncertainty is not None:
        lines += [*how_sure_section(uncertainty, best), *seeds_plan_section(uncertainty)]
    lines += [*paired_section(paired_comparison(results, metric, lower), metric, best,
                              uncertainty, lower),
              *other_metrics_section(summary, metric_names[1:], lower_is_better, best)]
    return "\n".join(lines)
