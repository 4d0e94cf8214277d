"""Figures of an experiment, as PNG files: base against fine-tuned per model, training curves,
and a fine-tuned metric against a swept setting.

Every figure shows the seeds themselves as dots beside their mean and 95% confidence
interval, so a reader sees how much of a gap is seed noise. matplotlib is imported inside
the functions, only when a figure is drawn. Figures are built on their own `Figure` with
the Agg canvas rather than through pyplot, so none stays open in a global registry and no
display is needed; each is written through `atomic_file`, never half-written.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.comparison import best_model, successful, t_interval
from pipeline.io import atomic_file

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from pipeline.uncertainty import Uncertainty

log = logging.getLogger(__name__)

DPI = 120
CURVE_COLUMNS = ["model", "seed", "step", "name", "value"]
CI_LABEL = "mean over successful seeds with its 95% CI (t)"
COMBINED_LABEL = "fine-tuned: 95% CI over seeds and test examples"
#: A swept setting with at most this many values gets a tick at each one.
MAX_TICKS = 10
#: Beyond this many characters of model names in all (their longest lines), x labels are
#: slanted to stay apart.
LABEL_CHARS_LEVEL = 90
#: Longer names (a sweep's candidates: model and settings) wrap onto more lines of this many
#: characters; unwrapped, they ran into each other and into the legend.
NAME_WIDTH = 28
#: The same for the titles of the training-curve panels (half of an 11-inch figure each).
PANEL_TITLE_WIDTH = 46
#: Height of one more line of tick labels, in inches.
LINE_HEIGHT = 0.18
#: Values spanning more than this factor get a log axis (perplexity before/after, learning rates).
LOG_SCALE_RATIO = 100


def new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def wrapped(text: str, width: int = NAME_WIDTH) -> str:
    """`text` on lines of at most `width` characters, broken at spaces; a word longer than a
    line (a setting with its value) gets lines of its own."""
    lines = textwrap.wrap(text, width, break_long_words=False) or [text]
    return "\n".join(line[start:start + width] for line in lines
                     for start in range(0, len(line), width))


def extra_lines(labels: Sequence[str], usual: int) -> int:
    """How many more lines than `usual` the tallest label has."""
    return max(0, max(label.count("\n") + 1 for label in labels) - usual)


def set_model_ticks(axes: Axes, labels: Sequence[str]) -> None:
    """One tick per model; slanted when the labels' longest lines would run into each other."""
    axes.set_xticks(range(len(labels)), labels)
    widest = sum(max(len(line) for line in label.splitlines()) for label in labels)
    if widest > LABEL_CHARS_LEVEL:
        axes.tick_params(axis="x", labelrotation=25)
        for label in axes.get_xticklabels():
            label.set(horizontalalignment="right", rotation_mode="anchor")


def model_figure(count: int, labels: Sequence[str], usual_lines: int) -> Figure:
    """A figure with one slot per model, tall enough for its tick labels."""
    return new_figure(min(14.0, max(6.0, 1.4 * count + 3)),
                      4.8 + LINE_HEIGHT * extra_lines(labels, usual_lines))


def save(figure: Figure, path: Path) -> None:
    with atomic_file(path) as scratch:
        figure.savefig(scratch, format="png", dpi=DPI)
    figure.clear()


def require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """A missing column is a caller's mistake, not an empty experiment: refuse it by name."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; got {list(frame.columns)}")


def nothing_to_plot(path: Path, title: str, reason: str) -> None:
    """Still write the figure (the pipeline declares it as an output), saying why it is empty."""
    log.warning("%s: %s", path, reason)
    figure = new_figure(6, 2.5)
    axes = figure.add_subplot()
    axes.set_axis_off()
    axes.set_title(title)
    axes.text(0.5, 0.5, reason, ha="center", va="center", wrap=True)
    save(figure, path)


def spread(values: Sequence[float] | pd.Series) -> tuple[float, float, float]:
    """Mean and the distances down and up to its 95% interval (0 with a single seed)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if not len(values):
        return float("nan"), 0.0, 0.0
    low, high = t_interval(values)
    mean = float(values.mean())
    return (mean, 0.0, 0.0) if np.isnan(low) else (mean, mean - low, high - mean)


def offsets(count: int, width: float) -> np.ndarray:
    """Evenly spread x offsets for `count` seed dots (no random jitter: figures reproduce)."""
    return np.linspace(-width / 2, width / 2, count) if count > 1 else np.zeros(count)


def log_scale_if_wide(axes: Axes, values: Sequence[float], axis: str) -> None:
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) and (values > 0).all() and values.max() / values.min() > LOG_SCALE_RATIO:
        (axes.set_yscale if axis == "y" else axes.set_xscale)("log")


def metric_label(metric: str, lower_is_better: bool) -> str:
    return f"{metric} ({'lower' if lower_is_better else 'higher'} is better)"


def base_vs_finetuned(results: pd.DataFrame, metric: str, lower_is_better: bool,
                      path: Path, uncertainty: Uncertainty | None = None) -> None:
    """Per model, the test `metric` before and after fine-tuning: bars at the mean over
    successful seeds with 95% CI error bars, each seed a dot, and (when the predictions allow
    it) the wider interval over seeds and test examples together beside each fine-tuned bar.
    Models without a successful seed keep their place on the x axis, labelled as failed."""
    require_columns(results, ["status", "model", "seed", f"base_{metric}",
                              f"finetuned_{metric}"], "base_vs_finetuned")
    title = f"Test {metric} before and after fine-tuning"
    if successful(results).empty:
        nothing_to_plot(path, title, "no successful cell: nothing to plot")
        return
    models = list(results["model"].drop_duplicates())
    best = best_model(results, metric, lower_is_better)
    labels = [tick_label(results, model, best) for model in models]
    figure = model_figure(len(models), labels, usual_lines=2)
    axes = figure.add_subplot()
    shown = draw_bars(axes, results, models, metric)
    if uncertainty is not None:
        draw_combined(axes, uncertainty, models)
    set_model_ticks(axes, labels)
    axes.set_ylabel(metric_label(metric, lower_is_better))
    axes.set_title(f"{title}\nbars: {CI_LABEL}; dots: seeds")
    log_scale_if_wide(axes, shown, "y")
    figure.legend(loc="outside lower center", ncols=3, fontsize="small")
    axes.grid(axis="y", alpha=0.3)
    save(figure, path)


def draw_bars(axes: Axes, results: pd.DataFrame, models: list[str], metric: str) -> list[float]:
    """Base and fine-tuned bars side by side per model, seeds as dots; the values drawn."""
    width = 0.38
    shown: list[float] = []
    for index, (stage, colour, name) in enumerate((("base", "#9e9e9e", "base (untuned)"),
                                                   ("finetuned", "#1f77b4", "fine-tuned"))):
        for position, model in enumerate(models):
            values = successful(results[results["model"] == model])[f"{stage}_{metric}"].dropna()
            mean, down, up = spread(values)
            x = position + (index - 0.5) * width
            axes.bar(x, mean, width * 0.9, yerr=[[down], [up]], capsize=4, color=colour,
                     label=name if position == 0 else None)
            axes.scatter(x + offsets(len(values), width * 0.5), values, s=14, color="black",
                         zorder=3, label="one seed" if index == 1 and position == 0 else None)
            shown.extend(values)
    return shown


def draw_combined(axes: Axes, uncertainty: Uncertainty, models: list[str]) -> None:
    """The fine-tuned mean's 95% interval over seeds and test examples, just right of its bar."""
    rows = uncertainty.models.set_index("model")
    for position, model in enumerate(models):
        if model not in rows.index:
            continue
        row = rows.loc[model]
        mean = row["finetuned_mean"]
        axes.errorbar(position + 0.38, mean, fmt="none", ecolor="#d62728", capsize=3,
                      yerr=[[mean - row["finetuned_low"]], [row["finetuned_high"] - mean]],
                      label=COMBINED_LABEL if position == 0 else None)


def test_intervals(uncertainty: Uncertainty, path: Path) -> None:
    """Each cell's fine-tuned metric with its 95% bootstrap interval over test examples, the
    seeds of a model side by side: how much of a model's spread, and of the gap between
    models, another test sample could move."""
    cells, metric = uncertainty.cells, uncertainty.metric
    models = list(cells["model"].drop_duplicates())
    labels = [wrapped(model) for model in models]
    figure = model_figure(len(models), labels, usual_lines=1)
    axes = figure.add_subplot()
    seeds = sorted(cells["seed"].unique())
    colours = {seed: f"C{index % 10}" for index, seed in enumerate(seeds)}
    for position, model in enumerate(models):
        mine = cells[cells["model"] == model].sort_values("seed")
        low = mine[f"finetuned_{metric}_ci95_low"].to_numpy()
        high = mine[f"finetuned_{metric}_ci95_high"].to_numpy()
        values = mine["value"].to_numpy()
        for x, seed, value, down, up in zip(position + offsets(len(mine), 0.5), mine["seed"],
                                            values, values - low, high - values, strict=True):
            axes.errorbar(x, value, yerr=[[down], [up]], fmt="o", capsize=3,
                          color=colours[seed],
                          label=f"seed {seed}" if position == 0 else None)
    set_model_ticks(axes, labels)
    axes.set_ylabel(metric_label(metric, uncertainty.lower_is_better))
    axes.set_title(f"Fine-tuned test {metric} per seed, with its 95% interval\nover test "
                   f"examples ({uncertainty.config.bootstrap_samples} bootstrap resamples)")
    axes.legend(fontsize="small")
    axes.grid(axis="y", alpha=0.3)
    save(figure, path)


def tick_label(results: pd.DataFrame, model: str, best: str | None) -> str:
    """The model, whether it is the best, and how many of its seeds the bars stand for."""
    cells = results[results["model"] == model]
    ok, run = len(successful(cells)), len(cells)
    if ok == run:
        seeds = f"{run} seed{'s' if run != 1 else ''}"
    elif ok == 0:
        seeds = f"all {run} failed"
    else:
        seeds = f"{ok} of {run} seeds ({run - ok} failed)"
    return f"{wrapped(model + (' (best)' if model == best else ''))}\n{seeds}"


def validation_metric_of(validation_metric: str | Mapping[str, str], model: str) -> str:
    if isinstance(validation_metric, str):
        return validation_metric
    return validation_metric[model]


def curve_panel(axes: Axes, curve: pd.DataFrame, name: str, title: str, label: str,
                colours: Mapping[int, str]) -> None:
    """One line per seed of the points called `name`; says so when there are none."""
    points = curve[curve["name"] == name]
    for seed, line in points.groupby("seed"):
        line = line.sort_values("step")
        axes.plot(line["step"], line["value"], marker="o" if len(line) < 20 else None,
                  markersize=4, color=colours[seed], label=f"seed {seed}")
    if points.empty:
        axes.text(0.5, 0.5, f"no {name} logged", ha="center", va="center",
                  transform=axes.transAxes)
    else:
        axes.legend(fontsize="small")
    axes.set_title(title)
    axes.set_xlabel("training step")
    axes.set_ylabel(label)
    axes.grid(alpha=0.3)


def training_curves(curves: pd.DataFrame, validation_metric: str | Mapping[str, str],
                    path: Path) -> None:
    """Per model one row: training loss and the validation metric against the step, one line
    per seed, to see whether training converged and how alike the seeds behave.
    `validation_metric` is one name, or one per model (`metric_for_best_model` may differ)."""
    require_columns(curves, CURVE_COLUMNS, "training_curves")
    if curves.empty:
        nothing_to_plot(path, "Training curves", "no training curve: no cell trained successfully")
        return
    models = list(curves["model"].drop_duplicates())
    # A seed keeps its colour in every panel, whichever seeds a model lacks.
    colours = {seed: f"C{index % 10}" for index, seed in enumerate(sorted(curves["seed"].unique()))}
    metrics = {model: validation_metric_of(validation_metric, model) for model in models}
    titles = {model: [wrapped(f"{model}: training loss", PANEL_TITLE_WIDTH),
                      wrapped(f"{model}: validation {metrics[model]}", PANEL_TITLE_WIDTH)]
              for model in models}
    figure = new_figure(11, sum(3.2 + LINE_HEIGHT * extra_lines(titles[model], 1)
                                for model in models) + 0.4)
    figure.suptitle("Training curves: one line per seed")
    panels = figure.subplots(len(models), 2, squeeze=False, sharex="row")
    for (loss_axes, metric_axes), model in zip(panels, models, strict=True):
        curve = curves[curves["model"] == model]
        metric = metrics[model]
        loss_title, metric_title = titles[model]
        curve_panel(loss_axes, curve, "train_loss", loss_title, "loss", colours)
        curve_panel(metric_axes, curve, f"val_{metric}", metric_title, f"validation {metric}",
                    colours)
    save(figure, path)


def metric_over_setting(frame: pd.DataFrame, setting: str, metric: str, lower_is_better: bool,
                        path: Path) -> None:
    """The fine-tuned test `metric` against a numeric swept setting (column `setting` of a
    results table; `setting` names it on the x axis), one line per model through the means,
    95% CI error bars and the seeds as dots: a learning curve over `train.data_fraction`."""
    require_columns(frame, ["status", "model", "seed", "setting", f"finetuned_{metric}"],
                    "metric_over_setting")
    column = f"finetuned_{metric}"
    title = f"Fine-tuned test {metric} against {setting}"
    done = successful(frame).dropna(subset=[column, "setting"])
    if done.empty:
        nothing_to_plot(path, title, "no successful cell: nothing to plot")
        return
    figure = new_figure(7.5, 4.8)
    axes = figure.add_subplot()
    for model, cells in done.groupby("model", sort=False):
        settings = sorted(cells["setting"].astype(float).unique())
        means = [spread(cells[cells["setting"] == value][column]) for value in settings]
        line = axes.errorbar(settings, [mean for mean, _, _ in means],
                             yerr=[[down for _, down, _ in means], [up for _, _, up in means]],
                             marker="o", capsize=4, label=model)
        axes.scatter(cells["setting"].astype(float), cells[column], s=12, alpha=0.5,
                     color=line.lines[0].get_color())
    axes.set_xlabel(setting)
    axes.set_ylabel(f"fine-tuned {metric_label(metric, lower_is_better)}")
    axes.set_title(f"{title}\nlines: {CI_LABEL}; dots: seeds")
    settings = np.sort(done["setting"].astype(float).unique())
    log_scale_if_wide(axes, settings, "x")
    if len(settings) <= MAX_TICKS:
        axes.set_xticks(settings, [f"{value:g}" for value in settings])
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
    save(figure, path)
