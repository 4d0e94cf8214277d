"""Numbers and tables as the reports write them in Markdown: significant digits that say no
more than the data, intervals, p-values."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import pandas as pd


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


#: A table cell's longest text: articles are cut, the tables are for reading at a glance.
CELL_CHARS = 300


def cell(value: object) -> str:
    """One table cell: on one line, pipes escaped, cut to CELL_CHARS."""
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS - 1] + "…"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows)]


def model_label(model: str, best: str | None) -> str:
    return f"**{model}** (best)" if model == best else model
