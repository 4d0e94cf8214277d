"""Text classification of single texts or sentence pairs (two text columns, as MRPC)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.config import DatasetConfig
from pipeline.errors import DataError
from pipeline.tasks.base import PAIR_SEPARATOR, TaskAdapter, check_spellings, without_blank

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from pipeline.bootstrap import ExampleStatistics

TEXT, PAIR, LABEL = "text", "text_pair", "label"


#: Cells a reader may keep as text that mean "no value" (pandas reads them as missing).
MISSING_LABELS = {"", "na", "n/a", "nan", "null", "none", "<na>", "#n/a"}


def check_labelled(labels: pd.Series, column: str, where: str) -> None:
    """Every row needs a label: an empty cell would otherwise become a class of its own."""
    missing = labels.isna() | labels.fillna("").str.strip().str.lower().isin(MISSING_LABELS)
    if missing.any():
        rows = [int(row) + 1 for row in np.flatnonzero(missing.to_numpy())]
        shown = ", ".join(map(str, rows[:10])) + (" ..." if len(rows) > 10 else "")
        values = sorted({repr(value) for value in labels[missing].fillna("<missing>")})
        raise DataError(f"{where}: {len(rows)} row(s) have no label in column '{column}' (data "
                        f"rows {shown}, counting from 1; values {', '.join(values)}). Fill them "
                        "in or remove them; to drop such rows, list the value in "
                        "dataset.drop_labels (e.g. drop_labels: [''])")


class TextClassification(TaskAdapter):
    metric_names = ("accuracy", "macro_f1", "macro_precision", "macro_recall", "loss")
    validation_metric_names = metric_names
    lower_is_better = ("loss",)
    strata_column = LABEL
    model_class_name = "AutoModelForSequenceClassification"
    peft_task_type = "SEQ_CLS"
    peft_head_modules = ("pre_classifier", "classifier", "score")  # pre_classifier: DistilBERT
    pipeline_tag = "text-classification"

    def prepare(self, frame: pd.DataFrame, cfg: DatasetConfig, where: str) -> pd.DataFrame:
        needed = [*cfg.text_columns, cfg.label_column]
        missing = [column for column in needed if column not in frame.columns]
        if missing:
            raise DataError(f"{where}: missing column(s) {missing}; the data has "
                            f"{list(frame.columns)}. Set dataset.text_columns and "
                            "dataset.label_column to the right names.")
        labels = frame[cfg.label_column].astype("string")
        if cfg.normalize_labels:
            labels = labels.str.strip().str.lower()
        canonical = pd.DataFrame({TEXT: frame[cfg.text_columns[0]].astype("string")})
        if len(cfg.text_columns) == 2:
            canonical[PAIR] = frame[cfg.text_columns[1]].astype("string")
        canonical[LABEL] = labels
        canonical = canonical[~canonical[LABEL].isin(cfg.drop_labels)]
        check_labelled(canonical[LABEL], cfg.label_column, where)
        blank = pd.Series(False, index=canonical.index)
        for column in (TEXT, PAIR):
            if column in canonical:
                blank |= canonical[column].fillna("").str.strip().eq("")
        return without_blank(canonical, blank, where, "empty text")

    def describe(self, splits: dict[str, pd.DataFrame]) -> dict[str, Any]:
        check_spellings({label for frame in splits.values() for label in frame[LABEL]}, "labels")
        labels = sorted(splits["train"][LABEL].unique())
        if len(labels) < 2:
            raise DataError(f"train split: a classifier needs at least two labels, found {labels}")
        for split, frame in splits.items():
            unknown = sorted(set(frame[LABEL]) - set(labels))
            if unknown:
                raise DataError(f"{split} split: label(s) {unknown} never occur in the train "
                                f"split (labels there: {labels}). Fix the data, or list them "
                                "in dataset.drop_labels.")
        for split, frame in splits.items():
            present = sorted(frame[LABEL].unique())
            if split != "train" and len(present) < 2:
                raise DataError(f"{split} split: every example has the label {present}, so "
                                "accuracy and F1 cannot tell a model from one that always answers "
                                "it. Give the split examples of at least two labels (a larger "
                                f"dataset.{split}_fraction, or another file in dataset.splits).")
        counts = {split: frame[LABEL].value_counts().sort_index().to_dict()
                  for split, frame in splits.items()}
        return {"labels": labels, "label_counts": counts}

    def inputs(self, frame: pd.DataFrame) -> pd.Series:
        text = frame[TEXT].str.split().str.join(" ")
        return text + " ||| " + frame[PAIR].str.split().str.join(" ") if PAIR in frame else text

    def texts(self, frame: pd.DataFrame) -> Iterator[str]:
        for column in (TEXT, PAIR):
            if column in frame:
                yield from frame[column]

    def tokenize(self, split: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int,
                 manifest: dict[str, Any], training: bool) -> Dataset:
        label_ids = {label: i for i, label in enumerate(manifest["labels"])}

        def encode(batch: dict[str, list]) -> dict[str, list]:
            pair = batch.get(PAIR)
            encoded = tokenizer(batch[TEXT], pair, truncation=True, max_length=max_length)
            encoded["labels"] = [label_ids[label] for label in batch[LABEL]]
            return encoded

        return split.map(encode, batched=True, remove_columns=split.column_names,
                         desc="tokenize")

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def metrics(self, logits: np.ndarray, labels: Any,
                manifest: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
        import torch
        from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

        names = manifest["labels"]
        labels = np.asarray(labels)
        predicted = logits.argmax(axis=-1)
        ids = list(range(len(names)))
        loss = torch.nn.functional.cross_entropy(torch.from_numpy(logits).float(),
                                                 torch.from_numpy(labels).long())
        precision, recall, f1, support = precision_recall_fscore_support(
            labels, predicted, labels=ids, zero_division=0)
        scalars = {
            "accuracy": float(accuracy_score(labels, predicted)),
            "macro_f1": float(f1_score(labels, predicted, labels=ids, average="macro",
                                       zero_division=0)),
            "macro_precision": float(np.mean(precision)),
            "macro_recall": float(np.mean(recall)),
            "loss": float(loss),
        }
        per_label = {
            name: {"precision": float(precision[i]), "recall": float(recall[i]),
                   "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(names)
        }
        return scalars, {"per_label": per_label}

    def prediction_table(self, raw: pd.DataFrame, logits: np.ndarray,
                         manifest: dict[str, Any], labels: Any) -> pd.DataFrame:
        import torch

        names = np.array(manifest["labels"])
        probabilities = torch.softmax(torch.from_numpy(logits).float(), dim=-1).numpy()
        table = raw.rename(columns={LABEL: "reference"}).copy()
        table["prediction"] = names[probabilities.argmax(axis=-1)]
        table["score"] = probabilities.max(axis=-1).round(6)
        return table

    def example_statistics(self, table: pd.DataFrame,
                           manifest: dict[str, Any]) -> dict[str, ExampleStatistics]:
        from pipeline import example_statistics as statistics

        references = table["reference"].astype(str).tolist()
        predictions = table["prediction"].astype(str).tolist()
        labels = manifest["labels"]
        return {"accuracy": statistics.accuracy(references, predictions),
                "macro_f1": statistics.macro_f1(references, predictions, labels),
                "macro_precision": statistics.macro_precision(references, predictions, labels),
                "macro_recall": statistics.macro_recall(references, predictions, labels)}

    def format_prediction(self, result: dict[str, Any]) -> str:
        return f"{result['label']}\t{result['score']:.4f}\t{result['input']}"

    def predict(self, inputs: list[str], model: PreTrainedModel,
                tokenizer: PreTrainedTokenizerBase) -> list[dict[str, Any]]:
        import torch

        pairs = [text.split(PAIR_SEPARATOR, 1) for text in inputs]
        first = [pair[0] for pair in pairs]
        second = [pair[1] for pair in pairs] if all(len(p) == 2 for p in pairs) else None
        encoded = tokenizer(first, second, truncation=True, padding=True, return_tensors="pt")
        with torch.inference_mode():
            probabilities = torch.softmax(model(**encoded).logits.float(), dim=-1)
        labels = model.config.id2label
        return [
            {"input": text, "label": labels[int(row.argmax())], "score": float(row.max())}
            for text, row in zip(inputs, probabilities, strict=True)
        ]
