"""Bootstrap intervals, paired tests, the seed x test interval, p-value adjustment and planning,
each against an independent computation: scipy, sacreBLEU, scikit-learn, plain loops written
here, or values worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sacrebleu.metrics import BLEU
from sacrebleu.significance import PairedTest
from scipy.stats import bootstrap as scipy_bootstrap
from scipy.stats import false_discovery_control
from sklearn.metrics import f1_score

from pipeline import bootstrap as bs
from pipeline import example_statistics as es

WORDS = ["the", "a", "cat", "dog", "sat", "on", "mat", "and", "ran", "far", "away", "house", "red", "big",
         "small", "it", "is", "was", "."]
LABELS = [0, 1, 2]


def mean_stats(scores: np.ndarray) -> bs.ExampleStatistics:
    return es.mean_score(list(scores))


# --- resampling and the single-system interval --------------------------------------------------

def test_counts_from_indices_match_bincount_per_row() -> None:
    indices = np.random.default_rng(0).integers(0, 7, size=(5, 7))
    counts = bs.counts_from_indices(indices, 7)
    assert counts.shape == (5, 7)
    for row, drawn in zip(counts, indices, strict=True):
        np.testing.assert_array_equal(row, np.bincount(drawn, minlength=7))


def test_counts_from_indices_refuse_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        bs.counts_from_indices(np.array([[0, 3, 1]]), 3)


def test_resample_counts_draw_n_examples_per_resample() -> None:
    counts = bs.resample_counts(50, 30, np.random.default_rng(0))
    assert counts.shape == (30, 50)
    np.testing.assert_array_equal(counts.sum(axis=1), 50)
    # Multinomial(50, 1/50) counts: variance 1 - 1/50 over 1,500 cells (a permutation would give 0).
    assert 0.85 < counts.var() < 1.1


def test_replicates_beyond_one_chunk() -> None:
    """Each chunk draws fresh resamples (a repeated generator state would repeat values)."""
    data = np.random.default_rng(0).normal(size=10)
    replicates = bs.bootstrap_replicates(mean_stats(data), samples=bs.CHUNK * 2 + 5)
    assert replicates.shape == (bs.CHUNK * 2 + 5,)
    assert len(np.unique(replicates)) > bs.CHUNK * 2


def test_example_statistics_need_a_matrix() -> None:
    with pytest.raises(ValueError, match="examples x k"):
        bs.ExampleStatistics(np.arange(3.0), lambda sums: sums)


@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_interval_of_a_mean_matches_scipy_percentile_bootstrap(confidence: float) -> None:
    data = np.random.default_rng(0).normal(10, 3, size=200)
    ours = bs.bootstrap_interval(mean_stats(data), samples=4000, seed=1, confidence=confidence)
    theirs = scipy_bootstrap((data,), np.mean, n_resamples=4000, method="percentile",
                             confidence_level=confidence, rng=np.random.default_rng(2))
    se = theirs.standard_error
    assert ours.estimate == pytest.approx(data.mean())
    assert ours.standard_error == pytest.approx(se, rel=0.06)
    # Monte-Carlo error of each endpoint is ~0.06 se at 4,000 resamples; a wrong tail
    # (e.g. 90% instead of 95%) moves an endpoint by 0.3 se.
    assert abs(ours.low - theirs.confidence_interval.low) < 0.2 * se
    assert abs(ours.high - theirs.confidence_interval.high) < 0.2 * se


# --- paired tests -----------------------------------------------------------------------------

def noisy_copy(rng: np.random.Generator, reference: str, rate: float) -> str:
    return " ".join(w if rng.random() > rate else WORDS[int(rng.integers(0, len(WORDS)))]
                    for w in reference.split())


def translations(rate_a: float, rate_b: float) -> tuple[list[str], list[str], list[str]]:
    rng = np.random.default_rng(0)
    references = [" ".join(WORDS[i] for i in rng.integers(0, len(WORDS), size=int(rng.integers(4, 15))))
                  for _ in range(150)]
    rng = np.random.default_rng(1)
    return ([noisy_copy(rng, r, rate_a) for r in references],
            [noisy_copy(rng, r, rate_b) for r in references], references)


def loop_paired_bootstrap_bleu(hyps_a: list[str], hyps_b: list[str], references: list[str],
                               samples: int, seed: int) -> tuple[float, float, float, float]:
    """Shifted-null paired bootstrap written as a plain loop, scored by sacreBLEU itself."""
    metric = BLEU()
    stats_a = np.array(metric._extract_corpus_statistics(hyps_a, [references]))
    stats_b = np.array(metric._extract_corpus_statistics(hyps_b, [references]))
    observed = (metric._compute_score_from_stats(list(stats_a.sum(0))).score
                - metric._compute_score_from_stats(list(stats_b.sum(0))).score)
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(samples):
        rows = rng.integers(0, len(references), size=len(references))
        differences.append(metric._compute_score_from_stats(list(stats_a[rows].sum(0))).score
                           - metric._compute_score_from_stats(list(stats_b[rows].sum(0))).score)
    differences = np.array(differences)
    extreme = sum(abs(d - observed) >= abs(observed) for d in differences)
    low, high = np.quantile(differences, [0.025, 0.975])
    return observed, (extreme + 1) / (samples + 1), low, high


def sacrebleu_p_value(hyps_a: list[str], hyps_b: list[str], references: list[str],
                       test_type: str) -> float:
    _, results = PairedTest([("b", hyps_b), ("a", hyps_a)], {"BLEU": BLEU()}, [references],
                            test_type=test_type, n_samples=2000)()
    return results["BLEU"][1].p_value


@pytest.mark.parametrize(("rate_b", "significant"), [(0.31, False), (0.4, True)])
def test_bleu_paired_tests_agree_with_a_loop_and_sacrebleu(rate_b: float, significant: bool) -> None:
    hyps_a, hyps_b, references = translations(0.3, rate_b)
    a, b = es.bleu(hyps_a, references), es.bleu(hyps_b, references)
    ours = bs.paired_bootstrap(a, b, samples=2000, seed=0)
    observed, loop_p, loop_low, loop_high = loop_paired_bootstrap_bleu(hyps_a, hyps_b, references,
                                                                       samples=2000, seed=1)
    assert ours.difference == pytest.approx(observed, abs=1e-9)
    assert abs(ours.p_value - loop_p) < 0.05
    assert abs(ours.low - loop_low) < 1.0 and abs(ours.high - loop_high) < 1.0
    assert (ours.p_value < 0.01) == significant and (ours.low > 0) == significant
    # sacreBLEU's AR test is the same test: p agrees within Monte-Carlo error. Its paired
    # bootstrap counts one tail of |d| - mean |d|, a smaller p than our two-sided one, but it
    # reaches the same conclusion.
    ar = bs.approximate_randomization(a, b, samples=2000, seed=0)
    assert abs(ar - sacrebleu_p_value(hyps_a, hyps_b, references, "ar")) < 0.04
    assert (sacrebleu_p_value(hyps_a, hyps_b, references, "bs") < 0.01) == significant


def null_p_values(test: str, datasets: int = 300) -> np.ndarray:
    """p-values for two systems whose per-example scores have the same distribution, on
    independent test sets. Continuous scores: with a discrete metric (accuracy) ties make both
    tests conservative, so p < 0.5 would be rarer than half the time."""
    rng = np.random.default_rng(7)
    p_values = []
    for i in range(datasets):
        a, b = mean_stats(rng.normal(size=100)), mean_stats(rng.normal(size=100))
        if test == "bootstrap":
            p_values.append(bs.paired_bootstrap(a, b, samples=200, seed=i).p_value)
        else:
            p_values.append(bs.approximate_randomization(a, b, samples=200, seed=i))
    return np.array(p_values)


@pytest.mark.parametrize("test", ["bootstrap", "randomization"])
def test_paired_tests_are_calibrated_under_the_null(test: str) -> None:
    p_values = null_p_values(test)
    assert 0.01 < np.mean(p_values < 0.05) < 0.1
    assert 0.4 < np.mean(p_values < 0.5) < 0.6


def test_paired_tests_detect_a_clearly_better_system() -> None:
    rng = np.random.default_rng(3)
    a = es.accuracy([1] * 300, (rng.random(300) < 0.85).astype(int).tolist())
    b = es.accuracy([1] * 300, (rng.random(300) < 0.65).astype(int).tolist())
    result = bs.paired_bootstrap(a, b, samples=1000)
    assert result.p_value == pytest.approx(1 / 1001) and result.low > 0
    assert bs.approximate_randomization(a, b, samples=1000) == pytest.approx(1 / 1001)


def test_a_system_against_itself_is_not_significant() -> None:
    a = mean_stats(np.random.default_rng(0).random(50))
    assert bs.paired_bootstrap(a, a, samples=200).p_value == 1.0
    assert bs.approximate_randomization(a, a, samples=200) == 1.0


def test_paired_tests_refuse_different_test_sets() -> None:
    a, b = mean_stats(np.ones(5)), mean_stats(np.ones(6))
    with pytest.raises(ValueError, match="same test examples"):
        bs.paired_bootstrap(a, b)
    with pytest.raises(ValueError, match="same test examples"):
        bs.approximate_randomization(a, b)
    with pytest.raises(ValueError, match="same metric"):
        bs.approximate_randomization(a, bs.ExampleStatistics(np.ones((5, 3)), lambda sums: sums[..., 0]))


# --- seeds and test examples together ---------------------------------------------------------

def classification_cells(seeds: int, n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    references = rng.integers(0, 3, size=n)
    return [(references, np.where(rng.random(n) < 0.5 + 0.1 * s, references, rng.integers(0, 3, size=n)))
            for s in range(seeds)]


def test_combined_replicates_equal_an_explicit_double_loop_with_sklearn() -> None:
    cells = classification_cells(seeds=3, n=80, seed=0)
    bases = classification_cells(seeds=3, n=80, seed=1)
    stats = [es.macro_f1(r.tolist(), p.tolist(), LABELS) for r, p in cells]
    base_stats = [es.macro_f1(r.tolist(), p.tolist(), LABELS) for r, p in bases]
    rng = np.random.default_rng(2)
    seed_draws, rows = rng.integers(0, 3, size=(5, 3)), rng.integers(0, 80, size=(5, 80))
    counts = np.stack([np.bincount(r, minlength=80) for r in rows]).astype(float)

    def f1(cell: tuple[np.ndarray, np.ndarray], drawn: np.ndarray) -> float:
        return f1_score(cell[0][drawn], cell[1][drawn], labels=LABELS, average="macro", zero_division=0)

    single = bs.combined_replicates(stats, None, seed_draws, counts)
    paired = bs.combined_replicates(stats, base_stats, seed_draws, counts)
    for r in range(5):
        assert single[r] == pytest.approx(np.mean([f1(cells[s], rows[r]) for s in seed_draws[r]]), abs=1e-12)
        assert paired[r] == pytest.approx(
            np.mean([f1(cells[s], rows[r]) - f1(bases[s], rows[r]) for s in seed_draws[r]]), abs=1e-12)


SEED_OFFSETS = [-0.15, 0.0, 0.075, 0.15]


def seed_scores(offsets: list[float], noise_seed: int) -> np.ndarray:
    """Per-example scores of one model, seeds x 300 examples: a shared example difficulty (every
    cell sees the same test set), a per-seed offset and per-example noise."""
    difficulty = np.random.default_rng(0).normal(0, 1, size=300)
    noise = np.random.default_rng(noise_seed).normal(0, 0.3, size=(len(offsets), 300))
    return difficulty + np.array(offsets)[:, None] + noise


def loop_combined_interval(scores: np.ndarray, samples: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    seeds, n = scores.shape
    values = []
    for _ in range(samples):
        drawn_seeds, rows = rng.integers(0, seeds, size=seeds), rng.integers(0, n, size=n)
        values.append(np.mean([scores[s][rows].mean() for s in drawn_seeds]))
    low, high = np.quantile(values, [0.025, 0.975])
    return low, high


def one_level_widths(scores: np.ndarray) -> list[float]:
    """Interval widths from resampling only test examples, or only seeds."""
    test_only = bs.bootstrap_interval(mean_stats(scores.mean(axis=0)), samples=3000)
    drawn = np.random.default_rng(0).integers(0, len(scores), size=(3000, len(scores)))
    seeds_only = np.quantile(scores.mean(axis=1)[drawn].mean(axis=1), [0.025, 0.975])
    return [test_only.high - test_only.low, seeds_only[1] - seeds_only[0]]


def test_combined_interval_matches_a_slow_double_loop() -> None:
    """Seed variation about as large as the test-set error: both must widen the interval."""
    scores = seed_scores(SEED_OFFSETS, noise_seed=1)
    ours = bs.combined_interval([mean_stats(row) for row in scores], samples=3000, seed=0)
    low, high = loop_combined_interval(scores, samples=3000, seed=1)
    assert ours.estimate == pytest.approx(scores.mean())
    # Monte-Carlo error of each endpoint is ~0.05 se at 3,000 resamples (se ~0.08 here).
    assert abs(ours.low - low) < 0.3 * ours.standard_error
    assert abs(ours.high - high) < 0.3 * ours.standard_error
    # Either level alone gives a clearly narrower interval: the tolerance can tell them apart.
    for width in one_level_widths(scores):
        assert (high - low) - width > ours.standard_error


def test_combined_interval_of_paired_differences() -> None:
    """Base models with their own seed offsets on the same examples: the difference keeps seed
    variation, and pairing cancels the shared example difficulty."""
    scores = seed_scores(SEED_OFFSETS, noise_seed=1)
    base = seed_scores([-0.1, 0.05, 0.0, 0.1], noise_seed=2) - 0.2
    ours = bs.combined_interval([mean_stats(r) for r in scores], [mean_stats(r) for r in base],
                                samples=3000, seed=0)
    low, high = loop_combined_interval(scores - base, samples=3000, seed=1)
    assert ours.estimate == pytest.approx((scores - base).mean())
    assert abs(ours.low - low) < 0.3 * ours.standard_error
    assert abs(ours.high - high) < 0.3 * ours.standard_error
    for width in one_level_widths(scores - base):
        assert (high - low) - width > 0.5 * ours.standard_error


def test_one_seed_is_the_test_only_bootstrap() -> None:
    stats = mean_stats(seed_scores(SEED_OFFSETS, noise_seed=1)[0])
    combined = bs.combined_interval([stats], samples=3000, seed=0)
    single = bs.bootstrap_interval(stats, samples=3000, seed=1)
    assert combined.estimate == single.estimate
    assert abs(combined.low - single.low) < 0.2 * single.standard_error
    assert abs(combined.high - single.high) < 0.2 * single.standard_error


def test_combined_interval_refuses_mismatched_cells() -> None:
    with pytest.raises(ValueError, match="same test examples"):
        bs.combined_interval([mean_stats(np.ones(5)), mean_stats(np.ones(6))])
    with pytest.raises(ValueError, match="one b cell per a cell"):
        bs.combined_interval([mean_stats(np.ones(5))], [])
    with pytest.raises(ValueError, match="at least one"):
        bs.combined_interval([])


# --- multiple comparisons ---------------------------------------------------------------------

def loop_holm(p_values: list[float]) -> list[float]:
    tested = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    tested.sort()
    m, running, adjusted = len(tested), 0.0, list(p_values)
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def loop_benjamini_hochberg(p_values: list[float]) -> list[float]:
    tested = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    tested.sort()
    m, adjusted = len(tested), list(p_values)
    for rank, (_, i) in enumerate(tested):
        adjusted[i] = min(min(1.0, m * p / (position + 1))
                          for position, (p, _) in enumerate(tested) if position >= rank)
    return adjusted


P_VECTORS = [
    [0.01, 0.04, 0.03, 0.005],
    [0.02, 0.02, 0.02, 0.5, 0.001],
    [0.3, float("nan"), 0.01, 0.6, float("nan"), 0.04],
    [0.9, 0.8, 0.95],
    [0.0, 1.0],
    list(np.random.default_rng(0).random(25) ** 3),
]


@pytest.mark.parametrize("p_values", P_VECTORS)
def test_adjustments_match_loops(p_values: list[float]) -> None:
    np.testing.assert_allclose(bs.holm(p_values), loop_holm(p_values), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(bs.benjamini_hochberg(p_values), loop_benjamini_hochberg(p_values),
                               rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("p_values", [v for v in P_VECTORS if not np.isnan(v).any()])
def test_benjamini_hochberg_matches_scipy(p_values: list[float]) -> None:
    np.testing.assert_allclose(bs.benjamini_hochberg(p_values), false_discovery_control(p_values),
                               rtol=1e-12)


def test_adjustments_by_hand() -> None:
    """Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04, then running
    maximum; BH: times 4/1, 4/2, 4/3, 4/4 = 0.02, 0.02, 0.04, 0.04, then running minimum from the top."""
    p_values = [0.01, 0.04, 0.03, float("nan"), 0.005]
    np.testing.assert_allclose(bs.holm(p_values), [0.03, 0.06, 0.06, np.nan, 0.02], equal_nan=True)
    np.testing.assert_allclose(bs.benjamini_hochberg(p_values), [0.02, 0.04, 0.04, np.nan, 0.02],
                               equal_nan=True)
    np.testing.assert_allclose(bs.holm([0.4, 0.5]), [0.8, 0.8])
    np.testing.assert_allclose(bs.holm([0.6, 0.7]), [1.0, 1.0])


def test_adjustments_refuse_invalid_p_values() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bs.holm([0.5, 1.2])


# --- planning ---------------------------------------------------------------------------------

def test_seeds_needed_by_hand() -> None:
    """z = 1.959964; (1.5 / z)^2 = 0.585715; minus 0.5^2 leaves 0.335715 for 2^2 / m: m = 11.91."""
    assert bs.seeds_needed(seed_std=2.0, test_se=0.5, target_half_width=1.5) == 12
    # 90%: z = 1.644854, (1.5 / z)^2 = 0.831649, 4 / 0.581649 = 6.88.
    assert bs.seeds_needed(seed_std=2.0, test_se=0.5, target_half_width=1.5, confidence=0.9) == 7
    # The test-set error alone (1.96 x 0.8 = 1.57) exceeds 1.5: no number of seeds helps.
    assert bs.seeds_needed(seed_std=2.0, test_se=0.8, target_half_width=1.5) is None
    # 0.01 / 0.25 would need under one seed: still two, to see seed variation at all.
    assert bs.seeds_needed(seed_std=0.1, test_se=0.1, target_half_width=1.0) == 2


def test_examples_needed_by_hand() -> None:
    """(1 / z)^2 = 0.260317 minus 1 / 5 leaves 0.060317 for 0.8^2 x 1000 / n: n = 10610.5."""
    needed = bs.examples_needed(seed_std=1.0, test_se=0.8, n_test=1000, seeds=5, target_half_width=1.0)
    assert needed == 10611

    def half_width(n: int) -> float:
        return 1.959964 * math.sqrt(1.0 / 5 + 0.8**2 * 1000 / n)

    assert half_width(needed) <= 1.0 < half_width(needed - 1)
    # With 3 seeds the seed term alone, 1.96 x sqrt(1 / 3) = 1.13, exceeds the target.
    assert bs.examples_needed(seed_std=1.0, test_se=0.8, n_test=1000, seeds=3, target_half_width=1.0) is None
