import math

import pytest
from datasets import Dataset

from pipeline.pretraining import unigram_perplexity

# Training tokens 0, 0, 1, 1, 2, 0: add-one counts over a vocabulary of 4 are 4, 3, 2, 1 (of 10).
TRAIN = Dataset.from_dict({"input_ids": [[0, 0, 1], [1, 2, 0]]})


def test_the_unigram_perplexity_scores_causal_next_tokens_by_training_frequency():
    validation = Dataset.from_dict({"labels": [[3, 0, 1], [3, 2]]})  # block starts are not scored
    blocks = {"train": TRAIN, "validation": validation}
    expected = math.exp(-(math.log(0.4) + math.log(0.3) + math.log(0.2)) / 3)
    assert unigram_perplexity(blocks, 4, causal=True) == pytest.approx(expected)


def test_the_unigram_perplexity_of_a_masked_lm_scores_the_masked_tokens():
    validation = Dataset.from_dict({"labels": [[-100, 0, -100], [2, -100], [-100, 3]]})
    blocks = {"train": TRAIN, "validation": validation}
    expected = math.exp(-(math.log(0.4) + math.log(0.2) + math.log(0.1)) / 3)
    assert unigram_perplexity(blocks, 4, causal=False) == pytest.approx(expected)
