"""Seq2seq training, BERT2BERT (minilm2minilm) on Multi30k English -> French
(experiment=multi30k_en_fr): the pipeline's fine-tuning against the example recipe and a raw
PyTorch loop, in one run on one machine, plus the fp32 matrix-multiply ceiling.

- pipeline: this project's stages, run by `dvc repro` in a throw-away project;
- example: our re-implementation of the defaults of transformers' translation example
  (run_translation.py) for training: sources up to 1,024 tokens, targets up to 128,
  DataCollatorForSeq2Seq (given the model, so it builds the decoder inputs) padding per batch,
  Seq2SeqTrainer, random batches, no evaluation during training, the model saved at the end;
- raw: a minimal PyTorch loop over the pipeline's tokenization and collator, random batches,
  AdamW and the same schedule: the floor.

The test score of every variant is the pipeline's own: the task adapter's `evaluate` on the
test split as the tokenize stage writes it (beam search with the experiment's generation
settings, sacreBLEU), so the variants differ only in how they trained. "real tokens" are the
source tokens; with targets of about the same length, 6 x all non-embedding parameters x source
tokens is close to the cost of a step (each half of the network sees one side).

Every variant reads the project's params.yaml: the same rows, model, seed and optimisation
settings. Run by `python benchmarks/run.py seq2seq_training [options]`; the driver is
text_classification.main.
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.generation import (
    EXAMPLE_MAX_SOURCE_LENGTH,
    EXAMPLE_MAX_TARGET_LENGTH,
    example_encoding,
)
from benchmarks.report import EXAMPLE, PIPELINE, RAW, Measurement
from benchmarks.text_classification import Benchmark
from benchmarks.text_classification import main as run_benchmark
from benchmarks.variants import (
    Runner,
    adapter_tokenized,
    apply_threads,
    device,
    example_arguments,
    non_embedding_params,
    only_model,
    peak_rss_bytes,
    rows_digest,
    run_pipeline,
    starting_point,
    train_as_the_example,
    train_loop,
)
from pipeline.config import Params
from pipeline.tasks import TaskAdapter
from pipeline.tasks.seq2seq import REFERENCE

METRIC = "bleu"
BENCHMARK = Benchmark("seq2seq_training", "multi30k_en_fr", METRIC,
                      f"example sources up to {EXAMPLE_MAX_SOURCE_LENGTH} tokens and targets up to "
                      f"{EXAMPLE_MAX_TARGET_LENGTH}, padded per batch", __doc__,
                      model="minilm2minilm")


def runners() -> dict[str, Runner]:
    return {PIPELINE: lambda params, args: run_pipeline(args.project, params, args.threads,
                                                        METRIC).to_json(),
            EXAMPLE: lambda params, args: run_example(params, args.launched_at).to_json(),
            RAW: lambda params, args: run_raw(params, args.launched_at).to_json()}


def scores_on_test(task: TaskAdapter, model: Any, tokenizer: Any, test: pd.DataFrame,
                   max_length: int, batch_size: int) -> dict[str, float]:
    """The adapter's `evaluate` on the test rows as the tokenize stage writes them, as
    final_eval calls it: BLEU, chrF and the test loss."""
    encoded = adapter_tokenized(task, test, tokenizer, max_length, [], training=False)
    scalars, _, _ = task.evaluate(model.eval(), tokenizer, encoded, {"labels": []}, batch_size,
                                  "test")
    return scalars


def measured(variant: str, train_samples: int, train_seconds: float, launched_at: float,
             scores: dict[str, float], model: Any, tokens: int, splits: dict[str, pd.DataFrame],
             extra: dict[str, Any]) -> Measurement:
    return Measurement(
        variant=variant, train_samples=train_samples, train_seconds=train_seconds,
        wall_seconds=time.time() - launched_at, test_score=scores[METRIC], metric=METRIC,
        peak_rss_bytes=peak_rss_bytes(resource.RUSAGE_SELF), real_tokens=tokens,
        non_embedding_params=non_embedding_params(model), threads=apply_threads(None),
        extra={"rows": rows_digest(splits), "chrf": scores["chrf"], "loss": scores["loss"],
               **extra})


# --- (b) the example script's recipe --------------------------------------------------------------

def run_example(params: Params, launched_at: float) -> Measurement:
    """run_translation.py's training defaults: long limits, per-batch padding, Seq2SeqTrainer."""
    from datasets import Dataset
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer

    task, _, model_cfg, tokenizer, model, splits = starting_point(params)
    cfg = model_cfg.training(params.train)
    train = Dataset.from_dict(example_encoding(task, tokenizer, splits["train"]))
    seed = only_model(params)[1]
    with tempfile.TemporaryDirectory(prefix="example-recipe-") as output:
        trainer = Seq2SeqTrainer(
            model=model, args=example_arguments(cfg, Path(output), seed, seq2seq=True),
            train_dataset=train, processing_class=tokenizer,
            data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100))
        result, train_seconds = train_as_the_example(trainer)
    epochs = result.metrics.get("epoch", cfg.epochs)
    return measured(EXAMPLE, round(len(train) * epochs), train_seconds, launched_at,
                    scores_on_test(task, model, tokenizer, splits["test"], model_cfg.max_length,
                                   cfg.eval_batch_size), model,
                    round(sum(map(sum, train["attention_mask"])) * epochs), splits,
                    {"steps": result.global_step, "max_length": EXAMPLE_MAX_SOURCE_LENGTH})


# --- (c) the raw PyTorch loop ---------------------------------------------------------------------

def run_raw(params: Params, launched_at: float) -> Measurement:
    """The pipeline's tokenization and collator, random batches, AdamW, the same schedule;
    no evaluation during training."""
    task, _, model_cfg, tokenizer, model, splits = starting_point(params)
    cfg = model_cfg.training(params.train)
    if cfg.gradient_accumulation_steps != 1:
        raise ValueError("the raw loop has no gradient accumulation; set it to 1")
    train = adapter_tokenized(task, splits["train"], tokenizer, model_cfg.max_length, [],
                              training=False)
    rows = list(train.remove_columns(REFERENCE))
    model = model.to(device())
    started = time.perf_counter()
    samples, tokens = train_loop(model, rows, task.collator(tokenizer), cfg,
                                 only_model(params)[1])
    train_seconds = time.perf_counter() - started
    return measured(RAW, samples, train_seconds, launched_at,
                    scores_on_test(task, model, tokenizer, splits["test"], model_cfg.max_length,
                                   cfg.eval_batch_size), model, tokens,
                    splits, {"max_length": model_cfg.max_length})


def main(argv: list[str] | None = None) -> None:
    run_benchmark(argv, BENCHMARK)
