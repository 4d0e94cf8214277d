"""What every task adapter provides: the stages call these and never branch on the task.

Adapters import torch, transformers and datasets inside the methods that need them, so that
reading data (`download`), composing a config and writing reports stay free of them.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline import markdown
from pipeline.config import DatasetConfig, ModelConfig, TaskConfig
from pipeline.errors import DataError

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import EvalPrediction, PreTrainedModel, PreTrainedTokenizerBase

    from pipeline.bootstrap import ExampleStatistics


log = logging.getLogger(__name__)
#: How a user writes two texts as one input to `predict`: "first ||| second".
PAIR_SEPARATOR = " ||| "


def without_blank(frame: pd.DataFrame, blank: pd.Series, where: str, what: str) -> pd.DataFrame:
    """`frame` without the rows marked `blank`, saying how many went: rows that vanish
    silently change what a model is trained and scored on."""
    if blank.any():
        log.warning("%s: %d of %d rows dropped for %s", where, int(blank.sum()), len(frame), what)
    return frame[~blank].reset_index(drop=True)


def spelling_clashes(labels: Iterable[str]) -> list[list[str]]:
    """Groups of labels that differ only by case or surrounding spaces ('pos', 'Pos ')."""
    groups: dict[str, set[str]] = {}
    for label in labels:
        groups.setdefault(label.strip().casefold(), set()).add(label)
    return sorted(sorted(group) for group in groups.values() if len(group) > 1)


def check_spellings(labels: Iterable[str], kind: str) -> None:
    clashes = spelling_clashes(labels)
    if clashes:
        shown = "; ".join(" / ".join(repr(label) for label in group) for group in clashes)
        raise DataError(f"{kind} that differ only by case or surrounding spaces would be separate "
                        f"classes: {shown}. Fix the data, or set dataset.normalize_labels: true to "
                        "strip and lower-case every label.")


class TaskAdapter(ABC):
    """One task: how its raw rows look, how they are tokenized, which head and metrics it uses."""

    def __init__(self, config: TaskConfig) -> None:
        self.config = config

    #: Metrics computed by `metrics`; `train.metric_for_best_model` must be one of them.
    metric_names: tuple[str, ...]
    #: Metrics where lower is better (the rest are higher-is-better).
    lower_is_better: tuple[str, ...] = ()
    #: Metrics measured on the validation split while training (to keep the best checkpoint).
    validation_metric_names: tuple[str, ...] = ()
    #: Whether the task reads `dataset.label_column` (labels, tags or target texts).
    needs_label_column: bool = True
    #: `tokenize` warns about examples cut at the model's max_length.
    reports_truncation: bool = True
    #: The collator reads dataset columns the model does not take (Trainer keeps them).
    collator_reads_extra_columns: bool = False
    #: Column used to stratify seeded splits, or None.
    strata_column: str | None = None
    #: Column whose groups seeded splits keep whole (no group in two splits), or None.
    group_column: str | None = None
    #: The transformers Auto class that adds this task's head, by name.
    model_class_name: str
    #: LoRA (pipeline/adapters.py): peft's task type (its name in peft.TaskType; None for a
    #: plain PeftModel), and the names of the head modules that start random and so train in
    #: full; names a model lacks are skipped.
    peft_task_type: str | None = None
    peft_head_modules: tuple[str, ...] = ()
    #: The Hub's pipeline tag: a model card's `pipeline_tag` and its model-index task type.
    pipeline_tag: str
    #: What the model card's usage example gives the model (Python source).
    usage_input: str = '"A warm, funny and moving film."'
    #: A tokenizer trained for this task puts its start and end tokens around every text
    #: (BERT's [CLS] ... [SEP], BART's <s> ... </s>); a causal LM's adds none.
    tokenizer_marks_texts: bool = True

    @property
    def model_class(self) -> Any:
        import transformers

        return getattr(transformers, self.model_class_name)

    def check_model_config(self, model: ModelConfig, where: str) -> None:
        """Refuse model settings the task cannot work with, before any work. None by default."""
        return None

    def check_model(self, model: PreTrainedModel, where: str) -> None:
        """Refuse a built network this task would score wrongly (`where` names its setting);
        every model that loads with the task's Auto class is fine by default."""
        return None

    @abstractmethod
    def prepare(self, frame: pd.DataFrame, cfg: DatasetConfig, where: str) -> pd.DataFrame:
        """Check a raw table and reduce it to the task's canonical columns."""

    @abstractmethod
    def describe(self, splits: dict[str, pd.DataFrame]) -> dict[str, Any]:
        """Check the splits against each other; return what the manifest records (labels...)."""

    @abstractmethod
    def texts(self, frame: pd.DataFrame) -> Iterator[str]:
        """Every text of a split, to train a tokenizer on."""

    @abstractmethod
    def inputs(self, frame: pd.DataFrame) -> pd.Series:
        """What the model reads of each row, as one string: the same input in two splits
        (after whitespace is normalised) means the test is partly scored on training data."""

    @abstractmethod
    def tokenize(self, split: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int,
                 manifest: dict[str, Any], training: bool) -> Dataset:
        """Model inputs and `labels` for one split, unpadded (the collator pads per batch).
        `training` is true for the train split, whose labels may differ from the scored ones."""

    def head_config(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments for the model config that shape the task head: by default one
        output per label of the manifest, with the label names."""
        labels = manifest["labels"]
        return {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                "label2id": {label: i for i, label in enumerate(labels)}}

    @abstractmethod
    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        """Pads a batch of tokenized examples."""

    @abstractmethod
    def metrics(self, outputs: Any, references: Any,
                manifest: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
        """Scalar metrics (for results.csv and MLflow) and a detailed report, whose `per_label`
        entry (if any) maps each label to its precision, recall, f1 and support. `outputs` are
        what `evaluate` infers (logits); `references` the labels, which may be ragged."""

    def evaluate(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, split: Dataset,
                 manifest: dict[str, Any], batch_size: int,
                 desc: str) -> tuple[dict[str, float], dict[str, Any], Any]:
        """Metrics, report and outputs (here logits) of `model` on a tokenized split."""
        from pipeline.evaluation import predict_logits

        logits = predict_logits(model, split, self.collator(tokenizer), batch_size, desc)
        scalars, report = self.metrics(logits, split["labels"], manifest)
        return scalars, report, logits

    def validation_metrics(self, manifest: dict[str, Any]
                           ) -> Callable[[EvalPrediction], dict[str, float]] | None:
        """Trainer's `compute_metrics` on the validation split; None: its loss only."""

        def compute(prediction: EvalPrediction) -> dict[str, float]:
            return self.metrics(np.asarray(prediction.predictions),
                                np.asarray(prediction.label_ids), manifest)[0]

        return compute

    def reference_scores(self, raw_test: pd.DataFrame) -> dict[str, float]:
        """Scores of a model-free baseline on the test split, reported beside the untuned
        model's (summarization: lead-N). None by default."""
        return {}

    @abstractmethod
    def prediction_table(self, raw: pd.DataFrame, outputs: Any,
                         manifest: dict[str, Any], labels: Any) -> pd.DataFrame:
        """One row per test example: input, reference and prediction, from `evaluate`'s
        outputs."""

    def example_statistics(self, table: pd.DataFrame,
                           manifest: dict[str, Any]) -> dict[str, ExampleStatistics]:
        """Per test example, the additive statistics of each metric that the predictions
        table (as `prediction_table` writes it, read back from CSV) can rebuild exactly: what
        the report resamples for test-set intervals and paired tests, with no model rerun."""
        return {}

    def examples_markdown(self, table: pd.DataFrame) -> list[str]:
        """The first rows of a predictions table as Markdown lines (reports/examples.md): a
        table, each cell on one line and cut short."""
        return markdown.table(table.columns, ([markdown.cell(value) for value in row]
                                              for row in table.itertuples(index=False)))

    @abstractmethod
    def format_prediction(self, result: dict[str, Any]) -> str:
        """One prediction from `predict` as text for the terminal."""

    def usage(self, location: str) -> str:
        """Python that loads the fine-tuned model from `location` (a folder or a Hub id) and
        runs it: the model card's "How to use"."""
        return (f'from transformers import pipeline\n\n'
                f'model = pipeline("{self.pipeline_tag}", model="{location}")\n'
                f"print(model({self.usage_input}))")

    @abstractmethod
    def predict(self, inputs: list[str], model: PreTrainedModel,
                tokenizer: PreTrainedTokenizerBase) -> list[dict[str, Any]]:
        """Predictions for raw user input, for `python -m pipeline.predict`."""
