"""Token classification, MiniLM on CoNLL-2003 (experiment=conll2003): the pipeline against the
example recipe and a raw PyTorch loop, in one run on one machine, plus the fp32 matrix-multiply
ceiling. The test score of every variant is the pipeline's seqeval entity F1 (first subword of
each word, IOB2), computed by the task adapter's own `metrics`.

- pipeline: this project's stages, run by `dvc repro` in a throw-away project;
- example: our re-implementation of the defaults of transformers' token-classification example
  (run_ner.py): pad_to_max_length False, so DataCollatorForTokenClassification pads per batch;
  max_seq_length None, so the tokenizer's own limit (512 for MiniLM); label_all_tokens False
  (later subwords ignored); Trainer, random batches, prediction on the test split at batch 8;
  the model saved at the end;
- raw: a minimal PyTorch loop over the pipeline's tokenization (max length 128), dynamic
  padding, AdamW and the same schedule: the floor.

Every variant reads the project's params.yaml: the same rows, model, seed and optimisation
settings. Run by `python benchmarks/run.py token_classification [options]`; the driver is
text_classification.main.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

from benchmarks.report import EXAMPLE, PIPELINE, RAW, Measurement
from benchmarks.text_classification import Benchmark
from benchmarks.text_classification import main as run_benchmark
from benchmarks.variants import (
    Runner,
    adapter_tokenized,
    apply_threads,
    device,
    example_arguments,
    load_rows,
    non_embedding_params,
    only_model,
    peak_rss_bytes,
    predict_rows,
    rows_digest,
    run_pipeline,
    train_as_the_example,
    train_loop,
)
from pipeline.config import Params
from pipeline.tasks import TaskAdapter, get_task

METRIC = "f1"
BENCHMARK = Benchmark("token_classification", "conll2003", METRIC,
                      "example up to the tokenizer's limit (512), padded per batch", __doc__)


def runners() -> dict[str, Runner]:
    return {PIPELINE: lambda params, args: run_pipeline(args.project, params, args.threads,
                                                        METRIC).to_json(),
            EXAMPLE: lambda params, args: run_example(params, args.launched_at).to_json(),
            RAW: lambda params, args: run_raw(params, args.launched_at).to_json()}


def f1(task: TaskAdapter, logits: Any, labels: Any, names: list[str]) -> float:
    """seqeval entity F1, as the pipeline's final_eval computes it."""
    return task.metrics(logits, labels, {"labels": names})[0][METRIC]


# --- (b) the example script's recipe --------------------------------------------------------------

def run_example(params: Params, launched_at: float) -> Measurement:
    """run_ner.py's defaults: per-batch padding, first-subword labels, Trainer, predict, save."""
    import tempfile

    from transformers import DataCollatorForTokenClassification, Trainer

    from pipeline.model_files import load_tokenizer
    from pipeline.modeling import build_model

    task = get_task(params.task)
    model_name, seed = only_model(params)
    model_cfg, cfg = params.model(model_name), params.model(model_name).training(params.train)
    splits, labels = load_rows(params, task)
    tokenizer = load_tokenizer(model_cfg, f"models.{model_name}")
    limit = tokenizer.model_max_length
    # training=False: later subwords are ignored (-100) whatever task.label_all_subwords says,
    # as run_ner.py does with label_all_tokens False.
    train, test = (adapter_tokenized(task, splits[split], tokenizer, limit, labels, training=False)
                   for split in ("train", "test"))
    model = build_model(task, model_cfg, {"labels": labels}, tokenizer, seed,
                        f"models.{model_name}")
    with tempfile.TemporaryDirectory(prefix="example-recipe-") as output:
        trainer = Trainer(model=model, args=example_arguments(cfg, Path(output), seed),
                          train_dataset=train, processing_class=tokenizer,
                          data_collator=DataCollatorForTokenClassification(tokenizer))
        result, train_seconds = train_as_the_example(trainer)
        predicted = trainer.predict(test)
    epochs = result.metrics.get("epoch", cfg.epochs)
    return Measurement(
        variant=EXAMPLE, train_samples=round(len(train) * epochs), train_seconds=train_seconds,
        wall_seconds=time.time() - launched_at,
        test_score=f1(task, predicted.predictions, predicted.label_ids, labels), metric=METRIC,
        peak_rss_bytes=peak_rss_bytes(resource.RUSAGE_SELF),
        real_tokens=round(sum(map(sum, train["attention_mask"])) * epochs),
        non_embedding_params=non_embedding_params(model), threads=apply_threads(None),
        extra={"rows": rows_digest(splits), "steps": result.global_step, "max_length": limit})


# --- (c) the raw PyTorch loop ---------------------------------------------------------------------

def run_raw(params: Params, launched_at: float) -> Measurement:
    """The pipeline's tokenization, dynamic padding, random batches, AdamW, the same schedule;
    no evaluation during training."""
    from transformers import DataCollatorForTokenClassification

    from pipeline.model_files import load_tokenizer
    from pipeline.modeling import build_model

    task = get_task(params.task)
    model_name, seed = only_model(params)
    model_cfg, cfg = params.model(model_name), params.model(model_name).training(params.train)
    if cfg.gradient_accumulation_steps != 1:
        raise ValueError("the raw loop has no gradient accumulation; set it to 1")
    splits, labels = load_rows(params, task)
    tokenizer = load_tokenizer(model_cfg, f"models.{model_name}")
    train, test = (list(adapter_tokenized(task, splits[split], tokenizer, model_cfg.max_length,
                                          labels, training=split == "train"))
                   for split in ("train", "test"))
    model = build_model(task, model_cfg, {"labels": labels}, tokenizer, seed,
                        f"models.{model_name}").to(device())
    collator = DataCollatorForTokenClassification(tokenizer)
    started = time.perf_counter()
    samples, tokens = train_loop(model, train, collator, cfg, seed)
    train_seconds = time.perf_counter() - started
    logits = predict_rows(model, test, collator, cfg.eval_batch_size)
    return Measurement(
        variant=RAW, train_samples=samples, train_seconds=train_seconds,
        wall_seconds=time.time() - launched_at,
        test_score=f1(task, logits, [row["labels"] for row in test], labels), metric=METRIC,
        peak_rss_bytes=peak_rss_bytes(resource.RUSAGE_SELF), real_tokens=tokens,
        non_embedding_params=non_embedding_params(model), threads=apply_threads(None),
        extra={"rows": rows_digest(splits), "max_length": model_cfg.max_length})


def main(argv: list[str] | None = None) -> None:
    run_benchmark(argv, BENCHMARK)
