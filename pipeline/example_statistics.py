"""Per-example additive statistics of the metrics we report, each with the aggregate that rebuilds
the corpus metric from their sums (see `pipeline.bootstrap`). On the full test set every builder
reproduces the library the task reports with (scikit-learn, seqeval, sacreBLEU), so resampled
values are that same metric recomputed, not an approximation of it.

sacreBLEU and seqeval are imported inside the builders that need them, to keep this module light.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from pipeline.bootstrap import ExampleStatistics

# sacreBLEU's defaults, which the translation task reports with.
BLEU_ORDER = 4
CHRF_CHAR_ORDER = 6
CHRF_BETA = 2


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator with 0 / 0 = 0: the zero_division=0 of scikit-learn and seqeval."""
    numerator, denominator = np.broadcast_arrays(np.asarray(numerator, dtype=float),
                                                 np.asarray(denominator, dtype=float))
    return np.divide(numerator, denominator, out=np.zeros(numerator.shape), where=denominator != 0)


def _same_length(first: Sequence, second: Sequence) -> None:
    if len(first) != len(second):
        raise ValueError(f"one prediction per reference is needed: got {len(first)} references "
                         f"and {len(second)} predictions")


def _ratio(sums: np.ndarray) -> np.ndarray:
    return _divide(sums[..., 0], sums[..., 1])


def ratio(numerators: Sequence[float], denominators: Sequence[float]) -> ExampleStatistics:
    """sum(numerators) / sum(denominators): any "hits over trials" metric (e.g. a language model's
    token accuracy from per-block hits and scored tokens)."""
    _same_length(denominators, numerators)
    return ExampleStatistics(np.column_stack([numerators, denominators]).astype(float), _ratio)


def mean_score(scores: Sequence[float]) -> ExampleStatistics:
    """The mean of a per-example score: metrics reported as such an average (ROUGE F1 x 100 as the
    summarization task reports it, SQuAD exact match and F1, a mean loss)."""
    return ratio(scores, np.ones(len(scores)))


def perplexity(loss_sums: Sequence[float], token_counts: Sequence[int]) -> ExampleStatistics:
    """exp(total loss / scored tokens): weighting blocks by their scored tokens, as the corpus
    perplexity does."""
    _same_length(token_counts, loss_sums)
    return ExampleStatistics(np.column_stack([loss_sums, token_counts]).astype(float),
                             lambda sums: np.exp(_ratio(sums)))


def accuracy(references: Sequence[Hashable], predictions: Sequence[Hashable]) -> ExampleStatistics:
    """Share of exact matches, as scikit-learn's accuracy_score."""
    _same_length(references, predictions)
    correct = [reference == prediction for reference, prediction in zip(references, predictions, strict=True)]
    return ratio(correct, np.ones(len(correct)))


def _confusion(references: Sequence[Hashable], predictions: Sequence[Hashable],
               labels: Sequence[Hashable]) -> np.ndarray:
    """Per example one-hot [TP | FP | FN] over `labels`; a label outside them is no class, as in
    scikit-learn with labels=...: predicting it is a miss of the true class but no false positive."""
    _same_length(references, predictions)
    position = {label: i for i, label in enumerate(labels)}
    if len(position) != len(labels):
        raise ValueError("labels must be distinct")
    counts = np.zeros((len(references), 3, len(labels)))
    for row, (reference, prediction) in enumerate(zip(references, predictions, strict=True)):
        true_class, predicted_class = position.get(reference), position.get(prediction)
        if reference == prediction and true_class is not None:
            counts[row, 0, true_class] = 1
            continue
        if predicted_class is not None:
            counts[row, 1, predicted_class] = 1
        if true_class is not None:
            counts[row, 2, true_class] = 1
    return counts.reshape(len(references), -1)


def _confusion_sums(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp, fp, fn = np.split(sums, 3, axis=-1)
    return tp, fp, fn


def _macro_f1(sums: np.ndarray) -> np.ndarray:
    tp, fp, fn = _confusion_sums(sums)
    return _divide(2 * tp, 2 * tp + fp + fn).mean(axis=-1)


def _macro_precision(sums: np.ndarray) -> np.ndarray:
    tp, fp, _ = _confusion_sums(sums)
    return _divide(tp, tp + fp).mean(axis=-1)


def _macro_recall(sums: np.ndarray) -> np.ndarray:
    tp, _, fn = _confusion_sums(sums)
    return _divide(tp, tp + fn).mean(axis=-1)


def macro_f1(references: Sequence[Hashable], predictions: Sequence[Hashable],
             labels: Sequence[Hashable]) -> ExampleStatistics:
    """Unweighted mean over `labels` of per-class F1. Pass every class: the average runs over the
    labels given, and a class missing from a resample still counts (as 0)."""
    return ExampleStatistics(_confusion(references, predictions, labels), _macro_f1)


def macro_precision(references: Sequence[Hashable], predictions: Sequence[Hashable],
                    labels: Sequence[Hashable]) -> ExampleStatistics:
    """Mean over `labels` of per-class precision (0 for a class never predicted)."""
    return ExampleStatistics(_confusion(references, predictions, labels), _macro_precision)


def macro_recall(references: Sequence[Hashable], predictions: Sequence[Hashable],
                 labels: Sequence[Hashable]) -> ExampleStatistics:
    """Mean over `labels` of per-class recall (0 for a class absent from the references)."""
    return ExampleStatistics(_confusion(references, predictions, labels), _macro_recall)


def _entity_counts(reference_tags: Sequence[Sequence[str]],
                   predicted_tags: Sequence[Sequence[str]]) -> np.ndarray:
    """Per sentence [correct, predicted, gold] entities, as seqeval's default (conlleval) mode
    chunks them: entities never cross sentences, so the counts add up over sentences."""
    from seqeval.metrics.sequence_labeling import get_entities

    _same_length(reference_tags, predicted_tags)
    rows = []
    for reference, prediction in zip(reference_tags, predicted_tags, strict=True):
        _same_length(reference, prediction)
        gold, predicted = set(get_entities(list(reference))), set(get_entities(list(prediction)))
        rows.append((len(gold & predicted), len(predicted), len(gold)))
    return np.array(rows, dtype=float).reshape(-1, 3)


def _entity_f1(sums: np.ndarray) -> np.ndarray:
    return _divide(2 * sums[..., 0], sums[..., 1] + sums[..., 2])


def entity_f1(reference_tags: Sequence[Sequence[str]],
              predicted_tags: Sequence[Sequence[str]]) -> ExampleStatistics:
    """Micro-averaged entity F1 (seqeval's default): 2 correct / (predicted + gold)."""
    return ExampleStatistics(_entity_counts(reference_tags, predicted_tags), _entity_f1)


def entity_precision(reference_tags: Sequence[Sequence[str]],
                     predicted_tags: Sequence[Sequence[str]]) -> ExampleStatistics:
    """Correct / predicted entities (seqeval's default precision)."""
    return ExampleStatistics(_entity_counts(reference_tags, predicted_tags),
                             lambda sums: _divide(sums[..., 0], sums[..., 1]))


def entity_recall(reference_tags: Sequence[Sequence[str]],
                  predicted_tags: Sequence[Sequence[str]]) -> ExampleStatistics:
    """Correct / gold entities (seqeval's default recall)."""
    return ExampleStatistics(_entity_counts(reference_tags, predicted_tags),
                             lambda sums: _divide(sums[..., 0], sums[..., 2]))


def tag_accuracy(reference_tags: Sequence[Sequence[str]],
                 predicted_tags: Sequence[Sequence[str]]) -> ExampleStatistics:
    """Correct tags / tags over the corpus (seqeval's accuracy_score): long sentences weigh more."""
    _same_length(reference_tags, predicted_tags)
    correct, tags = [], []
    for reference, prediction in zip(reference_tags, predicted_tags, strict=True):
        _same_length(reference, prediction)
        correct.append(sum(tag == guess for tag, guess in zip(reference, prediction, strict=True)))
        tags.append(len(reference))
    return ratio(correct, tags)


def _bleu(sums: np.ndarray) -> np.ndarray:
    """sacreBLEU's corpus BLEU (exp smoothing) from summed [hyp_len, ref_len, matches 1..4,
    totals 1..4]: an order without matches gets precision 1 / (2^k total) for its k-th such order;
    no match at all, or an order with no n-gram, gives 0."""
    hyp_len, ref_len = sums[..., 0], sums[..., 1]
    matches, totals = sums[..., 2:2 + BLEU_ORDER], sums[..., 2 + BLEU_ORDER:]
    halvings = np.cumsum(matches == 0, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precisions = np.where(matches > 0, matches, 0.5**halvings) * 100.0 / totals
        brevity = np.where(hyp_len < ref_len, np.exp(1 - ref_len / hyp_len), 1.0)
        score = brevity * np.exp(np.log(precisions).mean(axis=-1))
    defined = (matches.sum(axis=-1) > 0) & np.all(totals > 0, axis=-1)
    return np.where(defined, score, 0.0)


def _chrf(sums: np.ndarray) -> np.ndarray:
    """sacreBLEU's chrF (effective-order averaging, no eps smoothing) from summed
    [hyp, ref, match] character n-gram counts per order: precision and recall are averaged over
    the orders where both hypothesis and reference have n-grams, then combined as F-beta."""
    per_order = sums.reshape(*sums.shape[:-1], CHRF_CHAR_ORDER, 3)
    hyp, ref, match = per_order[..., 0], per_order[..., 1], per_order[..., 2]
    effective = (hyp > 0) & (ref > 0)
    orders = effective.sum(axis=-1)
    precision = _divide(np.where(effective, _divide(match, hyp), 0.0).sum(axis=-1), orders)
    recall = _divide(np.where(effective, _divide(match, ref), 0.0).sum(axis=-1), orders)
    factor = CHRF_BETA**2
    return 100 * _divide((1 + factor) * precision * recall, factor * precision + recall)


def _sacrebleu_statistics(metric: object, hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """sacreBLEU's own per-segment statistics (one reference per segment), so tokenization and
    n-gram matching are exactly those of its corpus scores."""
    _same_length(references, hypotheses)
    return np.array(metric._extract_corpus_statistics(list(hypotheses), [list(references)]), dtype=float)


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> ExampleStatistics:
    """sacreBLEU's corpus BLEU with its defaults (13a tokenization, case-sensitive, exp smoothing)."""
    from sacrebleu.metrics import BLEU

    return ExampleStatistics(_sacrebleu_statistics(BLEU(), hypotheses, references), _bleu)


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> ExampleStatistics:
    """sacreBLEU's corpus chrF with its defaults (character order 6, no word n-grams, beta 2)."""
    from sacrebleu.metrics import CHRF

    metric = CHRF(char_order=CHRF_CHAR_ORDER, word_order=0, beta=CHRF_BETA)
    return ExampleStatistics(_sacrebleu_statistics(metric, hypotheses, references), _chrf)
