"""Causal language modelling: adapt a decoder (SmolLM2, GPT-2, Llama) to a corpus.

Each text ends with the end-of-sequence token, so the model learns where documents stop.
Besides perplexity, the model continues the opening tokens of a few test blocks
(`task.samples`, `task.prompt_tokens`, `task.generation`): the samples are the
predictions table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.errors import DataError
from pipeline.tasks.language_modeling import LanguageModeling

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from pipeline.evaluation import TokenScores


class CausalLanguageModeling(LanguageModeling):
    model_class_name = "AutoModelForCausalLM"
    peft_task_type = "CAUSAL_LM"
    pipeline_tag = "text-generation"
    usage_input = '"The film was"'
    causal = True

    prediction_columns = ("prompt", "reference", "generated")

    def encode_texts(self, texts: list[str],
                     tokenizer: PreTrainedTokenizerBase) -> dict[str, list[list[Any]]]:
        if tokenizer.eos_token_id is None:
            raise DataError(f"causal_lm: the tokenizer {type(tokenizer).__name__} has no "
                            "end-of-sequence token to separate texts")
        if tokenizer.pad_token is None:  # GPT-2 style: pads only ever sit under label -100
            tokenizer.pad_token = tokenizer.eos_token
        ids = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
        ids = [[*text, tokenizer.eos_token_id] for text in ids]
        return {"input_ids": ids, "attention_mask": [[1] * len(text) for text in ids]}

    def add_labels(self, split: Dataset, tokenizer: PreTrainedTokenizerBase,
                   training: bool) -> Dataset:
        """Every token is a label: the model shifts them itself."""
        return split.map(lambda batch: {"labels": batch["input_ids"]}, batched=True,
                         desc="labels")

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        from transformers import DataCollatorForSeq2Seq

        return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)

    def examples(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 split: Dataset, scores: TokenScores) -> list[dict[str, Any]]:
        """The model's continuation of the first `task.prompt_tokens` tokens of the first
        `task.samples` test blocks that are long enough, beside the true continuation."""
        import torch

        from pipeline.evaluation import on_device

        prompt_length = self.config.prompt_tokens
        ids = [block for block in split["input_ids"] if len(block) > prompt_length]
        ids = ids[:self.config.samples]
        if not ids:
            return []
        prompts = torch.tensor([block[:prompt_length] for block in ids])
        settings = self.config.generation.as_kwargs()
        model.eval()
        with torch.inference_mode():
            generated = model.generate(**on_device({"input_ids": prompts,
                                                    "attention_mask": torch.ones_like(prompts)},
                                                   model),
                                       pad_token_id=tokenizer.pad_token_id, **settings)
        new_tokens = generated[:, prompt_length:].cpu()
        reference_length = settings["max_new_tokens"]
        return [{"prompt": tokenizer.decode(block[:prompt_length], skip_special_tokens=True),
                 "reference": tokenizer.decode(block[prompt_length:prompt_length + reference_length],
                                               skip_special_tokens=True),
                 "generated": tokenizer.decode(tokens, skip_special_tokens=True)}
                for block, tokens in zip(ids, new_tokens, strict=True)]

    def format_prediction(self, result: dict[str, Any]) -> str:
        return f"{result['input']}\n  ... {result['output']}"

    def predict(self, inputs: list[str], model: PreTrainedModel,
                tokenizer: PreTrainedTokenizerBase) -> list[dict[str, Any]]:
        """Each input continued by the model (one at a time: prompts differ in length)."""
        import torch

        settings = self.config.generation.as_kwargs()
        results = []
        with torch.inference_mode():
            for text in inputs:
                encoded = tokenizer(text, return_tensors="pt", add_special_tokens=False)
                generated = model.generate(**encoded, pad_token_id=tokenizer.pad_token_id,
                                           **settings)
                continuation = generated[0, encoded["input_ids"].shape[1]:]
                results.append({"input": text,
                                "output": tokenizer.decode(continuation, skip_special_tokens=True)})
        return results
