"""Each builder's metric, on the full test set and on explicit resamples, against the library the
tasks report with (scikit-learn, seqeval, sacreBLEU), recomputed from the raw rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sacrebleu
from seqeval.metrics import accuracy_score as seqeval_accuracy
from seqeval.metrics import f1_score as seqeval_f1
from seqeval.metrics import precision_score as seqeval_precision
from seqeval.metrics import recall_score as seqeval_recall
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from pipeline import example_statistics as es

LABELS = [0, 1, 2, 3]
TAGS = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
WORDS = ["the", "a", "cat", "dog", "sat", "on", "mat", "and", "ran", "far", "away", "house", "red", "big",
         "small", "it", "is", "was", "."]


def draw_rows(n: int, rng: np.random.Generator, resamples: int = 4) -> list[np.ndarray]:
    return [rng.integers(0, n, size=n) for _ in range(resamples)]


def counts(rows: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(rows, minlength=n).astype(float)


def classification_data(seed: int, n: int = 120) -> tuple[list[int], list[int]]:
    """Labels 0-3 with label 3 never true, and predictions that include 4, a label outside the
    list: both edge cases of scikit-learn's labels= and zero_division=0."""
    rng = np.random.default_rng(seed)
    references = rng.integers(0, 3, size=n).tolist()
    predictions = [r if rng.random() < 0.6 else int(rng.integers(0, 5)) for r in references]
    return references, predictions


def tag_data(seed: int, sentences: int = 60) -> tuple[list[list[str]], list[list[str]]]:
    """Random tag sequences, including I- tags that open an entity and empty sentences."""
    rng = np.random.default_rng(seed)
    references, predictions = [], []
    for _ in range(sentences):
        length = int(rng.integers(0, 9))
        reference = [TAGS[i] for i in rng.integers(0, len(TAGS), size=length)]
        prediction = [tag if rng.random() < 0.7 else TAGS[int(rng.integers(0, len(TAGS)))]
                      for tag in reference]
        references.append(reference)
        predictions.append(prediction)
    return references, predictions


def sentence(rng: np.random.Generator, low: int = 1, high: int = 14) -> str:
    return " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), size=int(rng.integers(low, high))))


def translation_data(seed: int, n: int = 50) -> tuple[list[str], list[str]]:
    """Noisy copies of random references, some shorter (brevity penalty), with an empty
    hypothesis and a one-word one (orders without n-grams)."""
    rng = np.random.default_rng(seed)
    references = [sentence(rng) for _ in range(n)]
    hypotheses = []
    for reference in references:
        words = [w if rng.random() < 0.7 else WORDS[int(rng.integers(0, len(WORDS)))]
                 for w in reference.split()]
        hypotheses.append(" ".join(words[: max(1, len(words) - int(rng.integers(0, 3)))]))
    hypotheses[0], hypotheses[1] = "", "cat"
    return hypotheses, references


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_metrics_match_sklearn(seed: int) -> None:
    references, predictions = classification_data(seed)
    options = {"labels": LABELS, "average": "macro", "zero_division": 0}
    assert es.accuracy(references, predictions).value == pytest.approx(
        accuracy_score(references, predictions), abs=1e-12)
    assert es.macro_f1(references, predictions, LABELS).value == pytest.approx(
        f1_score(references, predictions, **options), abs=1e-12)
    assert es.macro_precision(references, predictions, LABELS).value == pytest.approx(
        precision_score(references, predictions, **options), abs=1e-12)
    assert es.macro_recall(references, predictions, LABELS).value == pytest.approx(
        recall_score(references, predictions, **options), abs=1e-12)


def test_resampled_macro_f1_is_sklearn_on_the_resampled_rows() -> None:
    references, predictions = classification_data(3)
    references, predictions = np.array(references), np.array(predictions)
    stats = es.macro_f1(references.tolist(), predictions.tolist(), LABELS)
    for rows in draw_rows(len(references), np.random.default_rng(0)):
        expected = f1_score(references[rows], predictions[rows], labels=LABELS, average="macro",
                            zero_division=0)
        assert stats.resampled(counts(rows, len(references))) == pytest.approx(expected, abs=1e-12)


def test_hand_made_macro_f1() -> None:
    """Class 0: TP 1, FN 1 -> F1 2/3; class 1: TP 1, FP 1 -> 2/3; class 2 absent -> 0."""
    stats = es.macro_f1([0, 0, 1], [0, 1, 1], [0, 1, 2])
    assert stats.value == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)


@pytest.mark.parametrize("seed", [0, 1])
def test_entity_metrics_match_seqeval(seed: int) -> None:
    references, predictions = tag_data(seed)
    assert es.entity_f1(references, predictions).value == pytest.approx(
        seqeval_f1(references, predictions, zero_division=0), abs=1e-12)
    assert es.entity_precision(references, predictions).value == pytest.approx(
        seqeval_precision(references, predictions, zero_division=0), abs=1e-12)
    assert es.entity_recall(references, predictions).value == pytest.approx(
        seqeval_recall(references, predictions, zero_division=0), abs=1e-12)
    assert es.tag_accuracy(references, predictions).value == pytest.approx(
        seqeval_accuracy(references, predictions), abs=1e-12)


def test_resampled_entity_f1_is_seqeval_on_the_resampled_sentences() -> None:
    references, predictions = tag_data(2)
    stats = es.entity_f1(references, predictions)
    for rows in draw_rows(len(references), np.random.default_rng(1)):
        expected = seqeval_f1([references[i] for i in rows], [predictions[i] for i in rows],
                              zero_division=0)
        assert stats.resampled(counts(rows, len(references))) == pytest.approx(expected, abs=1e-12)


def test_entity_f1_without_any_entity_is_zero() -> None:
    assert es.entity_f1([["O", "O"]], [["O", "O"]]).value == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bleu_and_chrf_match_sacrebleu(seed: int) -> None:
    hypotheses, references = translation_data(seed)
    assert es.bleu(hypotheses, references).value == pytest.approx(
        sacrebleu.corpus_bleu(hypotheses, [references]).score, abs=1e-9)
    assert es.chrf(hypotheses, references).value == pytest.approx(
        sacrebleu.corpus_chrf(hypotheses, [references]).score, abs=1e-9)


@pytest.mark.parametrize(("hypotheses", "references"), [
    (["the cat sat"], ["the cat sat on the mat"]),  # no 4-gram in the hypothesis: BLEU 0
    (["the cat sat on it"], ["the cat sat on the mat"]),  # shorter: brevity penalty
    (["the cat x the"], ["the cat sat the"]),  # no 3- nor 4-gram match: exp smoothing twice
    (["a b c d e f"], ["g h i j k l"]),  # nothing matches
    ([""], ["the cat"]),
    (["ab"], ["abc"]),  # chrF averages over the two character orders present...
    (["the cat sat"], ["cat"]),  # ...in both hypothesis and reference
    (["the cat sat on the mat today", "x"], ["the cat sat on the mat", "y"]),
])
def test_hand_made_bleu_and_chrf_match_sacrebleu(hypotheses: list[str], references: list[str]) -> None:
    assert es.bleu(hypotheses, references).value == pytest.approx(
        sacrebleu.corpus_bleu(hypotheses, [references]).score, abs=1e-9)
    assert es.chrf(hypotheses, references).value == pytest.approx(
        sacrebleu.corpus_chrf(hypotheses, [references]).score, abs=1e-9)


def assert_sacrebleu_on_resamples(hypotheses: list[str], references: list[str],
                                  resamples) -> None:
    """BLEU and chrF rebuilt from summed sentence statistics equal sacreBLEU's corpus scores
    of each resample's own segments."""
    bleu, chrf = es.bleu(hypotheses, references), es.chrf(hypotheses, references)
    for rows in resamples:
        sampled_hypotheses, sampled_references = [hypotheses[i] for i in rows], [references[i] for i in rows]
        weights = counts(rows, len(hypotheses))
        assert bleu.resampled(weights) == pytest.approx(
            sacrebleu.corpus_bleu(sampled_hypotheses, [sampled_references]).score, abs=1e-9)
        assert chrf.resampled(weights) == pytest.approx(
            sacrebleu.corpus_chrf(sampled_hypotheses, [sampled_references]).score, abs=1e-9)


def test_resampled_bleu_and_chrf_are_sacrebleu_on_the_resampled_segments() -> None:
    hypotheses, references = translation_data(3)
    assert_sacrebleu_on_resamples(hypotheses, references,
                                  draw_rows(len(hypotheses), np.random.default_rng(2)))


def test_resampled_bleu_and_chrf_on_short_segments() -> None:
    """Short segments: many resamples lack 3- or 4-gram matches (smoothing) or 4-grams at all."""
    rng = np.random.default_rng(5)
    references = [sentence(rng, 1, 5) for _ in range(12)]
    hypotheses = [sentence(rng, 1, 5) if i % 2 else " ".join(r.split()[:2]) for i, r in enumerate(references)]
    assert_sacrebleu_on_resamples(hypotheses, references,
                                  draw_rows(len(hypotheses), rng, resamples=20))


def test_mean_score_ratio_and_perplexity() -> None:
    scores = [0.5, 0.25, 1.0, 0.0]
    assert es.mean_score(scores).value == pytest.approx(0.4375)
    assert es.ratio([3, 1, 0], [4, 2, 2]).value == pytest.approx(0.5)
    assert es.perplexity([6.0, 2.0, 4.0], [3, 1, 2]).value == pytest.approx(math.exp(12.0 / 6.0))


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="one prediction per reference"):
        es.accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="one prediction per reference"):
        es.entity_f1([["O", "B-PER"]], [["O"]])
    with pytest.raises(ValueError, match="one prediction per reference"):
        es.bleu(["a"], ["a", "b"])
