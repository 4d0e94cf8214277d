"""Where each stage reads and writes; `dvc.yaml` names the same paths."""

from __future__ import annotations

import os
import re
from pathlib import Path

RAW_DIR = Path("data/raw")
#: Extra test sets (`evaluation.extra`): one folder per set, written by download_extra@<set>.
EXTRA_DIR = Path("data/extra")
TOKENIZED_DIR = Path("data/tokenized")
#: The extra test sets tokenized per model: beside the model's splits, not among them, so
#: that changing an extra set reruns the evaluations but not the training.
TOKENIZED_EXTRA_DIR = Path("data/tokenized_extra")
MODELS_DIR = Path("models")
CHECKPOINTS_DIR = Path("checkpoints")
METRICS_DIR = Path("metrics")
PRETRAINED_DIR = Path("pretrained")
TOKENIZERS_DIR = Path("data/tokenizers")
REPORTS_DIR = Path("reports")
#: The digest of the code each stage runs (pipeline/code_closure.py), one file per script.
STAGE_CODE_DIR = Path("stage_code")
#: What the report stage writes (relative to a project, or to a sweep's folder).
RESULTS_FILE = REPORTS_DIR / "results.csv"
SUMMARY_FILE = REPORTS_DIR / "summary.csv"
SUMMARY_MARKDOWN_FILE = REPORTS_DIR / "summary.md"
HEADLINE_FILE = REPORTS_DIR / "metrics.json"
CURVES_FILE = REPORTS_DIR / "curves.csv"
PER_LABEL_FILE = REPORTS_DIR / "per_label.csv"
LABEL_DISTRIBUTION_FILE = REPORTS_DIR / "label_distribution.csv"
EXAMPLES_FILE = REPORTS_DIR / "examples.md"
PLOTS_DIR = REPORTS_DIR / "plots"
COMPARISON_PLOT = PLOTS_DIR / "base_vs_finetuned.png"
TRAINING_CURVES_PLOT = PLOTS_DIR / "training_curves.png"
TEST_INTERVALS_PLOT = PLOTS_DIR / "test_intervals.png"
#: One model card per successful cell, Markdown with the Hub's metadata (`pipeline.publish`
#: puts it in the folder it uploads, as README.md).
CARDS_DIR = REPORTS_DIR / "cards"
DVC_EXPERIMENT_DIR = re.compile(r"^(?P<root>.+?)/\.dvc/tmp/exps/[^/]+")


def raw_dir(dataset: str) -> Path:
    return RAW_DIR / dataset


def manifest_file(dataset: str) -> Path:
    return raw_dir(dataset) / "manifest.json"


def extra_dir(name: str) -> Path:
    """The test split of the extra test set `name` and its manifest."""
    return EXTRA_DIR / name


def tokenized_dir(model: str) -> Path:
    return TOKENIZED_DIR / model


def tokenized_extra_dir(model: str) -> Path:
    """The extra test sets tokenized for `model` by tokenize@<model>, one folder per set."""
    return TOKENIZED_EXTRA_DIR / model


def train_output_dir(cell: str) -> Path:
    """The train stage's output folder: `model/` (the fine-tuned model), `curves.json` (the
    Trainer's log history) and `train.json` (the training record with the MLflow run id)."""
    return MODELS_DIR / cell


def fine_tuned_model_dir(cell: str) -> Path:
    return train_output_dir(cell) / "model"


def card_file(cell: str) -> Path:
    return CARDS_DIR / f"{cell}.md"


def checkpoint_dir(cell: str) -> Path:
    """Training checkpoints of a cell: not a DVC output, so they survive a killed run."""
    return CHECKPOINTS_DIR / cell


def baseline_metrics_file(cell: str) -> Path:
    """The untuned model's record (`baseline_eval`): test metrics, or the cell's failure."""
    return METRICS_DIR / "baseline" / f"{cell}.json"


def train_metrics_file(cell: str) -> Path:
    """The training record (`train`), the same as `train_output_dir(cell) / "train.json"`."""
    return METRICS_DIR / "train" / f"{cell}.json"


def final_metrics_file(cell: str) -> Path:
    """The fine-tuned model's record (`final_eval`): test metrics, or the cell's failure."""
    return METRICS_DIR / "final" / f"{cell}.json"


def pretrain_metrics_file(name: str) -> Path:
    return METRICS_DIR / "pretrain" / f"{name}.json"


def predictions_file(cell: str) -> Path:
    """The fine-tuned model's test predictions (`final_eval`)."""
    return REPORTS_DIR / "predictions" / f"{cell}.csv"


def base_predictions_file(cell: str) -> Path:
    """The untuned model's test predictions (`baseline_eval`): with the fine-tuned ones, what
    the report resamples to measure the gain's uncertainty over test examples."""
    return REPORTS_DIR / "predictions" / "base" / f"{cell}.csv"


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
