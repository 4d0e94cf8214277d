"""Where each stage reads and writes; `dvc.yaml` names the same paths."""

from __future__ import annotations

import os
import re
from pathlib import Path

RAW_DIR = Path("data/raw")
TOKENIZED_DIR = Path("data/tokenized")
MODELS_DIR = Path("models")
CHECKPOINTS_DIR = Path("checkpoints")
METRICS_DIR = Path("metrics")
PRETRAINED_DIR = Path("pretrained")
TOKENIZERS_DIR = Path("data/tokenizers")
REPORTS_DIR = Path("reports")
DVC_EXPERIMENT_DIR = re.compile(r"^(?P<root>.+?)/\.dvc/tmp/exps/[^/]+")


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


def pretrained_dir(name: str) -> Path:
    """The pretrain stage's output: a normal model folder that fine-tuning can name."""
    return PRETRAINED_DIR / name


def trained_tokenizer_dir(name: str) -> Path:
    return TOKENIZERS_DIR / name


def gguf_cache_dir() -> Path:
    """Where GGUF checkpoints are kept once dequantized: the user's cache, shared by every
    experiment and never a DVC output (DVC would store a second copy)."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "finetune-pipeline" / "gguf"


def repository_root(cwd: Path | None = None) -> Path:
    """The user's repository, also from a queued `dvc exp run` (which runs in a temporary copy
    under `.dvc/tmp/exps/`, deleted afterwards)."""
    cwd = (cwd or Path.cwd()).resolve()
    match = DVC_EXPERIMENT_DIR.match(cwd.as_posix())
    return Path(match["root"]) if match else cwd
