"""Test-set uncertainty for corpus-level metrics: bootstrap intervals, paired tests, seed x test
intervals, multiple-comparison adjustment and sample-size planning.

Every corpus metric we report is a function of per-example additive statistics: an
`ExampleStatistics` holds them as a matrix S (examples x k) and the aggregate f that turns
summed statistics into the metric. A bootstrap resample is a vector w of how often each example
was drawn, so the resampled metric is f(w @ S): the metric recomputed exactly (not an average of
per-example scores) for a whole batch of resamples with one matrix product.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import NamedTuple

import numpy as np

Aggregate = Callable[[np.ndarray], np.ndarray]

# Resamples drawn at once: each (CHUNK x n) index or count matrix is ~24 MB at n = 30,000 examples.
CHUNK = 100
# Resampled statistics within this relative distance of the observed one count as ties, so that
# float noise in re-summed (non-integer) statistics cannot decide whether a tie is counted.
_TIE_TOLERANCE = 1e-9


@dataclass(frozen=True, eq=False)
class ExampleStatistics:
    """A metric on one test set: `values` (examples x k) are per-example additive statistics and
    `aggregate` maps summed statistics (..., k) to the metric (...), so resamples can be scored
    in bulk."""

    values: np.ndarray
    aggregate: Aggregate

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=float)
        if values.ndim != 2 or not len(values):
            raise ValueError(f"example statistics must be a non-empty (examples x k) matrix, "
                             f"got shape {values.shape}")
        object.__setattr__(self, "values", values)

    @property
    def n(self) -> int:
        return self.values.shape[0]

    @property
    def value(self) -> float:
        """The metric on the full test set, as reported."""
        return float(self.aggregate(self.values.sum(axis=0)))

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        """The metric on each resample, given as rows of per-example draw counts."""
        return self.aggregate(counts @ self.values)


class Interval(NamedTuple):
    """The reported value, its percentile interval and the bootstrap standard error (for planning)."""

    estimate: float
    low: float
    high: float
    standard_error: float


class PairedComparison(NamedTuple):
    """a - b on the full test set, its percentile interval and a two-sided p-value."""

    difference: float
    low: float
    high: float
    p_value: float


def counts_from_indices(indices: np.ndarray, n: int) -> np.ndarray:
    """Rows of drawn example indices as rows of draw counts, so that callers (and tests) can
    replay explicit resamples."""
    indices = np.atleast_2d(np.asarray(indices))
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        raise ValueError(f"example indices must lie in [0, {n})")
    rows = indices.shape[0]
    flat = (indices + n * np.arange(rows)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(float)


def resample_counts(n: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """Multinomial(n, uniform) draw counts, (samples x n); drawing indices and counting them is
    ~6x faster than numpy's sequential multinomial sampler at n in the tens of thousands."""
    return counts_from_indices(rng.integers(0, n, size=(samples, n)), n)


def _coin_flips(rows: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Fair 0/1 flips (rows x n), eight per random byte: the bulk of a randomization test's cost."""
    flips = np.unpackbits(rng.integers(0, 256, size=(rows, (n + 7) // 8), dtype=np.uint8), axis=1, count=n)
    return flips.astype(float)


def _chunk_sizes(samples: int) -> Iterator[int]:
    if samples < 1:
        raise ValueError(f"samples must be positive, got {samples}")
    for start in range(0, samples, CHUNK):
        yield min(CHUNK, samples - start)


def _tail(confidence: float) -> float:
    """The probability left in each tail of a two-sided interval."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    return (1 - confidence) / 2


def _percentiles(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = _tail(confidence)
    low, high = np.quantile(replicates, [tail, 1 - tail])
    return float(low), float(high)


def _p_value(extremes: np.ndarray, observed: float) -> float:
    """(count + 1) / (samples + 1): the observed data counts as one draw under the null, so the
    test never reports p = 0 and stays valid with few samples."""
    count = int(np.sum(extremes >= observed * (1 - _TIE_TOLERANCE)))
    return (count + 1) / (len(extremes) + 1)


def _check_paired(stats_a: ExampleStatistics, stats_b: ExampleStatistics) -> None:
    if stats_a.n != stats_b.n:
        raise ValueError(f"a paired comparison needs both systems scored on the same test examples: "
                         f"got {stats_a.n} and {stats_b.n} examples")


def bootstrap_replicates(stats: ExampleStatistics, samples: int = 1000, seed: int = 0) -> np.ndarray:
    """The metric on `samples` bootstrap resamples of the test examples, drawn in chunks so that
    memory stays bounded."""
    rng = np.random.default_rng(seed)
    return np.concatenate([stats.resampled(resample_counts(stats.n, rows, rng))
                           for rows in _chunk_sizes(samples)])


def bootstrap_interval(stats: ExampleStatistics, samples: int = 1000, seed: int = 0,
                       confidence: float = 0.95) -> Interval:
    """Percentile interval of the test metric over resampled test sets: the uncertainty due to
    the finite test set only (one trained model, fixed)."""
    replicates = bootstrap_replicates(stats, samples, seed)
    return Interval(stats.value, *_percentiles(replicates, confidence), float(np.std(replicates, ddof=1)))


def paired_bootstrap(stats_a: ExampleStatistics, stats_b: ExampleStatistics, samples: int = 1000,
                     seed: int = 0, confidence: float = 0.95) -> PairedComparison:
    """Difference a - b with a percentile interval and a two-sided p-value, both systems scored on
    the same resampled examples (pairing removes the shared example difficulty from the noise).

    The p-value uses the shifted null: the resampled differences, centred on the observed one,
    approximate the difference's sampling distribution under "no difference"; p is the share
    (with the (count + 1) / (samples + 1) correction) at least as far from the observed difference
    as the observed difference is from zero.
    """
    _check_paired(stats_a, stats_b)
    rng = np.random.default_rng(seed)
    differences = []
    for rows in _chunk_sizes(samples):
        counts = resample_counts(stats_a.n, rows, rng)
        differences.append(stats_a.resampled(counts) - stats_b.resampled(counts))
    resampled = np.concatenate(differences)
    observed = stats_a.value - stats_b.value
    p_value = _p_value(np.abs(resampled - observed), abs(observed))
    return PairedComparison(observed, *_percentiles(resampled, confidence), p_value)


def approximate_randomization(stats_a: ExampleStatistics, stats_b: ExampleStatistics,
                              samples: int = 10000, seed: int = 0) -> float:
    """Two-sided p-value of a permutation test, as sacreBLEU's significance module runs for MT:
    under the null the two systems are exchangeable on each example, so each example's statistics
    are swapped between them with probability 1/2; p = (count + 1) / (samples + 1) of
    |difference| >= |observed difference|. Both must be the same metric (same statistics)."""
    _check_paired(stats_a, stats_b)
    if stats_a.values.shape != stats_b.values.shape:
        raise ValueError(f"swapping statistics needs the same metric for both systems: got "
                         f"{stats_a.values.shape[1]} and {stats_b.values.shape[1]} statistics per example")
    rng = np.random.default_rng(seed)
    total_a, total_b = stats_a.values.sum(axis=0), stats_b.values.sum(axis=0)
    gap = stats_b.values - stats_a.values
    differences = []
    for rows in _chunk_sizes(samples):
        shift = _coin_flips(rows, stats_a.n, rng) @ gap
        differences.append(stats_a.aggregate(total_a + shift) - stats_b.aggregate(total_b - shift))
    return _p_value(np.abs(np.concatenate(differences)), abs(stats_a.value - stats_b.value))


def _check_cells(cells_a: Sequence[ExampleStatistics],
                 cells_b: Sequence[ExampleStatistics] | None) -> None:
    if not cells_a:
        raise ValueError("at least one seed's cell is needed")
    if cells_b is not None and len(cells_b) != len(cells_a):
        raise ValueError(f"paired cells need one b cell per a cell (seed i of a with seed i of b): "
                         f"got {len(cells_a)} and {len(cells_b)}")
    sizes = {cell.n for cell in [*cells_a, *(cells_b or [])]}
    if len(sizes) != 1:
        raise ValueError(f"every cell must be scored on the same test examples: got sizes {sorted(sizes)}")


def _per_seed(cells_a: Sequence[ExampleStatistics], cells_b: Sequence[ExampleStatistics] | None,
              score: Callable[[ExampleStatistics], np.ndarray]) -> np.ndarray:
    """score(cell) per seed, stacked along the last axis; a - b where b cells are given."""
    values = np.stack([score(cell) for cell in cells_a], axis=-1)
    if cells_b is not None:
        values = values - np.stack([score(cell) for cell in cells_b], axis=-1)
    return values


def combined_replicates(cells_a: Sequence[ExampleStatistics], cells_b: Sequence[ExampleStatistics] | None,
                        seed_draws: np.ndarray, example_counts: np.ndarray) -> np.ndarray:
    """The seed-averaged metric (or paired difference) on given two-level resamples: row r draws
    the seeds `seed_draws[r]` (indices into the cells) and the test examples `example_counts[r]`,
    one draw of examples shared by every seed because all cells are scored on the same test set."""
    _check_cells(cells_a, cells_b)
    per_seed = _per_seed(cells_a, cells_b, lambda cell: cell.resampled(example_counts))
    return np.take_along_axis(per_seed, np.atleast_2d(seed_draws), axis=1).mean(axis=1)


def _two_level_replicates(cells_a: Sequence[ExampleStatistics],
                          cells_b: Sequence[ExampleStatistics] | None, samples: int,
                          seed: int) -> np.ndarray:
    _check_cells(cells_a, cells_b)
    rng = np.random.default_rng(seed)
    seeds, examples = len(cells_a), cells_a[0].n
    return np.concatenate([
        combined_replicates(cells_a, cells_b, rng.integers(0, seeds, size=(rows, seeds)),
                            resample_counts(examples, rows, rng))
        for rows in _chunk_sizes(samples)])


def _seed_mean(cells_a: Sequence[ExampleStatistics],
               cells_b: Sequence[ExampleStatistics] | None) -> float:
    return float(np.mean(_per_seed(cells_a, cells_b, lambda cell: np.asarray(cell.value))))


def combined_interval(cells_a: Sequence[ExampleStatistics],
                      cells_b: Sequence[ExampleStatistics] | None = None, samples: int = 1000,
                      seed: int = 0, confidence: float = 0.95) -> Interval:
    """Percentile interval of a quantity averaged over training seeds (one cell per seed), from a
    two-level bootstrap that resamples seeds and test examples together, so that both seed-to-seed
    variation and the finite test set widen it. With `cells_b`, the quantity is the paired
    difference a_i - b_i (seed i of a with seed i of b: fine-tuned vs base, or two models on shared
    seeds). With a single seed it degenerates to the test-only bootstrap (`bootstrap_interval`, or
    `paired_bootstrap` for a difference): seed variation cannot be estimated from one seed."""
    replicates = _two_level_replicates(cells_a, cells_b, samples, seed)
    return Interval(_seed_mean(cells_a, cells_b), *_percentiles(replicates, confidence),
                    float(np.std(replicates, ddof=1)))


def combined_comparison(cells_a: Sequence[ExampleStatistics], cells_b: Sequence[ExampleStatistics],
                        samples: int = 1000, seed: int = 0,
                        confidence: float = 0.95) -> PairedComparison:
    """a - b averaged over shared seeds (seed i of a with seed i of b), with the two-level
    percentile interval of `combined_interval` and a two-sided p-value from the same resamples
    by the shifted null of `paired_bootstrap`: a gap has to stand out from seed-to-seed and
    test-sample noise together."""
    replicates = _two_level_replicates(cells_a, cells_b, samples, seed)
    observed = _seed_mean(cells_a, cells_b)
    p_value = _p_value(np.abs(replicates - observed), abs(observed))
    return PairedComparison(observed, *_percentiles(replicates, confidence), p_value)


def _adjust(p_values: Sequence[float] | np.ndarray,
            step: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Applies `step` (ascending p-values -> adjusted) to the non-NaN entries, in input order."""
    p = np.array(p_values, dtype=float)
    tested = ~np.isnan(p)
    if np.any((p[tested] < 0) | (p[tested] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    order = np.argsort(p[tested], kind="stable")
    adjusted = np.empty(order.size)
    adjusted[order] = np.minimum(step(p[tested][order]), 1.0)
    p[tested] = adjusted
    return p


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment: controls the family-wise error rate under any dependence
    between the tests (cells share test sets and base models). NaN = not tested, passed through."""
    def step(ascending: np.ndarray) -> np.ndarray:
        return np.maximum.accumulate((ascending.size - np.arange(ascending.size)) * ascending)
    return _adjust(p_values, step)


def benjamini_hochberg(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg step-up adjustment: controls the false discovery rate, less strict than
    Holm when many comparisons are screened. NaN = not tested, passed through."""
    def step(ascending: np.ndarray) -> np.ndarray:
        scaled = ascending * ascending.size / np.arange(1, ascending.size + 1)
        return np.minimum.accumulate(scaled[::-1])[::-1]
    return _adjust(p_values, step)


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(1 - _tail(confidence))


def _check_planning(seed_std: float, test_se: float, target_half_width: float) -> None:
    if seed_std < 0 or test_se < 0 or target_half_width <= 0:
        raise ValueError("seed_std and test_se must be >= 0 and target_half_width > 0")


def seeds_needed(seed_std: float, test_se: float, target_half_width: float,
                 confidence: float = 0.95) -> int | None:
    """Seeds m for a normal interval of the mean over seeds to have the target half-width, under
    Var(mean) = seed_std**2 / m + test_se**2. The test-set error does not shrink with m: every
    seed is scored on the same test set (seed_std, measured on that fixed set, is pure seed
    variation). None when test_se alone exceeds the target: then more test examples are needed
    (`examples_needed`). At least 2, so that seed variation can be estimated at all."""
    _check_planning(seed_std, test_se, target_half_width)
    budget = (target_half_width / _z(confidence)) ** 2 - test_se**2
    if budget <= 0:
        return None
    return max(2, math.ceil(seed_std**2 / budget))


def examples_needed(seed_std: float, test_se: float, n_test: int, seeds: int,
                    target_half_width: float, confidence: float = 0.95) -> int | None:
    """Test examples for the same target with `seeds` seeds, the test error scaling as
    test_se * sqrt(n_test / n) from its value at the current size n_test. None when the seed
    term seed_std**2 / seeds alone exceeds the target: then more seeds are needed."""
    _check_planning(seed_std, test_se, target_half_width)
    if n_test < 1 or seeds < 1:
        raise ValueError("n_test and seeds must be positive")
    budget = (target_half_width / _z(confidence)) ** 2 - seed_std**2 / seeds
    if budget <= 0:
        return None
    return math.ceil(n_test * test_se**2 / budget)
