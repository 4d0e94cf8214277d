"""The experiment a command works on: validated params, its task adapter, and its cells.

Everything here is checked before any heavy work, so a typo or a missing source stops a
command with one message. Torch is not imported here (composing a config stays fast).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pipeline.config import ModelConfig, Params, TrainConfig, cell_name, load_params, parse_params
from pipeline.data import load_split
from pipeline.errors import ConfigError, PipelineError, SourceError
from pipeline.io import atomic_file, read_json
from pipeline.paths import manifest_file, pretrained_dir, tokenized_dir, tokenized_extra_dir
from pipeline.sources import model_location, resolve_path
from pipeline.tasks import TaskAdapter, get_task

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def load_experiment() -> tuple[Params, TaskAdapter]:
    """params.yaml, validated, and its task adapter."""
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
        task.check_model_config(model, f"models.{name}")
        metric = model.training(params.train, f"models.{name}.train").metric_for_best_model
        if metric not in task.validation_metric_names:
            raise ConfigError(f"train.metric_for_best_model: '{metric}' is not measured on the "
                              f"validation split by task '{params.task.name}'; choose one of "
                              f"{list(task.validation_metric_names)}")


def check_sources(params: Params) -> None:
    """Local and package sources, and the files DVC watches, exist (Hub ids are checked when
    first loaded), except the models that this experiment pre-trains itself."""
    built_here = {pretrained_dir(name) for name in params.pretraining}
    for name, model in params.models.items():
        if model.source == "local" and Path(model.path) in built_here:
            continue
        check_model_files(name, model)
        check_watched(model.watch, f"models.{name}.watch")
    datasets = {"dataset": params.dataset,
                **{f"evaluation.extra.{name}": extra for name, extra in params.evaluation.extra.items()}}
    for where, dataset in datasets.items():
        if dataset.source != "hub":  # the path first: a watch that follows it names it too
            resolve_path(dataset.source, dataset.path, f"{where}.path")
        check_watched(dataset.watch, f"{where}.watch")


def check_model_files(name: str, model: ModelConfig) -> None:
    """A model's GGUF file exists, or its folder does and has positions for max_length. A
    network from scratch has no files; a Hub id is checked when first loaded."""
    where = f"models.{name}.path"
    if model.source in (None, "hub"):
        return
    if model.gguf_file:
        file = resolve_path(model.source, model.path, where) / model.gguf_file
        if not file.is_file():
            raise SourceError(f"models.{name}.gguf_file: '{file}' does not exist")
        return
    folder = Path(model_location(model.source, model.path, where))
    if model.pretrained:
        check_model_positions(folder, model.max_length, f"models.{name}")


def check_model_positions(folder: Path, max_length: int, where: str) -> None:
    """A pretrained model has a position embedding for so many tokens; more is a failed cell."""
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    positions = config.get("max_position_embeddings") or config.get("n_positions")
    if positions and max_length > positions:
        raise ConfigError(f"{where}.max_length: {max_length} tokens, but the model in '{folder}' "
                          f"has positions for {positions}; set max_length to {positions} or less")


def check_watched(watch: str, where: str) -> None:
    """DVC stops on a dependency that does not exist; say so before it does."""
    if not (Path.cwd() / watch).exists():
        raise SourceError(f"{where}: '{watch}' does not exist (relative to {Path.cwd()}); DVC "
                          "hashes it to see that the input changed")


def checked_params(text: str, where: str) -> Params:
    """Composed params (YAML text), validated and with their local sources found."""
    params = parse_params(yaml.safe_load(text), where)
    check_task_settings(params, get_task(params.task))
    check_sources(params)
    return params


def write_predictions(cell: Cell, outputs: Any, manifest: dict[str, Any], labels: Any,
                      path: Path) -> None:
    """The cell's predictions on the test split, one row per example, as its task tabulates
    them (input, reference, prediction)."""
    table = cell.task.prediction_table(load_split(cell.params.dataset.name, "test"), outputs,
                                       manifest, labels)
    with atomic_file(path) as scratch:
        table.to_csv(scratch, index=False)


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


def load_tokenized_extra(model: str, name: str) -> Dataset:
    """The extra test set `name` as tokenize@<model> wrote it."""
    from datasets import load_from_disk

    folder = tokenized_extra_dir(model) / name
    if not folder.is_dir():
        raise PipelineError(f"{folder}: missing. Run tokenize@{model} first (`dvc repro`).")
    return load_from_disk(str(folder))


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


def extra_set_scores(cell: Cell, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                     manifest: dict[str, Any], stage: str) -> dict[str, dict[str, float]]:
    """The model's metrics on each extra test set (`evaluation.extra`), by set."""
    batch_size = cell.training.eval_batch_size
    return {name: cell.task.evaluate(model, tokenizer, load_tokenized_extra(cell.model, name),
                                     manifest, batch_size, f"{stage} {cell.name} on {name}")[0]
            for name in cell.params.evaluation.extra}


def experiment_cell(model: str, seed: int) -> Cell:
    """A cell of the experiment in params.yaml, checked to be one."""
    params, task = load_experiment()
    params.model(model)
    if seed not in params.seeds:
        raise ConfigError(f"seed {seed}: not in seeds {params.seeds}")
    return Cell(params, task, model, seed)
