"""MiniLM's training step on the default experiment's tokenized reviews, as the pipeline takes
it, against candidate speed-ups (issue 22, goal 2). Run `make repro` first: the step reads
data/tokenized/minilm. The variants take turns step by step over the same length-grouped
batches (Trainer's group_by_length sampler, seeded), so that the machine's drift hits them
alike; the first steps of each (warm-up, compilation) are timed apart.

- exact: each batch padded to its longest review (DataCollatorWithPadding), eager PyTorch,
  fused AdamW, gradients clipped at 1.0: the pipeline's step;
- pad8: the same, batches padded to a multiple of 8 tokens (`pad_to_multiple_of=8`), so that
  shapes repeat;
- compile: the same as exact, the model run through `torch.compile(dynamic=True)` (inductor);
  TORCHINDUCTOR_CACHE_DIR set to a folder of an earlier run measures a warm cache.

`--profile` adds where the exact step's time goes, by operator (torch.profiler, self CPU time).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.report import markdown_table
from benchmarks.variants import apply_threads
from pipeline.config import Params, load_params
from pipeline.tasks import get_task

VARIANTS = ("exact", "pad8", "compile")
MODEL = "minilm"
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


@dataclass
class StepVariant:
    """One way of taking the step, and what it measured."""

    name: str
    model: Any
    optimizer: Any
    collator: Any
    first_seconds: float = 0.0
    seconds: list[float] = field(default_factory=list)
    tokens: int = 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100, help="timed steps per variant")
    parser.add_argument("--warmup-steps", type=int, default=3, help="untimed first steps")
    parser.add_argument("--variants", default="exact,pad8",
                        help=f"comma-separated, from {', '.join(VARIANTS)} (default exact,pad8)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile 20 exact steps by operator")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    args.variants = args.variants.split(",")
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    return args


def grouped_batches(rows: list[dict[str, Any]], batch_size: int, seed: int) -> list[list[int]]:
    """Batches as Trainer draws them with `train.group_by_length: true`."""
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    order = list(LengthGroupedSampler(batch_size, lengths=[len(row["input_ids"]) for row in rows],
                                      generator=torch.Generator().manual_seed(seed)))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def make_variant(name: str, params: Params, tokenizer: Any, seed: int) -> StepVariant:
    """The model as the train stage builds it (the seeded head included), and its optimizer."""
    import torch
    from transformers import DataCollatorWithPadding

    from pipeline.experiment import read_manifest
    from pipeline.modeling import build_model

    model = build_model(get_task(params.task), params.model(MODEL), read_manifest(params),
                        tokenizer, seed, f"models.{MODEL}").train()
    cfg = params.model(MODEL).training(params.train)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate,
                                  weight_decay=cfg.weight_decay, fused=True)
    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if name == "pad8" else None)
    if name == "compile":
        model = torch.compile(model, dynamic=True)
    return StepVariant(name, model, optimizer, collator)


def step(variant: StepVariant, rows: list[dict[str, Any]]) -> float:
    """One optimizer step on `rows`; its seconds (collation excluded)."""
    import torch

    batch = variant.collator(rows)
    started = time.perf_counter()
    variant.model(**batch).loss.backward()
    torch.nn.utils.clip_grad_norm_(variant.model.parameters(), 1.0)
    variant.optimizer.step()
    variant.optimizer.zero_grad(set_to_none=True)
    variant.tokens += batch["input_ids"].numel()
    return time.perf_counter() - started


def operator_shares(variant: StepVariant, rows: list[dict[str, Any]],
                    batches: list[list[int]]) -> str:
    """Self CPU time by operator over the given steps, the largest first."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as profiled:
        for batch in batches:
            step(variant, [rows[i] for i in batch])
    events = profiled.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    largest = sorted(events, key=lambda event: -event.self_cpu_time_total)[:12]
    matmul = sum(event.self_cpu_time_total for event in events if event.key in MATMUL_OPS)
    table = markdown_table(["operator", "self CPU s", "share"],
                           [[event.key, f"{event.self_cpu_time_total / 1e6:.2f}",
                             f"{event.self_cpu_time_total / total:.1%}"] for event in largest])
    return f"{table}\nmatrix products ({', '.join(MATMUL_OPS)}): {matmul / total:.1%} of {total / 1e6:.2f} s"


def main(argv: list[str] | None = None) -> None:
    from pipeline.experiment import load_tokenized

    args = parse_args(argv)
    threads = apply_threads(args.threads)
    params = load_params(Path("params.yaml"))
    splits, tokenizer = load_tokenized(MODEL)
    columns = [name for name in ("input_ids", "attention_mask", "token_type_ids", "labels")
               if name in splits["train"].column_names]
    rows = list(splits["train"].select_columns(columns))
    batch_size = params.model(MODEL).training(params.train).batch_size
    batches = grouped_batches(rows, batch_size, args.seed)
    warmup, timed = batches[:args.warmup_steps], batches[args.warmup_steps:][:args.steps]
    variants = [make_variant(name, params, tokenizer, args.seed) for name in args.variants]
    for variant in variants:
        variant.first_seconds = sum(step(variant, [rows[i] for i in batch]) for batch in warmup)
        variant.tokens = 0
    for batch in timed:
        for variant in variants:
            variant.seconds.append(step(variant, [rows[i] for i in batch]))
    base = sum(variants[0].seconds)
    print(f"{len(timed)} steps of batch {batch_size} per variant, {threads} threads, taking turns\n")
    print(markdown_table(
        ["variant", f"first {len(warmup)} steps s", "steps s", "ms/step", "computed tokens",
         f"time / {variants[0].name}"],
        [[v.name, f"{v.first_seconds:.1f}", f"{sum(v.seconds):.2f}",
          f"{1000 * sum(v.seconds) / len(v.seconds):.0f}", str(v.tokens),
          f"{sum(v.seconds) / base:.3f}"] for v in variants]))
    if args.profile:
        exact = make_variant("exact", params, tokenizer, args.seed)
        print("\n" + operator_shares(exact, rows, timed[:20]))


if __name__ == "__main__":
    main()
