"""The three ways of fine-tuning MiniLM on Rotten Tomatoes that the benchmark compares, and the
matrix-multiply ceiling. Each runs alone in a fresh process (`python -m benchmarks.variants
<variant> --benchmark <benchmark> ...`), so that its peak memory, imports and thread pool are
its own. The other benchmarks' variants (benchmarks/token_classification.py,
benchmarks/generation.py) run through the same entry and share the helpers here.

- pipeline: this project's stages, run by `dvc repro` in a throw-away project;
- example: our re-implementation of the defaults of transformers' text-classification example
  (run_glue.py): every example padded to 128 tokens, default_data_collator, Trainer, random
  batches, evaluation batch 8, the model saved at the end;
- raw: a minimal PyTorch loop with dynamic padding (DataCollatorWithPadding), AdamW and the
  same schedule: the floor that the pipeline's overhead is measured against.

Every variant reads the project's params.yaml: the same rows, model, seed and optimisation
settings (learning rate, epochs, batch size, weight decay, warm-up, schedule, clipping).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.project import environment, run, stage_label, stage_seconds
from benchmarks.report import EXAMPLE, PIPELINE, RAW, Measurement, matmul_flops, warmup_steps
from benchmarks.tracking_cost import replay
from pipeline.config import Params, TrainConfig, cell_name, load_params
from pipeline.data import make_splits, read_source
from pipeline.tasks import TaskAdapter, get_task
from pipeline.tasks.text_classification import LABEL, PAIR, TEXT

EXAMPLE_MAX_LENGTH = 128  # run_glue.py's max_seq_length, with pad_to_max_length=True
EXAMPLE_EVAL_BATCH = 8  # TrainingArguments' per_device_eval_batch_size default
MATMUL_VARIANT = "matmul"
TEXT_CLASSIFICATION = "text_classification"
#: A variant's run in its child process: (the project's params, the child's arguments) -> JSON.
Runner = Callable[[Params, argparse.Namespace], dict[str, Any]]


def peak_rss_bytes(who: int) -> int:
    """Peak resident memory of this process (RUSAGE_SELF) or of its largest finished
    descendant (RUSAGE_CHILDREN). Linux reports KiB, macOS bytes."""
    peak = resource.getrusage(who).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def apply_threads(threads: int | None) -> int:
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def device() -> Any:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def non_embedding_params(model: Any) -> int:
    """Parameters outside embedding tables: those that cost FLOPs per token."""
    import torch

    embedded = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding)
                for p in m.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in embedded)


def cell_text(value: Any) -> str:
    """A table cell as text, lists (tokens, tags) the same whether they came from pandas
    (Python lists) or back from parquet (numpy arrays)."""
    if isinstance(value, list | tuple | np.ndarray):
        return "\x1e".join(map(str, value))
    return str(value)


def rows_digest(splits: dict[str, pd.DataFrame]) -> str:
    """A fingerprint of every column of every split (texts and labels, tokens and tags,
    sources and targets), to show all variants saw the same rows in the same order."""
    digest = hashlib.sha256()
    for split in sorted(splits):
        frame = splits[split]
        for column in sorted(frame.columns):
            digest.update("\x1f".join(map(cell_text, frame[column])).encode())
    return digest.hexdigest()[:16]


def load_rows(params: Params, task: TaskAdapter) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The splits exactly as the download stage cuts them, and the label names."""
    frames, _ = read_source(params.dataset)
    prepared = {split: task.prepare(frame, params.dataset, f"benchmark, {split} data")
                for split, frame in frames.items()}
    splits = make_splits(prepared, params.dataset, task.strata_column, task.group_column)
    return splits, task.describe(splits)["labels"]


def only_model(params: Params) -> tuple[str, int]:
    (model,), (seed,) = list(params.models), params.seeds
    return model, seed


def starting_point(params: Params) -> tuple[TaskAdapter, str, Any, Any, Any,
                                            dict[str, pd.DataFrame]]:
    """The task, the model's name and config, its tokenizer and network (as the train and
    baseline_eval stages build it, seeded head included) and the rows."""
    from pipeline.model_files import load_tokenizer
    from pipeline.modeling import build_model

    task = get_task(params.task)
    model_name, seed = only_model(params)
    model_cfg = params.model(model_name)
    splits, labels = load_rows(params, task)
    tokenizer = load_tokenizer(model_cfg, f"models.{model_name}")
    model = build_model(task, model_cfg, {"labels": labels}, tokenizer, seed,
                        f"models.{model_name}")
    return task, model_name, model_cfg, tokenizer, model, splits


def adapter_tokenized(task: TaskAdapter, frame: pd.DataFrame, tokenizer: Any, max_length: int,
                      labels: list[str], training: bool) -> Any:
    """A split as the tokenize stage writes it, by the task adapter's own `tokenize`."""
    from datasets import Dataset

    return task.tokenize(Dataset.from_pandas(frame, preserve_index=False), tokenizer,
                         max_length, {"labels": labels}, training=training)


def text_pairs(frame: pd.DataFrame) -> tuple[list[str], list[str] | None]:
    pairs = list(frame[PAIR]) if PAIR in frame else None
    return list(frame[TEXT]), pairs


def label_ids(frame: pd.DataFrame, labels: list[str]) -> list[int]:
    index = {label: i for i, label in enumerate(labels)}
    return [index[label] for label in frame[LABEL]]


# --- (a) the pipeline ---------------------------------------------------------------------------

def run_pipeline(project: Path, params: Params, threads: int | None, metric: str) -> Measurement:
    """`dvc repro` of the whole DAG, then a second, no-op `dvc repro`; figures from its outputs
    (`metric`: the final_eval figure reported as the test score)."""
    from datasets import load_from_disk

    from pipeline.io import read_json
    from pipeline.paths import (
        final_metrics_file,
        fine_tuned_model_dir,
        raw_dir,
        tokenized_dir,
        train_metrics_file,
        train_output_dir,
    )

    env = environment(threads)
    started = time.perf_counter()
    run(["dvc", "repro"], project, env)
    wall = time.perf_counter() - started
    peak = peak_rss_bytes(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    run(["dvc", "repro"], project, env)
    noop = time.perf_counter() - started
    model, seed = only_model(params)
    mlflow = replay(project, model, seed)
    cell = cell_name(model, seed)
    stages = {stage_label(entry["command"]): entry["seconds"] for entry in stage_seconds(project)}
    trained = read_json(project / train_metrics_file(cell))
    final = read_json(project / final_metrics_file(cell))
    for record in (trained, final):
        if record["status"] != "success":
            raise RuntimeError(f"pipeline cell {cell} failed: {record.get('error')}")
    train = load_from_disk(str(project / tokenized_dir(model) / "splits"))["train"]
    epochs = trained["epochs"]
    splits = {split: pd.read_parquet(project / raw_dir(params.dataset.name) / f"{split}.parquet")
              for split in ("train", "validation", "test")}
    network = get_task(params.task).model_class.from_pretrained(project / fine_tuned_model_dir(cell))
    curves = read_json(project / train_output_dir(cell) / "curves.json")
    return Measurement(
        variant=PIPELINE, train_samples=round(len(train) * epochs),
        train_seconds=trained["train_seconds"], wall_seconds=wall,
        test_score=final[metric], metric=metric, peak_rss_bytes=peak,
        real_tokens=round(sum(len(ids) for ids in train["input_ids"]) * epochs),
        non_embedding_params=non_embedding_params(network), threads=apply_threads(None),
        extra={"noop_repro_seconds": round(noop, 2), "rows": rows_digest(splits),
               "trainer_samples_per_second": trained["train_samples_per_second"],
               "steps": trained["steps"], "max_length": params.model(model).max_length,
               "stage_seconds": stages,
               "dvc_seconds": round(wall - sum(stages.values()), 2), "mlflow": mlflow},
        validation_seconds=sum(entry["eval_runtime"] for entry in curves
                               if "eval_runtime" in entry))


# --- (b) the example script's recipe --------------------------------------------------------------

def run_example(params: Params, launched_at: float) -> Measurement:
    """run_glue.py's defaults: pad to 128, default_data_collator, Trainer, evaluate, save."""
    import tempfile

    from datasets import Dataset
    from transformers import Trainer, default_data_collator

    from pipeline.model_files import load_tokenizer
    from pipeline.modeling import build_model

    task = get_task(params.task)
    model_name, seed = only_model(params)
    model_cfg, cfg = params.model(model_name), params.model(model_name).training(params.train)
    splits, labels = load_rows(params, task)
    tokenizer = load_tokenizer(model_cfg, f"models.{model_name}")

    def encode(frame: pd.DataFrame) -> Dataset:
        texts, pairs = text_pairs(frame)
        encoded = tokenizer(texts, pairs, padding="max_length", max_length=EXAMPLE_MAX_LENGTH,
                            truncation=True)
        return Dataset.from_dict({**encoded, "label": label_ids(frame, labels)})

    train, test = encode(splits["train"]), encode(splits["test"])
    model = build_model(task, model_cfg, {"labels": labels}, tokenizer, seed,
                        f"models.{model_name}")
    with tempfile.TemporaryDirectory(prefix="example-recipe-") as output:
        trainer = Trainer(model=model, args=example_arguments(cfg, Path(output), seed),
                          train_dataset=train, eval_dataset=test, processing_class=tokenizer,
                          data_collator=default_data_collator, compute_metrics=accuracy)
        result, train_seconds = train_as_the_example(trainer)
        scores = trainer.evaluate()
    epochs = result.metrics.get("epoch", cfg.epochs)
    return Measurement(
        variant=EXAMPLE, train_samples=round(len(train) * epochs), train_seconds=train_seconds,
        wall_seconds=time.time() - launched_at, test_score=scores["eval_accuracy"],
        peak_rss_bytes=peak_rss_bytes(resource.RUSAGE_SELF),
        real_tokens=round(sum(map(sum, train["attention_mask"])) * epochs),
        non_embedding_params=non_embedding_params(model), threads=apply_threads(None),
        extra={"rows": rows_digest(splits), "steps": result.global_step,
               "max_length": EXAMPLE_MAX_LENGTH,
               "padded_tokens": round(len(train) * EXAMPLE_MAX_LENGTH * epochs)})


def train_as_the_example(trainer: Any) -> tuple[Any, float]:
    """`trainer.train()` and its seconds; then the model and the trainer's state saved, as the
    example scripts do (not timed)."""
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    trainer.save_model()
    trainer.save_state()
    return result, seconds


def example_arguments(cfg: TrainConfig, output: Path, seed: int, seq2seq: bool = False) -> Any:
    """TrainingArguments at their defaults but for the settings all variants share
    (`seq2seq`: Seq2SeqTrainingArguments, as run_translation.py builds)."""
    from transformers import Seq2SeqTrainingArguments, TrainingArguments

    return (Seq2SeqTrainingArguments if seq2seq else TrainingArguments)(
        output_dir=str(output), seed=seed, num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=EXAMPLE_EVAL_BATCH,
        learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup,
        lr_scheduler_type=cfg.lr_scheduler, max_grad_norm=cfg.max_grad_norm,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, report_to="none")


def accuracy(prediction: Any) -> dict[str, float]:
    return {"accuracy": float((np.argmax(prediction.predictions, axis=-1)
                               == prediction.label_ids).mean())}


# --- (c) the raw PyTorch loop ---------------------------------------------------------------------

def run_raw(params: Params, launched_at: float) -> Measurement:
    """Dynamic padding, random batches, AdamW, the same schedule; no evaluation during training."""
    from transformers import DataCollatorWithPadding

    from pipeline.model_files import load_tokenizer
    from pipeline.modeling import build_model

    task = get_task(params.task)
    model_name, seed = only_model(params)
    model_cfg, cfg = params.model(model_name), params.model(model_name).training(params.train)
    if cfg.gradient_accumulation_steps != 1:
        raise ValueError("the raw loop has no gradient accumulation; set it to 1")
    splits, labels = load_rows(params, task)
    tokenizer = load_tokenizer(model_cfg, f"models.{model_name}")

    def encode(frame: pd.DataFrame) -> list[dict[str, Any]]:
        texts, pairs = text_pairs(frame)
        encoded = tokenizer(texts, pairs, truncation=True, max_length=model_cfg.max_length)
        return [{**{key: values[i] for key, values in encoded.items()}, "labels": label}
                for i, label in enumerate(label_ids(frame, labels))]

    train, test = encode(splits["train"]), encode(splits["test"])
    model = build_model(task, model_cfg, {"labels": labels}, tokenizer, seed,
                        f"models.{model_name}").to(device())
    collator = DataCollatorWithPadding(tokenizer)
    started = time.perf_counter()
    samples, tokens = train_loop(model, train, collator, cfg, seed)
    train_seconds = time.perf_counter() - started
    return Measurement(
        variant=RAW, train_samples=samples, train_seconds=train_seconds,
        wall_seconds=time.time() - launched_at,
        test_score=evaluate(model, test, collator, cfg.eval_batch_size),
        peak_rss_bytes=peak_rss_bytes(resource.RUSAGE_SELF), real_tokens=tokens,
        non_embedding_params=non_embedding_params(model), threads=apply_threads(None),
        extra={"rows": rows_digest(splits), "max_length": model_cfg.max_length})


def train_loop(model: Any, rows: list[dict[str, Any]], collator: Any, cfg: TrainConfig,
               seed: int) -> tuple[int, int]:
    """Train in place; return the examples and the unpadded tokens seen."""
    import math

    import torch
    from transformers import get_scheduler

    loader = torch.utils.data.DataLoader(rows, batch_size=cfg.batch_size, shuffle=True,
                                         collate_fn=collator,
                                         generator=torch.Generator().manual_seed(seed))
    total = cfg.max_steps if cfg.max_steps > 0 else math.ceil(cfg.epochs * len(loader))
    decay = [p for p in model.parameters() if p.ndim >= 2]  # no decay on biases and norms
    rest = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=cfg.learning_rate)
    scheduler = get_scheduler(cfg.lr_scheduler, optimizer, warmup_steps(cfg.warmup, total), total)
    model.train()
    step = samples = tokens = 0
    while step < total:
        for batch in loader:
            batch = {key: value.to(model.device) for key, value in batch.items()}
            model(**batch).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step, samples = step + 1, samples + len(batch["labels"])
            tokens += int(batch["attention_mask"].sum())
            if step == total:
                break
    return samples, tokens


def evaluate(model: Any, rows: list[dict[str, Any]], collator: Any, batch_size: int) -> float:
    """Test accuracy over length-sorted batches (little padding), without gradients."""
    logits = predict_rows(model, rows, collator, batch_size)
    return float(np.mean([int(row.argmax()) == example["labels"]
                          for row, example in zip(logits, rows, strict=True)]))


def predict_rows(model: Any, rows: list[dict[str, Any]], collator: Any,
                 batch_size: int) -> list[np.ndarray]:
    """Each row's logits, in the rows' order, from length-sorted batches without gradients;
    per-token logits are cut to the row's own length."""
    import torch

    model.eval()
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
    found: list[np.ndarray] = [np.empty(0)] * len(rows)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            batch = collator([rows[i] for i in chosen])
            batch.pop("labels")
            logits = model(**{key: value.to(model.device) for key, value in batch.items()}).logits
            for i, row in zip(chosen, logits.float().cpu().numpy(), strict=True):
                found[i] = row[:len(rows[i]["input_ids"])] if row.ndim == 2 else row
    return found


# --- the hardware's ceiling -----------------------------------------------------------------------

def matmul_rate(size: int, seconds: float) -> float:
    """Median FLOP/s of a dense fp32 n x n product, repeated for about `seconds`."""
    import torch

    where = device()
    a, b = (torch.randn(size, size, device=where) for _ in range(2))
    out = torch.empty(size, size, device=where)
    torch.mm(a, b, out=out)  # warm-up: thread pool, caches
    rates: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(rates) < 3:
        started = time.perf_counter()
        torch.mm(a, b, out=out)
        if where.type == "cuda":
            torch.cuda.synchronize()
        rates.append(matmul_flops(size) / (time.perf_counter() - started))
    return statistics.median(rates)


def text_classification_runners() -> dict[str, Runner]:
    return {PIPELINE: lambda params, args: run_pipeline(args.project, params, args.threads,
                                                        "accuracy").to_json(),
            EXAMPLE: lambda params, args: run_example(params, args.launched_at).to_json(),
            RAW: lambda params, args: run_raw(params, args.launched_at).to_json()}


def runners(benchmark: str) -> dict[str, Runner]:
    """The pipeline, example and raw runs of a benchmark (its module's `runners()`)."""
    if benchmark == TEXT_CLASSIFICATION:
        return text_classification_runners()
    return importlib.import_module(f"benchmarks.{benchmark}").runners()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("variant", choices=[PIPELINE, EXAMPLE, RAW, MATMUL_VARIANT])
    parser.add_argument("--benchmark", default=TEXT_CLASSIFICATION,
                        choices=[TEXT_CLASSIFICATION, "token_classification", "generation",
                                 "seq2seq_training"])
    parser.add_argument("--project", type=Path, required=True, help="the throw-away project")
    parser.add_argument("--out", type=Path, required=True, help="where to write the result JSON")
    parser.add_argument("--launched-at", type=float, required=True,
                        help="time.time() when the parent started this process")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--matmul-seconds", type=float, default=3.0)
    args = parser.parse_args()
    threads = apply_threads(args.threads)
    params = load_params(args.project / "params.yaml")
    if args.variant == MATMUL_VARIANT:
        result: dict[str, Any] = {"flops_per_second": matmul_rate(args.matmul_size,
                                                                  args.matmul_seconds),
                                  "size": args.matmul_size, "threads": threads}
    else:
        result = runners(args.benchmark)[args.variant](params, args)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
