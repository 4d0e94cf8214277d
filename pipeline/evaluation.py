"""Running a model over a tokenized split, fast: length-sorted batches, no gradients."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pipeline.tasks.base import TaskAdapter


def predict_logits(model: PreTrainedModel, dataset: Dataset, collator: Any, batch_size: int,
                   desc: str = "evaluate") -> np.ndarray:
    """Logits for every example of `dataset`, in its original order.

    Batches are formed from length-sorted examples so that padding stays small;
    the order is restored at the end. Per-token logits are padded with zeros to the
    longest example.
    """
    model.eval()
    device = next(model.parameters()).device
    lengths = np.array([len(ids) for ids in dataset["input_ids"]])
    order = np.argsort(-lengths, kind="stable")
    features = [name for name in dataset.column_names if name != "labels"]
    outputs: list[np.ndarray] = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch"):
            rows = dataset.select(order[start:start + batch_size]).select_columns(features)
            batch = collator(list(rows))
            batch = {key: value.to(device) for key, value in batch.items()}
            outputs.append(model(**batch).logits.float().cpu().numpy())
    if outputs[0].ndim == 3:
        width = int(lengths.max())
        outputs = [np.pad(out, ((0, 0), (0, width - out.shape[1]), (0, 0))) for out in outputs]
    logits = np.concatenate(outputs)
    restored = np.empty_like(logits)
    restored[order] = logits
    return restored


def evaluate_split(task: TaskAdapter, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                   split: Dataset, manifest: dict[str, Any], batch_size: int,
                   desc: str) -> tuple[dict[str, float], dict[str, Any], np.ndarray]:
    """Metrics, detailed report and logits of `model` on a tokenized split."""
    logits = predict_logits(model, split, task.collator(tokenizer), batch_size, desc)
    scalars, report = task.metrics(logits, split["labels"], manifest)
    return scalars, report, logits
