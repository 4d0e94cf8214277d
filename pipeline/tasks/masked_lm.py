"""Masked language modelling: adapt an encoder to a domain's texts, or pre-train one from
scratch (with `pretraining` and the `pretrain` stage).

Training blocks are masked afresh in every batch; validation and test blocks are masked
once, with `task.masking.evaluation_seed`, so perplexity before and after training is
measured on the same tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.config import MaskingSettings
from pipeline.errors import DataError
from pipeline.tasks.language_modeling import LanguageModeling

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from pipeline.evaluation import TokenScores


class MaskingCollator:
    """Pads a batch; blocks without `labels` (training) are masked here, at random, while
    blocks that carry them were masked once at tokenization and are only padded."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, masking: MaskingSettings,
                 seed: int | None = None) -> None:
        from transformers import DataCollatorForLanguageModeling, DataCollatorForSeq2Seq

        self.pad = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)
        self.mask = DataCollatorForLanguageModeling(
            tokenizer, mlm_probability=masking.probability, whole_word_mask=masking.whole_word,
            mask_replace_prob=1.0 if masking.whole_word else 0.8,
            random_replace_prob=0.0 if masking.whole_word else 0.1, seed=seed)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return self.pad(rows) if "labels" in rows[0] else self.mask(rows)


class MaskedLanguageModeling(LanguageModeling):
    model_class_name = "AutoModelForMaskedLM"
    pipeline_tag = "fill-mask"
    usage_input = 'f"The film was {model.tokenizer.mask_token}."'
    causal = False
    #: The collator reads special-token masks and offsets, which Trainer would otherwise drop.
    collator_reads_extra_columns = True

    prediction_columns = ("masked_text", "reference", "prediction", "scored_tokens", "loss",
                          "loss_sum", "hits")

    def encode_texts(self, texts: list[str],
                     tokenizer: PreTrainedTokenizerBase) -> dict[str, list[list[Any]]]:
        if tokenizer.mask_token is None:
            raise DataError(f"masked_lm: the tokenizer {type(tokenizer).__name__} has no mask "
                            "token; choose a masked-LM model (BERT, RoBERTa, DistilBERT)")
        if self.config.masking.whole_word and not tokenizer.is_fast:
            raise DataError("task.masking.whole_word: needs a fast tokenizer (word boundaries "
                            f"come from its offsets); {type(tokenizer).__name__} is not one")
        encoded = tokenizer(texts, return_special_tokens_mask=True, verbose=False,
                            return_offsets_mapping=self.config.masking.whole_word)
        encoded.pop("token_type_ids", None)  # meaningless once texts are joined into blocks
        return dict(encoded)

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        return MaskingCollator(tokenizer, self.config.masking)

    def add_labels(self, split: Dataset, tokenizer: PreTrainedTokenizerBase,
                   training: bool) -> Dataset:
        from datasets import Dataset

        if training:  # masked afresh in every batch
            return split
        collator = MaskingCollator(tokenizer, self.config.masking,
                                   seed=self.config.masking.evaluation_seed)
        columns: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": [], "labels": []}
        for row in split:  # one block at a time: masked blocks keep their own length
            masked = collator.mask([row])
            for key in columns:
                columns[key].append(masked[key][0].tolist())
        return Dataset.from_dict(columns)

    def examples(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 split: Dataset, scores: TokenScores) -> list[dict[str, Any]]:
        """Per test block: its masked text, the hidden tokens and the model's guesses."""
        rows = []
        for index, block in enumerate(split):
            hidden = [label for label in block["labels"] if label != -100]
            rows.append({
                "masked_text": tokenizer.decode(block["input_ids"], skip_special_tokens=False),
                "reference": " ".join(tokenizer.convert_ids_to_tokens(hidden)),
                "prediction": " ".join(tokenizer.convert_ids_to_tokens(scores.guesses[index])),
                "scored_tokens": int(scores.counts[index]),
                "loss": round(float(scores.loss_sums[index] / max(scores.counts[index], 1)), 4),
                "loss_sum": float(scores.loss_sums[index]),
                "hits": int(scores.hits[index]),
            })
        return rows

    def format_prediction(self, result: dict[str, Any]) -> str:
        return f"{result['input']}\n  -> {result['output']}"

    def predict(self, inputs: list[str], model: PreTrainedModel,
                tokenizer: PreTrainedTokenizerBase) -> list[dict[str, Any]]:
        """Each mask token of each input replaced by the model's first choice."""
        import torch

        encoded = tokenizer(inputs, padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():  # ids and mask only: DistilBERT takes no token types
            guesses = model(input_ids=encoded["input_ids"],
                            attention_mask=encoded["attention_mask"]).logits.argmax(dim=-1)
        masked = encoded["input_ids"] == tokenizer.mask_token_id
        filled = torch.where(masked, guesses, encoded["input_ids"])
        return [{"input": text, "output": tokenizer.decode(ids, skip_special_tokens=True)}
                for text, ids in zip(inputs, filled, strict=True)]
