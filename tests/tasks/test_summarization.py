import pandas as pd
import pytest

from pipeline.config import TaskConfig
from pipeline.tasks.summarization import Summarization, lead, rouge, sentences

TASK = Summarization(TaskConfig("summarization", lead_sentences=2))


def test_sentences_end_at_full_stops_before_white_space():
    text = 'Profits rose 2.5% to $1.1bn. "It was good," he said! Shares (up 3%) rose?\nYes.'
    assert sentences(text) == ["Profits rose 2.5% to $1.1bn.", '"It was good," he said!',
                               "Shares (up 3%) rose?", "Yes."]
    assert lead(text, 2) == 'Profits rose 2.5% to $1.1bn. "It was good," he said!'


def test_rouge_is_stemmed_f1_times_100():
    perfect = rouge(["Shares jumped sharply."], ["Shares jumped sharply."])
    assert all(value == pytest.approx(100) for value in perfect.values())
    stemmed = rouge(["share jumps"], ["Shares jumped"])  # same stems
    assert stemmed["rouge1"] == pytest.approx(100)
    half = rouge(["profits rise"], ["profits fall"])
    assert half["rouge1"] == pytest.approx(50) and half["rouge2"] == pytest.approx(0)


def test_lead_baseline_scores_the_first_sentences_against_the_references():
    test = pd.DataFrame({"source": ["Oil prices fell. Markets rose. Other news.",
                                    "Team wins cup. Fans cheer. More."],
                         "target": ["Oil prices fell", "Team wins cup"]})
    scores = TASK.reference_scores(test)
    assert set(scores) == {"lead_rouge1", "lead_rouge2", "lead_rougeL", "lead_rougeLsum",
                           "lead_gen_words"}
    # "oil prices fell markets rose" vs "oil prices fell": P 3/5, R 1 -> F 0.75
    assert scores["lead_rouge1"] == pytest.approx((75 + 75) / 2)
    assert scores["lead_gen_words"] == pytest.approx(5)
