"""Two sections of summary.md beside the statistics of pipeline/comparison.py: what each
model's fine-tuning cost (parameters trained, weights it adds on disk, time, memory), so that
full fine-tuning and LoRA are compared on cost as well as quality; and the main metric on
each extra test set (`evaluation.extra`) before and after fine-tuning, which shows domain
shift and forgetting. Both read the results and summary tables only, and are left out when
the tables lack their columns (an older results table, no extra test set)."""

from __future__ import annotations

import pandas as pd

from pipeline.comparison import interval, mean_std, number, table

COST_COLUMNS = ("train_trainable_parameters", "train_trainable_share", "train_weights_mb",
                "train_seconds", "train_peak_rss_mb")


def cost_section(results: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """Per model: its fine-tuning method and the means over its successful seeds."""
    if not all(f"{column}_mean" in summary for column in COST_COLUMNS):
        return []
    methods = (results.groupby("model", sort=False)["peft"].first() if "peft" in results
               else pd.Series(dtype=str))
    header = ["model", "fine-tuning", "trainable parameters", "share of the model",
              "weights added (MB)", "train seconds", "peak memory (MB)"]
    rows = [[row["model"], str(methods.get(row["model"], "")),
             "n/a" if pd.isna(row["train_trainable_parameters_mean"])
             else f"{row['train_trainable_parameters_mean']:,.0f}",
             f"{number(100 * row['train_trainable_share_mean'])}%",
             number(row["train_weights_mb_mean"]), mean_std(row, "train_seconds"),
             mean_std(row, "train_peak_rss_mb")]
            for _, row in summary.iterrows()]
    return ["## Cost of fine-tuning (mean ± std over successful seeds)", "",
            "Trainable parameters: those the optimizer updates (LoRA: its low-rank matrices and "
            "the task head), as a share of the model's. Weights added: what the fine-tuned "
            "variant adds on disk to the starting model (LoRA: the adapter; full fine-tuning: "
            "the whole model). Train seconds: the training loop with its validation passes. Peak "
            "memory: the training process's peak resident memory (ru_maxrss: interpreter, "
            "libraries, data, model, gradients, optimizer state).", "",
            *table(header, rows), ""]


def extra_sets(results: pd.DataFrame, metric: str) -> list[str]:
    """The extra test sets a results table holds (columns finetuned_<set>_<metric>)."""
    prefix, suffix = "finetuned_", f"_{metric}"
    return [column[len(prefix):-len(suffix)] for column in results.columns
            if column.startswith(prefix) and column.endswith(suffix)
            and len(column) > len(prefix) + len(suffix)]


def extra_sets_section(results: pd.DataFrame, summary: pd.DataFrame, metric: str,
                       lower_is_better: bool) -> list[str]:
    names = [name for name in extra_sets(results, metric)
             if f"improvement_{name}_{metric}_mean" in summary]
    if not names:
        return []
    header = ["model", "extra test set", f"base {metric}", f"fine-tuned {metric}",
              "change (fine-tuned - base)", "95% CI of the change"]
    rows = [[row["model"], name, mean_std(row, f"base_{name}_{metric}"),
             mean_std(row, f"finetuned_{name}_{metric}"),
             mean_std(row, f"improvement_{name}_{metric}", signed=True),
             interval(row[f"improvement_{name}_{metric}_ci95_low"],
                      row[f"improvement_{name}_{metric}_ci95_high"], signed=True)]
            for _, row in summary.iterrows() for name in names]
    direction = "lower" if lower_is_better else "higher"
    return [f"## Extra test sets: {metric} ({direction} is better)", "",
            "Each cell scored on other data of the same task before and after fine-tuning: a "
            "change against the main test split's gain shows domain shift or forgetting.", "",
            *table(header, rows), ""]


def variant_sections(results: pd.DataFrame, summary: pd.DataFrame, metric: str,
                     lower_is_better: bool) -> str:
    """The cost table and the extra test sets, as markdown to append to summary.md."""
    sections = [*cost_section(results, summary),
                *extra_sets_section(results, summary, metric, lower_is_better)]
    return "\n".join(["", *sections]) if sections else ""
