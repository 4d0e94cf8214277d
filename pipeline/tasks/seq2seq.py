"""What translation and summarization share: source -> target text, generated at evaluation.

Training minimises the target tokens' cross-entropy (teacher forcing) and keeps the
checkpoint with the lowest validation loss: generating on every evaluation would
cost more than the training on a CPU. The test split is scored by generation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.config import DatasetConfig
from pipeline.data import column
from pipeline.errors import DataError
from pipeline.tasks.base import TaskAdapter, without_blank

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

SOURCE, TARGET, REFERENCE = "source", "target", "reference"


def mean_words(texts: list[str]) -> float:
    return float(np.mean([len(text.split()) for text in texts])) if texts else 0.0


class Seq2SeqTask(TaskAdapter):
    model_class_name = "AutoModelForSeq2SeqLM"
    peft_task_type = "SEQ_2_SEQ_LM"
    lower_is_better = ("loss",)
    validation_metric_names = ("loss",)

    def prepare(self, frame: pd.DataFrame, cfg: DatasetConfig, where: str) -> pd.DataFrame:
        if len(cfg.text_columns) != 1:
            raise DataError(f"dataset.text_columns: {self.config.name} reads one source column, "
                            f"got {cfg.text_columns}")
        canonical = pd.DataFrame({
            SOURCE: column(frame, cfg.text_columns[0], where).astype("string").str.strip(),
            TARGET: column(frame, cfg.label_column, where).astype("string").str.strip(),
        })
        blank = canonical[SOURCE].fillna("").eq("") | canonical[TARGET].fillna("").eq("")
        return without_blank(canonical, blank, where, "an empty source or target")

    def describe(self, splits: dict[str, pd.DataFrame]) -> dict[str, Any]:
        lengths = {split: {"rows": len(frame),
                           "source_words_mean": round(mean_words(list(frame[SOURCE])), 2),
                           "target_words_mean": round(mean_words(list(frame[TARGET])), 2)}
                   for split, frame in splits.items()}
        return {"labels": [], "label_counts": {}, "lengths": lengths}

    def head_config(self, manifest: dict[str, Any]) -> dict[str, Any]:
        return {}

    def texts(self, frame: pd.DataFrame) -> Iterator[str]:
        yield from frame[SOURCE]
        yield from frame[TARGET]

    def inputs(self, frame: pd.DataFrame) -> pd.Series:
        return frame[SOURCE].str.split().str.join(" ")

    def prefixed(self, sources: list[str]) -> list[str]:
        return [self.config.source_prefix + text for text in sources]

    def tokenize(self, split: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int,
                 manifest: dict[str, Any], training: bool) -> Dataset:
        def encode(batch: dict[str, list]) -> dict[str, list]:
            encoded = tokenizer(self.prefixed(batch[SOURCE]), truncation=True,
                                max_length=max_length)
            encoded["labels"] = tokenizer(text_target=batch[TARGET], truncation=True,
                                          max_length=self.config.max_target_length)["input_ids"]
            encoded[REFERENCE] = batch[TARGET]  # scored as written, not as re-tokenized
            return encoded

        return split.map(encode, batched=True, remove_columns=split.column_names,
                         desc="tokenize")

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        from transformers import DataCollatorForSeq2Seq

        return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)

    def evaluate(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, split: Dataset,
                 manifest: dict[str, Any], batch_size: int,
                 desc: str) -> tuple[dict[str, float], dict[str, Any], list[str]]:
        """Scores of the generated texts against the references as written, and the
        teacher-forced loss per target token."""
        from pipeline.evaluation import generate_texts, token_scores

        hypotheses = generate_texts(model, tokenizer, split, batch_size,
                                    self.config.generation.as_kwargs(), desc)
        scalars, report = self.metrics(hypotheses, split[REFERENCE], manifest)
        scalars["loss"] = token_scores(model, split, self.collator(tokenizer), batch_size,
                                       f"{desc} (loss)").mean_loss
        report["examples"] = [{"reference": reference, "hypothesis": hypothesis}
                              for reference, hypothesis in zip(split[REFERENCE][:5],
                                                               hypotheses[:5], strict=True)]
        return scalars, report, hypotheses

    def validation_metrics(self, manifest: dict[str, Any]) -> None:
        return None

    def prediction_table(self, raw: pd.DataFrame, outputs: list[str],
                         manifest: dict[str, Any], labels: Any) -> pd.DataFrame:
        return pd.DataFrame({"source": raw[SOURCE], "reference": raw[TARGET],
                             "hypothesis": outputs})

    @staticmethod
    def texts_of(table: pd.DataFrame) -> tuple[list[str], list[str]]:
        """Hypotheses and references of a predictions table read back from CSV."""
        return table["hypothesis"].astype(str).tolist(), table["reference"].astype(str).tolist()

    def format_prediction(self, result: dict[str, Any]) -> str:
        return f"{result['input']}\n  -> {result['output']}"

    def usage(self, location: str) -> str:
        """transformers 5 has no translation or summarization pipeline: generate directly,
        with the settings the test split was scored with."""
        settings = ", ".join(f"{key}={value!r}"
                             for key, value in self.config.generation.as_kwargs().items())
        return ("from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n\n"
                f'tokenizer = AutoTokenizer.from_pretrained("{location}")\n'
                f'model = AutoModelForSeq2SeqLM.from_pretrained("{location}")\n'
                f'inputs = tokenizer({self.config.source_prefix + "Your text here."!r}, '
                'return_tensors="pt")\n'
                f"outputs = model.generate(**inputs, {settings})\n"
                "print(tokenizer.decode(outputs[0], skip_special_tokens=True))")

    def predict(self, inputs: list[str], model: PreTrainedModel,
                tokenizer: PreTrainedTokenizerBase) -> list[dict[str, Any]]:
        from datasets import Dataset

        from pipeline.evaluation import generate_texts

        encoded = Dataset.from_dict(dict(tokenizer(self.prefixed(inputs), truncation=True)))
        outputs = generate_texts(model, tokenizer, encoded, len(inputs),
                                 self.config.generation.as_kwargs(), "predict")
        return [{"input": text, "output": output}
                for text, output in zip(inputs, outputs, strict=True)]

