"""What every stage does first: read the validated config, pick the task adapter, parse its cell."""

from __future__ import annotations

import argparse
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.config import ModelConfig, Params, TrainConfig, cell_name, load_params
from pipeline.errors import ConfigError, PipelineError
from pipeline.io import read_json
from pipeline.launch import use_available_cores
from pipeline.paths import manifest_file, tokenized_dir
from pipeline.tasks import TaskAdapter, get_task

if TYPE_CHECKING:
    from datasets import DatasetDict
    from transformers import PreTrainedTokenizerBase

FAILED, SUCCESS = "failed", "success"


def load_experiment() -> tuple[Params, TaskAdapter]:
    params = load_params()
    task = get_task(params.task)
    check_task_settings(params, task)
    return params, task


def check_task_settings(params: Params, task: TaskAdapter) -> None:
    """Settings whose allowed values depend on the task."""
    if task.needs_label_column and not params.dataset.label_column:
        raise ConfigError(f"dataset.label_column: task '{params.task.name}' needs the column that "
                          "holds the labels (or target texts); set it in the dataset config")
    for name, model in params.models.items():
        metric = model.training(params.train, f"models.{name}.train").metric_for_best_model
        if metric not in task.validation_metric_names:
            raise ConfigError(f"train.metric_for_best_model: '{metric}' is not measured on the "
                              f"validation split by task '{params.task.name}'; choose one of "
                              f"{list(task.validation_metric_names)}")


def read_manifest(params: Params) -> dict[str, Any]:
    path = manifest_file(params.dataset.name)
    if not path.is_file():
        raise PipelineError(f"{path}: missing. Run the download stage first (`dvc repro`).")
    return read_json(path)


def load_tokenized(model: str) -> tuple[DatasetDict, PreTrainedTokenizerBase]:
    """The splits and tokenizer written by `tokenize@<model>`."""
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    folder = tokenized_dir(model)
    if not (folder / "info.json").is_file():
        raise PipelineError(f"{folder}: missing. Run tokenize@{model} first (`dvc repro`).")
    return load_from_disk(str(folder / "splits")), AutoTokenizer.from_pretrained(
        folder / "tokenizer")


@dataclass(frozen=True)
class Cell:
    """One model x seed pair of the experiment."""

    params: Params
    task: TaskAdapter
    model: str
    seed: int

    @property
    def name(self) -> str:
        return cell_name(self.model, self.seed)

    @property
    def model_config(self) -> ModelConfig:
        return self.params.model(self.model)

    @property
    def where(self) -> str:
        return f"models.{self.model}"

    @property
    def training(self) -> TrainConfig:
        """The global training settings with this model's overrides applied."""
        return self.model_config.training(self.params.train, f"{self.where}.train")


def parse_cell(description: str) -> Cell:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", required=True, help="a key of `models` in params.yaml")
    parser.add_argument("--seed", required=True, type=int, help="one of `seeds` in params.yaml")
    args = parser.parse_args()
    params, task = load_experiment()
    params.model(args.model)
    if args.seed not in params.seeds:
        raise ConfigError(f"--seed {args.seed}: not in seeds {params.seeds}")
    return Cell(params, task, args.model, args.seed)


class UpstreamFailure(RuntimeError):
    """An earlier stage of this cell failed; its error is carried into the results as is."""


def failure(stage: str, error: BaseException) -> dict[str, Any]:
    message = str(error) if isinstance(error, UpstreamFailure) else f"{type(error).__name__}: {error}"
    return {"status": FAILED, "stage": stage, "error": message.strip(),
            "traceback": traceback.format_exc(limit=20)}


def run_cell_stage(stage: str, body: Callable[[], None],
                   on_failure: Callable[[dict[str, Any]], None]) -> None:
    """Run one cell's stage. Any fault inside it (a broken checkpoint, out of memory, NaN
    loss) concerns this model x seed only: it is handed to `on_failure`, which writes the
    stage's outputs as a failed cell, so the other cells go on and the results table shows
    it. `python -m pipeline.retry_failed` (run by `make repro`) retries such cells."""
    use_available_cores()
    try:
        body()
    except Exception as error:
        logging.getLogger(stage).exception("cell failed")
        on_failure(failure(stage, error))


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
