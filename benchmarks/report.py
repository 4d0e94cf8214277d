"""What the benchmark prints: FLOP counts, ratios checked against the issue's goals, the table.

Pure arithmetic and formatting, kept apart from the timed code so that it can be unit-tested
without running (or asserting on) any timing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

PIPELINE, EXAMPLE, RAW = "pipeline", "example", "raw"
VARIANTS = (PIPELINE, EXAMPLE, RAW)
MIB = 1024 * 1024


def training_flops(non_embedding_params: int, tokens: int) -> float:
    """Kaplan et al.'s estimate of a training step's cost: 2 FLOPs per parameter and token
    forward, 4 backward. Attention's sequence-squared term and the embeddings are left out,
    so this slightly undercounts (by a few % at length 64)."""
    return 6.0 * non_embedding_params * tokens


def matmul_flops(size: int) -> float:
    """An n x n by n x n product: n^3 multiply-adds."""
    return 2.0 * size**3


def warmup_steps(warmup: float, total_steps: int) -> int:
    """`train.warmup` as Trainer reads it: below 1 a share of the steps (rounded up), else a
    step count."""
    if warmup < 1:
        return math.ceil(total_steps * warmup)
    return int(warmup)


@dataclass
class Measurement:
    """One variant's run: what it trained on, how long it took, what it scored."""

    variant: str
    train_samples: int  # examples seen in training: rows x epochs
    train_seconds: float  # the training loop alone
    wall_seconds: float  # the whole run: start-up, data, model, training, evaluation, saving
    test_score: float  # the benchmark's test metric (`metric`), computed the pipeline's way
    peak_rss_bytes: int
    real_tokens: int  # unpadded tokens seen in training
    non_embedding_params: int
    threads: int
    metric: str = "accuracy"
    extra: dict[str, Any] = field(default_factory=dict)
    validation_seconds: float = 0.0  # validation passes inside the training call (pipeline)

    @property
    def samples_per_second(self) -> float:
        return self.train_samples / self.train_seconds

    @property
    def step_seconds(self) -> float:
        """The training call less its validation passes: the time the training FLOPs take
        (checkpoint saving stays in)."""
        return self.train_seconds - self.validation_seconds

    @property
    def flops_per_second(self) -> float:
        return training_flops(self.non_embedding_params, self.real_tokens) / self.step_seconds

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measurement:
        return cls(**data)


@dataclass
class GenerationMeasurement:
    """One variant's generation over the test split: how many sentences and tokens it wrote,
    in how long, and their BLEU."""

    variant: str
    sentences: int
    generated_tokens: int  # tokens of the decoded outputs, counted by one tokenizer for all
    eval_seconds: float  # the pass over the test split (batching, generation, decoding; see variants)
    wall_seconds: float  # the whole process: imports, data, model, the pass, scoring
    test_score: float  # sacreBLEU corpus BLEU, computed the pipeline's way
    peak_rss_bytes: int
    threads: int
    metric: str = "bleu"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sentences_per_second(self) -> float:
        return self.sentences / self.eval_seconds

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.eval_seconds

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerationMeasurement:
        return cls(**data)


@dataclass(frozen=True)
class Check:
    """A ratio against its goal; `met` is None when a variant it needs did not run."""

    name: str
    value: float | None
    goal: str
    met: bool | None


def _ratio(results: dict[str, Measurement], name: str, goal: str, threshold: float,
           value: Callable[[], float], needs: Sequence[str]) -> Check:
    if any(variant not in results for variant in needs):
        return Check(name, None, goal, None)
    measured = value()
    return Check(name, measured, goal, measured >= threshold)


def score_gap(results: dict[str, Measurement | GenerationMeasurement], metric: str,
              goal: float = -1.0) -> Check:
    """The pipeline's test score minus the example's, in points (x 100 for scores in [0, 1])."""
    name, shown = f"{metric} pipeline - example (points)", f">= {goal:.1f}"
    if PIPELINE not in results or EXAMPLE not in results:
        return Check(name, None, shown, None)
    pipeline, example = results[PIPELINE], results[EXAMPLE]
    scale = 1 if metric == "bleu" else 100  # sacreBLEU is already in points
    gap = scale * (pipeline.test_score - example.test_score)
    return Check(name, gap, shown, gap >= goal)


def checks(results: dict[str, Measurement], matmul_flops_per_second: float | None) -> list[Check]:
    """The issue's goals for a fine-tuning benchmark, from the measured runs (the
    text-classification goals, applied to token classification too)."""
    pipeline = results.get(PIPELINE)
    found = [
        _ratio(results, "throughput pipeline / example", ">= 2.0", 2.0,
               lambda: pipeline.samples_per_second / results[EXAMPLE].samples_per_second,
               (PIPELINE, EXAMPLE)),
        _ratio(results, "throughput pipeline / raw loop", ">= 0.9", 0.9,
               lambda: pipeline.samples_per_second / results[RAW].samples_per_second,
               (PIPELINE, RAW)),
    ]
    found.append(score_gap(results, metric_of(results)))
    if pipeline is not None and matmul_flops_per_second:
        share = pipeline.flops_per_second / matmul_flops_per_second
        found.append(Check("training FLOP/s / fp32 matmul FLOP/s", share, ">= 0.6", share >= 0.6))
    else:
        found.append(Check("training FLOP/s / fp32 matmul FLOP/s", None, ">= 0.6", None))
    return found + orchestration_checks(pipeline)


def orchestration_checks(pipeline: Measurement | None) -> list[Check]:
    """DVC's own time plus MLflow's, against the training it orchestrates, and a no-op
    `dvc repro`."""
    extra = pipeline.extra if pipeline is not None else {}
    if "dvc_seconds" not in extra:
        return [Check("(DVC + MLflow) s / training s", None, "<= 0.05", None),
                Check("no-op dvc repro s", None, "< 2", None)]
    share = (extra["dvc_seconds"] + extra["mlflow"]["cell_seconds"]) / pipeline.train_seconds
    noop = extra["noop_repro_seconds"]
    return [Check("(DVC + MLflow) s / training s", share, "<= 0.05", share <= 0.05),
            Check("no-op dvc repro s", noop, "< 2", noop < 2)]


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table with aligned columns: readable in a terminal, pastable into RESULTS.md."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def metric_of(results: dict[str, Any]) -> str:
    """The test metric the variants were scored with (accuracy when none ran)."""
    metrics = {result.metric for result in results.values()}
    if len(metrics) > 1:
        raise ValueError(f"the variants were scored with different metrics: {sorted(metrics)}")
    return next(iter(metrics), "accuracy")


def results_table(results: dict[str, Measurement], matmul_flops_per_second: float | None) -> str:
    headers = ["variant", "train samples/s", "train s", "step s", "wall s",
               f"test {metric_of(results)}", "peak RSS MiB", "real tokens", "GFLOP/s",
               "of matmul"]
    rows = []
    for variant in (v for v in VARIANTS if v in results):
        result = results[variant]
        share = (f"{result.flops_per_second / matmul_flops_per_second:.2f}"
                 if matmul_flops_per_second else "-")
        rows.append([variant, f"{result.samples_per_second:.1f}", f"{result.train_seconds:.1f}",
                     f"{result.step_seconds:.1f}", f"{result.wall_seconds:.1f}",
                     f"{result.test_score:.4f}",
                     f"{result.peak_rss_bytes / MIB:.0f}", str(result.real_tokens),
                     f"{result.flops_per_second / 1e9:.1f}", share])
    return markdown_table(headers, rows)


def checks_table(found: Sequence[Check]) -> str:
    def verdict(check: Check) -> str:
        return "not run" if check.met is None else ("met" if check.met else "NOT MET")

    rows = [[check.name, "-" if check.value is None else f"{check.value:.2f}", check.goal,
             verdict(check)] for check in found]
    return markdown_table(["ratio", "value", "goal", "verdict"], rows)


def generation_checks(results: dict[str, GenerationMeasurement]) -> list[Check]:
    """The fine-tuning benchmarks' goals applied to generation at evaluation: sentences/s
    against the example recipe and the raw loop, and the BLEU gap."""
    pipeline = results.get(PIPELINE)
    return [
        _ratio(results, "sentences/s pipeline / example", ">= 2.0", 2.0,
               lambda: pipeline.sentences_per_second / results[EXAMPLE].sentences_per_second,
               (PIPELINE, EXAMPLE)),
        _ratio(results, "sentences/s pipeline / raw loop", ">= 0.9", 0.9,
               lambda: pipeline.sentences_per_second / results[RAW].sentences_per_second,
               (PIPELINE, RAW)),
        score_gap(results, "bleu"),
    ]


def generation_table(results: dict[str, GenerationMeasurement]) -> str:
    headers = ["variant", "sentences/s", "tokens/s", "eval s", "wall s", "BLEU",
               "peak RSS MiB", "generated tokens"]
    rows = [[variant, f"{result.sentences_per_second:.2f}", f"{result.tokens_per_second:.1f}",
             f"{result.eval_seconds:.1f}", f"{result.wall_seconds:.1f}",
             f"{result.test_score:.2f}", f"{result.peak_rss_bytes / MIB:.0f}",
             str(result.generated_tokens)]
            for variant, result in ((v, results[v]) for v in VARIANTS if v in results)]
    return markdown_table(headers, rows)
