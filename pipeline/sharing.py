"""A fine-tuned cell as a folder to share: what `pipeline.publish` uploads to the Hub, and what
the report stage logs to MLflow for the best cell (`tracking.log_model`).

The folder holds the model as `save_pretrained` wrote it (config, safetensors weights,
tokenizer; the Trainer's pickled training_args.bin stays out), the cell's card as README.md,
its test metrics (metrics.json) and its training curves (curves.json): all read from what
`dvc repro` wrote, so the folder is exactly the cell the reports describe.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from pipeline.comparison import best_model, successful
from pipeline.config import cell_name
from pipeline.errors import PipelineError
from pipeline.io import read_json, write_json
from pipeline.paths import RESULTS_FILE, card_file, fine_tuned_model_dir, train_output_dir
from pipeline.records import SUCCESS
from pipeline.sources import WEIGHT_FILES
from pipeline.tasks import TaskAdapter

#: Files that unpickle (and so can run code) when loaded: never shared.
PICKLED = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
#: What metrics.json leaves out of the cell's row of results.csv: bookkeeping, not results.
NOT_METRICS = ("status", "error", "mlflow_run_id")


def read_results() -> pd.DataFrame:
    if not RESULTS_FILE.is_file():
        raise PipelineError(f"{RESULTS_FILE}: missing. Run `dvc repro` (or `make repro`) first: "
                            "the report stage writes it with the cards.")
    return pd.read_csv(RESULTS_FILE, keep_default_na=False, na_values=[""])


def cell_row(results: pd.DataFrame, model: str, seed: int) -> pd.Series:
    """The cell's row of results.csv; a cell that is missing or failed is refused."""
    cell = cell_name(model, seed)
    rows = results[(results["model"] == model) & (results["seed"] == seed)]
    if rows.empty:
        raise PipelineError(f"{cell}: no row in {RESULTS_FILE}. Run `dvc repro` to train and "
                            "report it.")
    row = rows.iloc[0]
    if row["status"] != SUCCESS:
        raise PipelineError(f"{cell}: the cell failed ({row['error']}); there is no model to "
                            "share. Fix the cause and run `make repro`, which retries failed cells.")
    return row


def best_cell(results: pd.DataFrame, task: TaskAdapter) -> pd.Series:
    """The best cell of the best model: the model with the best mean fine-tuned main metric
    (the summary's best), then its seed with the best fine-tuned main metric. Both are chosen
    on the test split, so that figure flatters the cell."""
    metric = task.metric_names[0]
    lower = metric in task.lower_is_better
    model = best_model(results, metric, lower)
    if model is None:
        raise PipelineError(f"{RESULTS_FILE}: no cell succeeded; there is no model to share.")
    cells = successful(results)
    cells = cells[cells["model"] == model].sort_values(f"finetuned_{metric}", ascending=lower)
    return cells.iloc[0]


def check_current(row: pd.Series) -> None:
    """The model folder must be the one the reports describe: a cell trained again since the
    last report has another MLflow run."""
    cell = cell_name(row["model"], int(row["seed"]))
    record = train_output_dir(cell) / "train.json"
    if not (fine_tuned_model_dir(cell) / "config.json").is_file() or not record.is_file():
        raise PipelineError(f"{fine_tuned_model_dir(cell)}: no fine-tuned model here. Run "
                            "`dvc repro` (or `dvc pull` to fetch it from a DVC remote).")
    trained = read_json(record).get("mlflow_run_id")
    if trained != row["mlflow_run_id"]:
        raise PipelineError(f"{cell}: {RESULTS_FILE} and the card describe MLflow run "
                            f"{row['mlflow_run_id']}, but the model in {fine_tuned_model_dir(cell)} "
                            f"was trained by run {trained}. Run `dvc repro` to report it.")


def read_card(row: pd.Series) -> str:
    path = card_file(cell_name(row["model"], int(row["seed"])))
    if not path.is_file():
        raise PipelineError(f"{path}: missing. Run `dvc repro`: the report stage writes a card "
                            "for every successful cell.")
    return path.read_text(encoding="utf-8")


def model_files(folder: Path) -> list[Path]:
    """The model folder's files that are safe to share, with its safetensors weights."""
    files = [path for path in sorted(folder.iterdir())
             if path.is_file() and path.suffix not in PICKLED]
    if not any(path.name in WEIGHT_FILES for path in files):
        raise PipelineError(f"{folder}: no safetensors weights ({', '.join(WEIGHT_FILES)}); "
                            "only safetensors weights are shared.")
    return files


def write_share_folder(row: pd.Series, card: str, folder: Path) -> None:
    """The cell's model, card (README.md), metrics and curves in `folder` (made if missing)."""
    cell = cell_name(row["model"], int(row["seed"]))
    folder.mkdir(parents=True, exist_ok=True)
    for path in model_files(fine_tuned_model_dir(cell)):
        shutil.copy2(path, folder / path.name)
    (folder / "README.md").write_text(card, encoding="utf-8")
    metrics = json.loads(row.drop(list(NOT_METRICS)).to_json())  # NaN -> null, numpy -> JSON
    write_json(folder / "metrics.json", metrics)
    shutil.copy2(train_output_dir(cell) / "curves.json", folder / "curves.json")
