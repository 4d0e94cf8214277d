"""Token classification (NER-style tagging), scored with seqeval at the entity level."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.config import DatasetConfig
from pipeline.errors import DataError
from pipeline.tasks.base import TaskAdapter, check_spellings

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from pipeline.bootstrap import ExampleStatistics

log = logging.getLogger(__name__)

TOKENS, TAGS = "tokens", "tags"
IGNORED = -100
OUTSIDE = "O"
#: Warn when entity tokens are less than this share of all tokens in a split.
ENTITY_MINORITY = 0.2
WORD = re.compile(r"\S+")


def iob1_to_iob2(tags: list[str]) -> list[str]:
    """IOB1 lets I- start an entity; IOB2 starts every entity with B-."""
    converted = []
    for i, tag in enumerate(tags):
        if tag.startswith("I-"):
            previous = converted[i - 1] if i else OUTSIDE
            if previous == OUTSIDE or previous[2:] != tag[2:]:
                tag = f"B-{tag[2:]}"
        converted.append(tag)
    return converted


def inside(tag: str) -> str:
    """The tag for a word's later subwords when every subword is labelled."""
    return f"I-{tag[2:]}" if tag.startswith("B-") else tag


def entity_type(tag: str) -> str | None:
    return None if tag == OUTSIDE else tag.split("-", 1)[-1]


def word_sequences(logits: np.ndarray, labels: Any, names: list[str]) -> tuple[list, list]:
    """Reference and predicted tag sequences, over the labelled (first-subword) positions."""
    references, predictions = [], []
    for row_logits, row_labels in zip(logits, labels, strict=True):
        row_labels = np.asarray(row_labels)
        keep = np.flatnonzero(row_labels != IGNORED)
        predicted = row_logits[: len(row_labels)].argmax(axis=-1)
        references.append([names[i] for i in row_labels[keep]])
        predictions.append([names[i] for i in predicted[keep]])
    return references, predictions


def group_entities(text: str, words: list[tuple[int, int]], tags: list[str],
                   scores: list[float]) -> list[dict[str, Any]]:
    """Consecutive words of one entity (B-X then I-X, or a run of one plain tag) as one entity,
    with its character span in `text` and the mean of its words' scores."""
    entities: list[dict[str, Any]] = []
    previous = None
    for (start, end), tag, score in zip(words, tags, scores, strict=True):
        kind = entity_type(tag)
        if kind is not None and kind == previous and not tag.startswith("B-"):
            entities[-1]["end"] = end
            entities[-1]["scores"].append(score)
        elif kind is not None:
            entities.append({"label": kind, "start": start, "end": end, "scores": [score]})
        previous = kind
    return [{"word": text[e["start"]:e["end"]], "label": e["label"],
             "score": float(np.mean(e["scores"])), "start": e["start"], "end": e["end"]}
            for e in entities]


class TokenClassification(TaskAdapter):
    metric_names = ("f1", "precision", "recall", "accuracy", "loss")
    validation_metric_names = metric_names
    lower_is_better = ("loss",)
    strata_column = None
    model_class_name = "AutoModelForTokenClassification"
    peft_task_type = "TOKEN_CLS"
    peft_head_modules = ("classifier", "score")
    pipeline_tag = "token-classification"
    usage_input = '"My name is Sarah and I live in London."'

    def prepare(self, frame: pd.DataFrame, cfg: DatasetConfig, where: str) -> pd.DataFrame:
        tokens_column, tags_column = cfg.text_columns[0], cfg.label_column
        missing = [c for c in (tokens_column, tags_column) if c not in frame.columns]
        if missing:
            raise DataError(f"{where}: missing column(s) {missing}; the data has "
                            f"{list(frame.columns)}. Token classification needs a list of "
                            "tokens and a list of tags per sentence (dataset.text_columns: "
                            "[tokens], dataset.label_column: tags), or format: conll.")
        rows, empty = [], 0
        for index, (tokens, tags) in enumerate(zip(frame[tokens_column], frame[tags_column],
                                                   strict=True)):
            tokens, tags = list(tokens), [str(tag) for tag in tags]
            if len(tokens) != len(tags):
                line = f" (line {frame['line'].iloc[index]})" if "line" in frame else ""
                raise DataError(f"{where}: sentence {index}{line} has {len(tokens)} tokens but "
                                f"{len(tags)} tags. Each token needs exactly one tag.")
            if not tokens:
                empty += 1
                continue
            if cfg.normalize_labels:
                tags = [tag.strip().upper() for tag in tags]
            rows.append({TOKENS: tokens, TAGS: iob1_to_iob2(tags) if cfg.convert_iob1 else tags})
        if empty:
            log.warning("%s: %d of %d rows dropped for having no tokens", where, empty, len(frame))
        return pd.DataFrame(rows, columns=[TOKENS, TAGS])

    def describe(self, splits: dict[str, pd.DataFrame]) -> dict[str, Any]:
        counts = {split: Counter(tag for tags in frame[TAGS] for tag in tags)
                  for split, frame in splits.items()}
        check_spellings({tag for counter in counts.values() for tag in counter}, "tags")
        labels = sorted(counts["train"], key=lambda tag: (tag != OUTSIDE, entity_type(tag) or "",
                                                          tag))
        for split, counter in counts.items():
            unknown = sorted(set(counter) - set(labels))
            if unknown:
                raise DataError(f"{split} split: tag(s) {unknown} never occur in the train "
                                f"split (tags there: {labels}). Fix the data or its tag scheme.")
        for split, counter in counts.items():
            entity_share = 1 - counter.get(OUTSIDE, 0) / max(sum(counter.values()), 1)
            if split != "train" and entity_share == 0:
                raise DataError(f"{split} split: no token is tagged as an entity, so entity F1 is "
                                "0 whatever the model does. Give the split sentences with "
                                "entities (a larger split, or another file in dataset.splits).")
            if entity_share < ENTITY_MINORITY:
                log.warning("%s split: entity tokens are %.1f%% of all tokens; consider "
                            "train.class_weighted_loss: true", split, 100 * entity_share)
        return {"labels": labels,
                "label_counts": {split: dict(sorted(counter.items()))
                                 for split, counter in counts.items()}}

    def texts(self, frame: pd.DataFrame) -> Iterator[str]:
        return (" ".join(tokens) for tokens in frame[TOKENS])

    def inputs(self, frame: pd.DataFrame) -> pd.Series:
        return frame[TOKENS].map(" ".join)

    def tokenize(self, split: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int,
                 manifest: dict[str, Any], training: bool) -> Dataset:
        tag_ids = {tag: i for i, tag in enumerate(manifest["labels"])}
        every_subword = training and self.config.label_all_subwords

        def encode(batch: dict[str, list]) -> dict[str, list]:
            encoded = tokenizer(batch[TOKENS], is_split_into_words=True, truncation=True,
                                max_length=max_length)
            encoded["labels"] = []
            for row, tags in enumerate(batch[TAGS]):
                labels, previous = [], None
                for word in encoded.word_ids(row):
                    if word is None:
                        labels.append(IGNORED)
                    elif word != previous:
                        labels.append(tag_ids[tags[word]])
                    else:
                        labels.append(tag_ids.get(inside(tags[word]), tag_ids[tags[word]])
                                      if every_subword else IGNORED)
                    previous = word
                encoded["labels"].append(labels)
            return encoded

        return split.map(encode, batched=True, remove_columns=split.column_names,
                         desc="tokenize")

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(tokenizer)

    def metrics(self, logits: np.ndarray, labels: Any,
                manifest: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
        import torch
        from seqeval.metrics import (
            accuracy_score,
            classification_report,
            f1_score,
            precision_score,
            recall_score,
        )

        references, predictions = word_sequences(logits, labels, manifest["labels"])
        flat_logits = np.concatenate([row[: len(np.asarray(lab))][np.asarray(lab) != IGNORED]
                                      for row, lab in zip(logits, labels, strict=True)])
        flat_labels = np.concatenate([np.asarray(lab)[np.asarray(lab) != IGNORED]
                                      for lab in labels])
        loss = torch.nn.functional.cross_entropy(torch.from_numpy(flat_logits).float(),
                                                 torch.from_numpy(flat_labels).long())
        scalars = {
            "f1": float(f1_score(references, predictions, zero_division=0)),
            "precision": float(precision_score(references, predictions, zero_division=0)),
            "recall": float(recall_score(references, predictions, zero_division=0)),
            "accuracy": float(accuracy_score(references, predictions)),
            "loss": float(loss),
        }
        report = classification_report(references, predictions, output_dict=True,
                                       zero_division=0)
        per_label = {
            name: {"precision": float(values["precision"]), "recall": float(values["recall"]),
                   "f1": float(values["f1-score"]), "support": int(values["support"])}
            for name, values in report.items() if not name.endswith(" avg")
        }
        return scalars, {"per_label": per_label}

    def prediction_table(self, raw: pd.DataFrame, logits: np.ndarray,
                         manifest: dict[str, Any], labels: Any) -> pd.DataFrame:
        references, predictions = word_sequences(logits, labels, manifest["labels"])
        return pd.DataFrame({
            "tokens": [" ".join(tokens) for tokens in raw[TOKENS]],
            "reference": [" ".join(tags) for tags in references],
            "prediction": [" ".join(tags) for tags in predictions],
        })

    def example_statistics(self, table: pd.DataFrame,
                           manifest: dict[str, Any]) -> dict[str, ExampleStatistics]:
        from pipeline import example_statistics as statistics

        references = [tags.split() for tags in table["reference"].astype(str)]
        predictions = [tags.split() for tags in table["prediction"].astype(str)]
        return {"f1": statistics.entity_f1(references, predictions),
                "precision": statistics.entity_precision(references, predictions),
                "recall": statistics.entity_recall(references, predictions),
                "accuracy": statistics.tag_accuracy(references, predictions)}

    def format_prediction(self, result: dict[str, Any]) -> str:
        lines = [result["input"]]
        lines += [f"  {e['label']}\t{e['score']:.4f}\t{e['start']}-{e['end']}\t{e['word']}"
                  for e in result["entities"]]
        return "\n".join(lines)

    def predict(self, inputs: list[str], model: PreTrainedModel,
                tokenizer: PreTrainedTokenizerBase) -> list[dict[str, Any]]:
        import torch

        results = []
        for text in inputs:
            words = [(m.group(), m.start(), m.end()) for m in WORD.finditer(text)]
            encoded = tokenizer([word for word, _, _ in words], is_split_into_words=True,
                                truncation=True, return_tensors="pt")
            with torch.inference_mode():
                probabilities = torch.softmax(model(**encoded).logits[0].float(), dim=-1)
            first: dict[int, int] = {}
            for position, word in enumerate(encoded.word_ids(0)):
                if word is not None:
                    first.setdefault(word, position)
            kept = sorted(first)  # words past the model's length limit are dropped
            best = [probabilities[first[word]] for word in kept]
            tags = [model.config.id2label[int(p.argmax())] for p in best]
            spans = [(words[word][1], words[word][2]) for word in kept]
            results.append({"input": text, "tags": tags, "entities": group_entities(
                text, spans, tags, [float(p.max()) for p in best])})
        return results
