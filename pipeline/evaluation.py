"""Running a model over a tokenized split, fast: length-sorted batches, no gradients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

#: Dataset columns that are model inputs (or labels); others (references...) stay out of batches.
MODEL_INPUTS = ("input_ids", "attention_mask", "labels")


def longest_first(dataset: Dataset) -> np.ndarray:
    """Row indices from the longest input to the shortest (ties in row order)."""
    lengths = np.array([len(ids) for ids in dataset["input_ids"]])
    return np.argsort(-lengths, kind="stable")


def length_sorted_batches(dataset: Dataset, batch_size: int, columns: list[str],
                          desc: str) -> Iterator[tuple[np.ndarray, list[dict[str, Any]]]]:
    """(row indices, rows) in batches of similar length, longest first, so that padding
    stays small and the memory peak comes at once."""
    order = longest_first(dataset)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch"):
        indices = order[start:start + batch_size]
        yield indices, list(dataset.select(indices).select_columns(columns))


def for_inference(model: PreTrainedModel) -> PreTrainedModel:
    """The model in evaluation mode, moved to the GPU when there is one: the stages load
    models on the CPU, and evaluating (above all generating) there while a GPU idles is many
    times slower."""
    if torch.cuda.is_available() and next(model.parameters()).device.type == "cpu":
        model.to("cuda")
    return model.eval()


def on_device(batch: dict[str, torch.Tensor], model: PreTrainedModel) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    return {key: value.to(device) for key, value in batch.items()}


def model_logits(output: Any) -> torch.Tensor:
    return output.logits


def predict_logits(model: PreTrainedModel, dataset: Dataset, collator: Any, batch_size: int,
                   desc: str = "evaluate",
                   read: Callable[[Any], torch.Tensor] = model_logits) -> np.ndarray:
    """Logits for every example of `dataset`, in its original order, as `read` takes them from
    the model's output (question answering: start and end logits stacked). Per-token logits
    are padded with zeros to the longest example."""
    for_inference(model)
    features = [name for name in dataset.column_names if name != "labels"]
    outputs: list[np.ndarray] = []
    positions: list[np.ndarray] = []
    with torch.inference_mode():
        for indices, rows in length_sorted_batches(dataset, batch_size, features, desc):
            outputs.append(read(model(**on_device(collator(rows), model))).float().cpu().numpy())
            positions.append(indices)
    if outputs[0].ndim == 3:
        width = max(out.shape[1] for out in outputs)
        outputs = [np.pad(out, ((0, 0), (0, width - out.shape[1]), (0, 0))) for out in outputs]
    logits = np.concatenate(outputs)
    restored = np.empty_like(logits)
    restored[np.concatenate(positions)] = logits
    return restored


def generate_texts(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dataset: Dataset,
                   batch_size: int, settings: dict[str, Any], desc: str = "generate") -> list[str]:
    """The decoded generation for every example of `dataset`, in its original order."""
    for_inference(model)
    texts: list[str] = [""] * len(dataset)
    with torch.inference_mode():
        for indices, rows in length_sorted_batches(dataset, batch_size,
                                                   ["input_ids", "attention_mask"], desc):
            batch = on_device(tokenizer.pad(rows, return_tensors="pt"), model)
            generated = model.generate(**batch, **settings)
            for index, text in zip(indices, tokenizer.batch_decode(
                    generated, skip_special_tokens=True), strict=True):
                texts[index] = text.strip()
    return texts


@dataclass
class TokenScores:
    """Per example of a split: summed cross-entropy over its scored tokens, their count, how
    many the model ranked first, and its top-1 guesses (one per scored token)."""

    loss_sums: np.ndarray
    counts: np.ndarray
    hits: np.ndarray
    guesses: list[list[int]]

    @property
    def mean_loss(self) -> float:
        return float(self.loss_sums.sum() / max(int(self.counts.sum()), 1))

    @property
    def accuracy(self) -> float:
        return float(self.hits.sum() / max(int(self.counts.sum()), 1))


def token_scores(model: PreTrainedModel, dataset: Dataset, collator: Any, batch_size: int,
                 desc: str = "score", causal: bool = False) -> TokenScores:
    """Cross-entropy of every labelled token (labels != -100), as the model's own loss counts
    it: position t predicts label t (masked LM, a seq2seq decoder), or label t + 1 for a
    `causal` model. Only the scored positions' logits are kept (15% of them for masked LM).
    Labels stay out of the forward pass (no full-vocabulary loss), so an encoder-decoder gets
    its decoder inputs shifted from them here."""
    for_inference(model)
    size = len(dataset)
    scores = TokenScores(np.zeros(size), np.zeros(size, dtype=np.int64),
                         np.zeros(size, dtype=np.int64), [[] for _ in range(size)])
    columns = [name for name in MODEL_INPUTS if name in dataset.column_names]
    with torch.inference_mode():
        for indices, rows in length_sorted_batches(dataset, batch_size, columns, desc):
            batch = on_device(collator(rows), model)
            labels = batch.pop("labels")
            if model.config.is_encoder_decoder and "decoder_input_ids" not in batch:
                batch["decoder_input_ids"] = model.prepare_decoder_input_ids_from_labels(labels=labels)
            logits = model(**batch).logits
            if causal:
                logits, labels = logits[:, :-1], labels[:, 1:]
            scored = labels != -100
            chosen, targets = logits[scored].float(), labels[scored]
            losses = torch.nn.functional.cross_entropy(chosen, targets, reduction="none").cpu()
            guesses = chosen.argmax(dim=-1).cpu()
            hits = (guesses == targets.cpu()).long()
            counts = scored.sum(dim=1).cpu()
            for row, (start, end) in enumerate(zip((counts.cumsum(0) - counts).tolist(),
                                                   counts.cumsum(0).tolist(), strict=True)):
                index = indices[row]
                scores.loss_sums[index] = float(losses[start:end].sum())
                scores.counts[index] = end - start
                scores.hits[index] = int(hits[start:end].sum())
                scores.guesses[index] = guesses[start:end].tolist()
    return scores
