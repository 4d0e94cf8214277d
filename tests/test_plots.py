"""Every figure is a real PNG of a readable size, written whole, and an empty input is
either drawn as an explicit 'nothing to plot' figure or refused by name."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from pipeline.config import ReportConfig
from pipeline.plots import (
    NAME_WIDTH,
    base_vs_finetuned,
    metric_over_setting,
    training_curves,
    wrapped,
)
from pipeline.plots import test_intervals as draw_test_intervals  # not a test: pytest skips it
from pipeline.uncertainty import Uncertainty

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def results() -> pd.DataFrame:
    rows = [("mini", seed, "success", 0.5 + seed / 100, 0.8 + seed / 200) for seed in (1, 2, 3)]
    rows += [("tiny", 1, "success", 0.48, 0.70), ("tiny", 2, "failed", 0.47, None)]
    return pd.DataFrame(rows, columns=["model", "seed", "status", "base_accuracy",
                                       "finetuned_accuracy"])


def curves() -> pd.DataFrame:
    rows = []
    for model in ("mini", "tiny"):
        for seed in (1, 2):
            rows += [(model, seed, step, "train_loss", 0.7 - step / 1000) for step in (10, 20, 30)]
            rows += [(model, seed, 30, "val_accuracy", 0.75 + seed / 100), (model, seed, 30,
                                                                             "val_loss", 0.5)]
    return pd.DataFrame(rows, columns=["model", "seed", "step", "name", "value"])


def assert_png(path: Path, min_width: int, min_height: int) -> None:
    """A whole PNG of at least this size, alone in its folder (no scratch file left)."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    height, width = matplotlib.image.imread(path).shape[:2]
    assert width >= min_width and height >= min_height, (width, height)
    assert [entry.name for entry in path.parent.iterdir()] == [path.name]


def test_base_vs_finetuned_writes_a_png(tmp_path):
    path = tmp_path / "plots" / "base_vs_finetuned.png"
    base_vs_finetuned(results(), "accuracy", lower_is_better=False, path=path)
    assert_png(path, 700, 500)


def test_base_vs_finetuned_replaces_an_older_figure(tmp_path):
    path = tmp_path / "base_vs_finetuned.png"
    path.write_bytes(b"old")
    base_vs_finetuned(results(), "accuracy", lower_is_better=False, path=path)
    assert_png(path, 700, 500)


def test_training_curves_write_one_row_per_model(tmp_path):
    path = tmp_path / "two" / "training_curves.png"
    training_curves(curves(), {"mini": "accuracy", "tiny": "loss"}, path)
    one_model = tmp_path / "one" / "training_curves.png"
    training_curves(curves()[curves()["model"] == "mini"], "accuracy", one_model)
    assert_png(path, 1200, 700)
    assert_png(one_model, 1200, 350)
    assert matplotlib.image.imread(path).shape[0] > matplotlib.image.imread(one_model).shape[0]


def test_metric_over_setting_writes_a_png(tmp_path):
    frame = pd.concat([results().assign(setting=fraction) for fraction in (0.1, 0.5, 1.0)])
    path = tmp_path / "learning_curve.png"
    metric_over_setting(frame, "train.data_fraction", "accuracy", False, path)
    assert_png(path, 800, 500)


def test_nothing_to_plot_gives_an_explicit_figure_and_a_warning(tmp_path, caplog):
    failed = results().assign(status="failed")
    empty_curves = curves().iloc[0:0]
    with caplog.at_level(logging.WARNING, logger="pipeline.plots"):
        base_vs_finetuned(failed, "accuracy", False, tmp_path / "a" / "bars.png")
        training_curves(empty_curves, "accuracy", tmp_path / "b" / "curves.png")
        metric_over_setting(failed.assign(setting=0.5), "fraction", "accuracy", False,
                            tmp_path / "c" / "setting.png")
    for path in (tmp_path / "a/bars.png", tmp_path / "b/curves.png", tmp_path / "c/setting.png"):
        assert_png(path, 500, 200)
    messages = [record.getMessage() for record in caplog.records]
    assert sum("no successful cell" in message for message in messages) == 2
    assert any("no training curve" in message for message in messages)


def test_a_table_without_the_needed_columns_is_refused_by_name(tmp_path):
    path = tmp_path / "bars.png"
    with pytest.raises(ValueError, match=r"finetuned_bleu"):
        base_vs_finetuned(results(), "bleu", False, path)
    with pytest.raises(ValueError, match=r"setting"):
        metric_over_setting(results(), "fraction", "accuracy", False, path)
    with pytest.raises(ValueError, match=r"'step'"):
        training_curves(pd.DataFrame(columns=["model", "seed", "name", "value"]), "accuracy", path)
    assert not path.exists() and list(tmp_path.iterdir()) == []


#: A candidate of a sweep, named by its settings as `pipeline.confirm` names them.
CANDIDATE = ("minilm candidate=minilm train.batch_size=16 "
             "train.learning_rate=5.111023492152637e-05 train.warmup=0.060466514526367955")


def test_a_long_name_wraps_at_spaces_and_keeps_every_character():
    lines = wrapped(CANDIDATE).splitlines()
    assert max(len(line) for line in lines) <= NAME_WIDTH
    assert lines[0] == "minilm candidate=minilm"
    assert lines[2] == "train.learning_rate=5.111023"  # a word longer than a line
    assert "".join(lines).replace(" ", "") == CANDIDATE.replace(" ", "")


def test_a_sweeps_long_names_keep_the_figures_laid_out(tmp_path):
    """Unwrapped, such names made matplotlib give up the layout ("constrained_layout not
    applied"), and they ran over each other and the legend."""
    names = {"mini": CANDIDATE, "tiny": CANDIDATE.replace("5.111", "4.721")}
    table = results().replace({"model": names})
    cells = table[table["status"] == "success"].assign(
        value=lambda frame: frame["finetuned_accuracy"],
        finetuned_accuracy_ci95_low=lambda frame: frame["finetuned_accuracy"] - 0.02,
        finetuned_accuracy_ci95_high=lambda frame: frame["finetuned_accuracy"] + 0.02)
    uncertainty = Uncertainty("accuracy", False, cells, pd.DataFrame(), pd.DataFrame(),
                              ReportConfig())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        base_vs_finetuned(table, "accuracy", lower_is_better=False,
                          path=tmp_path / "bars" / "plot.png")
        draw_test_intervals(uncertainty, tmp_path / "intervals" / "plot.png")
        training_curves(curves().replace({"model": names}), "accuracy",
                        tmp_path / "curves" / "plot.png")
    assert_png(tmp_path / "bars" / "plot.png", 700, 500)
    assert_png(tmp_path / "intervals" / "plot.png", 700, 500)
    assert_png(tmp_path / "curves" / "plot.png", 1300, 700)
