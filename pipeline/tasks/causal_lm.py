"""Causal language modelling: adapt a decoder (SmolLM2, GPT-2, Llama) to a corpus, or
pre-train one from scratch (`pretraining.<name>.objective: causal_lm`).

Each text ends with the end-of-sequence token, so the model learns where documents stop.
Besides perplexity, the model continues the opening tokens of the first test documents
(`task.samples`, `task.prompt_tokens`, `task.generation`): the samples are the predictions
table. With `task.code_parse_rate` they are read as Python: `parse_rate` is the share of
samples that write a whole line and whose prompt + continuation, cut after its last complete
line, parses.
"""

from __future__ import annotations

import ast
import warnings
from itertools import chain
from typing import TYPE_CHECKING, Any

from pipeline.config import TaskConfig
from pipeline.errors import ConfigError, DataError
from pipeline.tasks.language_modeling import LanguageModeling

if TYPE_CHECKING:
    import pandas as pd
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from pipeline.bootstrap import ExampleStatistics
    from pipeline.evaluation import TokenScores

#: Tokens in each of the two sequences `check_model` compares (they differ in the last one).
PROBE_LENGTH = 8


def written_lines(prompt: str, continuation: str) -> str:
    """The whole lines a continuation writes: from the end of the line the prompt leaves open
    (if it leaves one) to the continuation's last newline; empty if it ends no line."""
    start = 0
    if prompt and not prompt.endswith("\n"):
        start = continuation.find("\n") + 1
        if not start:
            return ""
    return continuation[start:continuation.rfind("\n") + 1]


def parses_as_python(prompt: str, continuation: str) -> bool:
    """Whether prompt + continuation, cut after its last complete line, is valid Python, the
    continuation having written at least one whole line that is not blank: blank lines, or
    only the end of the prompt's line (a finished identifier), are not code."""
    if not written_lines(prompt, continuation).strip():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)  # e.g. invalid escapes in strings
        try:
            ast.parse(prompt + continuation[:continuation.rfind("\n") + 1])
        except (SyntaxError, ValueError, RecursionError):  # ValueError: a null byte
            return False
    return True


def document_openings(blocks: list[list[int]], end_id: int, prompt_length: int,
                      reference_length: int) -> list[tuple[list[int], list[int]]]:
    """(prompt, true continuation) from the start of every document longer than the prompt,
    in a split whose blocks hold its texts joined end to end, each ended by `end_id`. The
    continuation stops at the end of its document."""
    stream = list(chain.from_iterable(blocks))
    ends = [position for position, token in enumerate(stream) if token == end_id]
    openings, start = [], 0
    for end in [*ends, len(stream)]:
        document = stream[start:end]
        if len(document) > prompt_length:
            openings.append((document[:prompt_length],
                             document[prompt_length:prompt_length + reference_length]))
        start = end + 1
    return openings


def share(flags: list[bool]) -> float:
    return sum(flags) / len(flags)


class CausalLanguageModeling(LanguageModeling):
    model_class_name = "AutoModelForCausalLM"
    peft_task_type = "CAUSAL_LM"
    pipeline_tag = "text-generation"
    usage_input = '"The film was"'
    causal = True
    tokenizer_marks_texts = False  # a prompt must not end with the end-of-text token

    prediction_columns = ("prompt", "reference", "generated")

    def __init__(self, config: TaskConfig) -> None:
        super().__init__(config)
        if config.code_parse_rate:
            self.metric_names = (*self.metric_names, "parse_rate")
            self.prediction_columns = (*self.prediction_columns, "parses", "reference_parses")

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

    def check_model(self, model: PreTrainedModel, where: str) -> None:
        """The prediction for a token must not depend on the tokens after it. An encoder
        loaded as a causal LM (BERT or RoBERTa without is_decoder) sees them, and would score
        a perplexity near 1 by reading the answer."""
        import torch

        probe = torch.arange(1, PROBE_LENGTH + 1).remainder(model.config.vocab_size).repeat(2, 1)
        probe[1, -1] = (probe[1, -1] + 1) % model.config.vocab_size
        training = model.training
        model.eval()
        with torch.inference_mode():
            logits = model(input_ids=probe.to(model.device)).logits
        model.train(training)
        if not torch.allclose(logits[0, :-1], logits[1, :-1], atol=1e-5):
            raise ConfigError(f"{where}: {type(model).__name__} is not a decoder: its prediction "
                              "for a token changes with the tokens after it, so causal_lm would "
                              "score it on tokens it can see. Choose a decoder architecture "
                              "(model_type gpt2 or llama: conf/architecture/gpt2_mini.yaml, "
                              "llama_mini.yaml), or is_decoder: true for a BERT-like one.")

    def check_room(self, model: PreTrainedModel) -> None:
        """Prompt and continuation must fit the model's positions (GPT-2's are learnt: one
        more is an index error)."""
        positions = getattr(model.config, "max_position_embeddings", None)
        needed = self.config.prompt_tokens + self.config.generation.max_new_tokens
        if positions is not None and needed > positions:
            raise ConfigError(f"task.prompt_tokens + task.generation.max_new_tokens: "
                              f"{self.config.prompt_tokens} + "
                              f"{self.config.generation.max_new_tokens} tokens, but the model has "
                              f"{positions} positions; lower one of them")

    def evaluate(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, split: Dataset,
                 manifest: dict[str, Any], batch_size: int,
                 desc: str) -> tuple[dict[str, float], dict[str, Any], list[dict[str, Any]]]:
        """Perplexity, and with `code_parse_rate` the share of samples that parse as Python
        (`parse_rate`), beside that of the true continuations (the report's
        `reference_parse_rate`: what a perfect model would reach at the same cut)."""
        scalars, report, rows = super().evaluate(model, tokenizer, split, manifest, batch_size,
                                                 desc)
        if self.config.code_parse_rate:
            if not rows:
                raise DataError(f"task.code_parse_rate: no test document is longer than "
                                f"task.prompt_tokens ({self.config.prompt_tokens} tokens); "
                                "lower it")
            scalars["parse_rate"] = share([row["parses"] for row in rows])
            report["reference_parse_rate"] = share([row["reference_parses"] for row in rows])
            report["samples"] = len(rows)
        return scalars, report, rows

    def examples(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 split: Dataset, scores: TokenScores) -> list[dict[str, Any]]:
        """The model's continuation of the first `task.prompt_tokens` tokens of the first
        `task.samples` test documents that are longer, beside the true continuation."""
        import torch

        from pipeline.evaluation import on_device

        settings = self.config.generation.as_kwargs()
        openings = document_openings(split["input_ids"], tokenizer.eos_token_id,
                                     self.config.prompt_tokens,
                                     settings["max_new_tokens"])[:self.config.samples]
        if not openings:
            return []
        self.check_room(model)
        prompts = torch.tensor([prompt for prompt, _ in openings])
        model.eval()
        with torch.inference_mode():
            generated = model.generate(**on_device({"input_ids": prompts,
                                                    "attention_mask": torch.ones_like(prompts)},
                                                   model),
                                       pad_token_id=tokenizer.pad_token_id, **settings)
        new_tokens = generated[:, prompts.shape[1]:].cpu()
        rows = [{"prompt": tokenizer.decode(prompt, skip_special_tokens=True),
                 "reference": tokenizer.decode(reference, skip_special_tokens=True),
                 "generated": tokenizer.decode(tokens, skip_special_tokens=True)}
                for (prompt, reference), tokens in zip(openings, new_tokens, strict=True)]
        if self.config.code_parse_rate:
            for row in rows:
                row["parses"] = parses_as_python(row["prompt"], row["generated"])
                row["reference_parses"] = parses_as_python(row["prompt"], row["reference"])
        return rows

    def example_statistics(self, table: pd.DataFrame,
                           manifest: dict[str, Any]) -> dict[str, ExampleStatistics]:
        """Per sample, whether it parses: the parse rate's test-set interval. The samples table
        holds no per-block losses, so perplexity has none (its spread over seeds remains)."""
        from pipeline import example_statistics as statistics

        if "parses" not in table:
            return {}
        parses = table["parses"].astype(str).str.lower().eq("true").astype(float)
        return {"parse_rate": statistics.mean_score(parses.tolist())}

    def examples_markdown(self, table: pd.DataFrame) -> list[str]:
        """Code samples as code blocks, whitespace kept; other texts as a table."""
        if not self.config.code_parse_rate:
            return super().examples_markdown(table)
        lines = []
        for number, row in enumerate(table.itertuples(index=False), start=1):
            lines += [f"**Sample {number}** (parses: {row.parses}; the true continuation "
                      f"parses: {row.reference_parses})", ""]
            for title, text in (("Prompt", row.prompt), ("Generated", row.generated),
                                ("True continuation", row.reference)):
                lines += [f"{title}:", "", "```python", str(text), "```", ""]
        return lines

    def format_prediction(self, result: dict[str, Any]) -> str:
        """The input and its continuation as one text (code keeps its layout), then a blank
        line."""
        return f"{result['input']}{result['output']}\n"

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
