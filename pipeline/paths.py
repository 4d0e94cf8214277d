"""Where each stage reads and writes; `dvc.yaml` names the same paths."""

from __future__ import annotations

from pathlib import Path

RAW_DIR = Path("data/raw")
TOKENIZED_DIR = Path("data/tokenized")
MODELS_DIR = Path("models")
CHECKPOINTS_DIR = Path("checkpoints")
METRICS_DIR = Path("metrics")
REPORTS_DIR = Path("reports")


def raw_dir(dataset: str) -> Path:
    return RAW_DIR / dataset


def manifest_file(dataset: str) -> Path:
    return raw_dir(dataset) / "manifest.json"


def tokenized_dir(model: str) -> Path:
    return TOKENIZED_DIR / model


def cell_dir(cell: str) -> Path:
    """The train stage's output: the fine-tuned model, curves and the MLflow run id."""
    return MODELS_DIR / cell


def checkpoint_dir(cell: str) -> Path:
    """Training checkpoints of a cell: not a DVC output, so they survive a killed run."""
    return CHECKPOINTS_DIR / cell


def metrics_file(stage: str, cell: str) -> Path:
    return METRICS_DIR / stage / f"{cell}.json"


def predictions_file(cell: str) -> Path:
    return REPORTS_DIR / "predictions" / f"{cell}.csv"
