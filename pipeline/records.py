"""Records of what happened to a cell: each cell stage writes one JSON record, `success` with
its figures or `failed` with the error, and later stages and the reports read them back.

A failed record is how one cell's fault (a broken checkpoint, out of memory, NaN loss) stays
that cell's: the other cells go on and the results table shows it.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

from pipeline.io import read_json

FAILED, SUCCESS = "failed", "success"


class UpstreamFailure(RuntimeError):
    """An earlier stage of this cell failed; its error is carried into the results as is."""


def failure(stage: str, error: BaseException) -> dict[str, Any]:
    message = str(error) if isinstance(error, UpstreamFailure) else f"{type(error).__name__}: {error}"
    return {"status": FAILED, "stage": stage, "error": message.strip(),
            "traceback": traceback.format_exc(limit=20)}


def read_record(path: Path, stage: str) -> dict[str, Any]:
    """A cell's record, or a failed one naming the missing file."""
    if not path.is_file():
        return {"status": FAILED, "stage": stage, "error": f"{path} is missing"}
    return read_json(path)


def base_vs_finetuned_metrics(baseline: dict[str, Any], final: dict[str, Any]) -> dict[str, float]:
    """base_, finetuned_ and improvement_ (fine-tuned minus base) for every scalar metric."""
    values = {}
    for name, value in final.items():
        values[f"finetuned_{name}"] = value
        if isinstance(baseline.get(name), int | float):
            values[f"base_{name}"] = baseline[name]
            values[f"improvement_{name}"] = value - baseline[name]
    return values


def extra_metrics(baseline: dict[str, Any], extra: dict[str, dict[str, float]]) -> dict[str, float]:
    """base_<set>_<metric>, finetuned_<set>_<metric> and improvement_<set>_<metric> for each
    extra test set, from the baseline record and the fine-tuned scores by set."""
    def flat(scores: dict[str, dict[str, float]]) -> dict[str, float]:
        return {f"{name}_{metric}": value for name, values in scores.items()
                for metric, value in values.items()}

    return base_vs_finetuned_metrics(flat(baseline.get("extra", {})), flat(extra))


def curve_points(history: list[dict[str, Any]]) -> list[tuple[str, float, int]]:
    """Trainer's log history (curves.json) as (metric, value, step): `loss` -> `train_loss`,
    `eval_accuracy` -> `val_accuracy`."""
    points = []
    for entry in history:
        step = int(entry.get("step", 0))
        for key, value in entry.items():
            if key in ("step", "epoch") or not isinstance(value, int | float):
                continue
            name = f"val_{key[5:]}" if key.startswith("eval_") else f"train_{key}"
            points.append((name, float(value), step))
    return points
