import io
import json
import re
import string
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from datasets import Dataset
from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering
from transformers.modeling_outputs import QuestionAnsweringModelOutput

from pipeline.config import DatasetConfig, ModelConfig, TaskConfig, build
from pipeline.errors import ConfigError, DataError
from pipeline.tasks.question_answering import (
    QuestionAnswering,
    Window,
    best_answer,
    span_logits,
    span_loss,
    squad_scores,
)

TASK = QuestionAnswering(TaskConfig("question_answering", doc_stride=8))
MANIFEST = {"dataset": "qa", "source": {"path": "data/qa.json"}}


def reference_scores(predictions: list[str], references: list[list[str]]) -> dict[str, float]:
    """SQuAD 2.0's evaluation, written independently of the adapter: normalize by lower
    case, punctuation, articles and spaces; best exact match and token F1 over the gold
    answers; an unanswerable question (no gold) is right only for an empty prediction."""

    def words(text: str) -> list[str]:
        text = re.sub(f"[{re.escape(string.punctuation)}]", "", text.lower())
        return [word for word in text.split() if word not in ("a", "an", "the")]

    def f1(predicted: list[str], gold: list[str]) -> float:
        if not predicted or not gold:
            return float(predicted == gold)
        common = 0
        remaining = list(gold)
        for word in predicted:
            if word in remaining:
                remaining.remove(word)
                common += 1
        return 0.0 if common == 0 else 2 * common / (len(predicted) + len(gold))

    exact, overlap, answerable = [], [], []
    for prediction, golds in zip(predictions, references, strict=True):
        gold_words = [words(gold) for gold in golds if words(gold)] or [[]]
        exact.append(100 * max(float(words(prediction) == gold) for gold in gold_words))
        overlap.append(100 * max(f1(words(prediction), gold) for gold in gold_words))
        answerable.append(bool(golds))
    frame = pd.DataFrame({"exact": exact, "f1": overlap, "answerable": answerable})
    scores = {"exact_match": frame["exact"].mean(), "f1": frame["f1"].mean()}
    if not frame["answerable"].all():
        for name, part in (("has_answer", frame[frame["answerable"]]),
                           ("no_answer", frame[~frame["answerable"]])):
            scores[f"{name}_exact"], scores[f"{name}_f1"] = part["exact"].mean(), part["f1"].mean()
    return scores


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    return AutoTokenizer.from_pretrained(minilm_dir)


def qa_config(**changes) -> DatasetConfig:
    base = {"name": "qa", "source": "local", "path": ".", "text_columns": ["question", "context"],
            "label_column": "answers", "id_column": "id", **changes}
    return build(DatasetConfig, base, "dataset")


def questions(*rows: tuple[str, str, str, list[str], list[int]]) -> pd.DataFrame:
    return pd.DataFrame([{"id": identifier, "question": question, "context": context,
                          "answers": {"text": texts, "answer_start": starts}}
                         for identifier, question, context, texts, starts in rows])


def windows_of(frame: pd.DataFrame, tokenizer, max_length: int, training: bool,
               task: QuestionAnswering = TASK) -> Dataset:
    prepared = task.prepare(frame, qa_config(), "data/qa.json")
    return task.tokenize(Dataset.from_pandas(prepared), tokenizer, max_length, MANIFEST, training)


def token_id(tokenizer, word: str, last: bool = False) -> int:
    """The id of the first (or last) token of `word`."""
    return tokenizer.convert_tokens_to_ids(tokenizer.tokenize(word))[-1 if last else 0]


class SpotModel(torch.nn.Module):
    """A rigged QA model: the start logit is high on one token id, the end logit on another."""

    def __init__(self, start_id: int, end_id: int) -> None:
        super().__init__()
        self.start_id, self.end_id = start_id, end_id
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(max_position_embeddings=512, is_encoder_decoder=False)

    def forward(self, input_ids, **_) -> QuestionAnsweringModelOutput:
        return QuestionAnsweringModelOutput(start_logits=(input_ids == self.start_id) * 10.0,
                                            end_logits=(input_ids == self.end_id) * 10.0)


def test_squad_scores_equal_an_independent_computation():
    predictions = ["The Eiffel Tower!", "in Paris", "the big red dog", "", "somewhere", "1,000",
                   "the the cat cat", ""]
    references = [["Eiffel tower"], ["Paris, France", "in Paris"], ["a red dog barked"], [], [],
                  ["1000"], ["cat"], ["Rome"]]
    scores = squad_scores(predictions, references)
    expected = reference_scores(predictions, references)
    assert scores == pytest.approx(expected)
    per_question_f1 = [100, 100, 100 * 2 / 3, 100, 0, 100, 100 * 2 / 3, 0]
    assert scores["f1"] == pytest.approx(np.mean(per_question_f1))
    assert scores["exact_match"] == 50
    assert scores["no_answer_exact"] == 50 and scores["has_answer_exact"] == 50
    answerable_only = squad_scores(predictions[:3], references[:3])
    assert set(answerable_only) == {"f1", "exact_match"}


def test_prepare_checks_answers_and_groups_by_title_or_context():
    frame = questions(("q1", " Where? ", "Paris is in France.", ["Paris", "France"], [0, 12]),
                      ("q2", "What?", "Rome.", [], []))
    frame["title"] = ["Paris", ""]
    prepared = TASK.prepare(frame, qa_config(title_column="title"), "data/qa.json")
    assert list(prepared.columns) == ["id", "question", "context", "answers", "group"]
    assert prepared["question"].tolist() == ["Where?", "What?"]
    assert prepared["group"].tolist() == ["Paris", "Rome."]
    assert prepared["answers"][0] == {"text": ["Paris", "France"], "answer_start": [0, 12]}
    as_json = frame.assign(answers=[json.dumps(a) for a in frame["answers"]])
    assert TASK.prepare(as_json, qa_config(), "x")["answers"].tolist() == prepared["answers"].tolist()


def test_an_answer_start_that_misses_its_text_names_file_question_and_fix():
    frame = questions(("q7", "Where?", "It is in Paris.", ["Paris"], [3]))
    with pytest.raises(DataError, match=r"data/qa.json: question 'q7': answer 'Paris' does not start "
                                        r"at character 3 of its context \(found 'is in'\); the "
                                        r"text occurs at character 9. Fix its answer_start."):
        TASK.prepare(frame, qa_config(), "data/qa.json")


def test_a_question_without_context_or_columns_is_refused():
    frame = questions(("q3", "Where?", "", [], []))
    with pytest.raises(DataError, match=r"data/qa.json: question 'q3' has no context"):
        TASK.prepare(frame, qa_config(), "data/qa.json")
    with pytest.raises(DataError, match=r"missing column\(s\) \['title'\]; the data has \['id', "
                                        r"'question', 'context', 'answers'\].*format: squad"):
        TASK.prepare(frame, qa_config(title_column="title"), "data/qa.json")


def test_unanswerable_questions_need_the_setting_and_splits_never_share_a_context():
    frame = TASK.prepare(questions(("a", "Q?", "One.", ["One"], [0]), ("b", "Q?", "Two.", [], []),
                                   ("c", "Q?", "Three.", ["Three"], [0])), qa_config(), "x")
    splits = {"train": frame.iloc[[0, 1]], "validation": frame.iloc[[2]], "test": frame.iloc[[2]]}
    with pytest.raises(DataError, match=r"train split: 1 question\(s\) have no answer \(e.g. 'b'\). "
                                        "Set task.unanswerable: true"):
        TASK.describe(splits)
    squad2 = QuestionAnswering(TaskConfig("question_answering", unanswerable=True))
    with pytest.raises(DataError, match="the validation and test splits share 1 context"):
        squad2.describe(splits)
    splits["test"] = splits["train"].iloc[[1]].assign(context="Four.")
    description = squad2.describe(splits)
    assert description["questions"]["train"] == {"questions": 2, "contexts": 2, "groups": 2,
                                                 "unanswerable": 1}


def test_training_windows_label_the_answer_tokens_or_the_first_token(tokenizer):
    context = ("Filler words come first here. " * 6) + "The tower stands in Paris, France."
    start = context.index("Paris")
    frame = questions(("q1", "Where is the tower?", context, ["Paris, France"], [start]))
    windows = windows_of(frame, tokenizer, max_length=32, training=True)
    assert len(windows) > 2 and set(windows.column_names) >= {"input_ids", "labels"}
    found = [tokenizer.decode(ids[first:last + 1]) for ids, (first, last)
             in zip(windows["input_ids"], windows["labels"], strict=True) if first]
    assert found == ["paris, france"]  # MiniLM lower-cases; only one window holds it whole
    assert windows["labels"][0] == [0, 0]
    held_out = windows_of(frame, tokenizer, max_length=32, training=False)
    assert held_out["example"] == [0] * len(held_out)
    assert held_out["offset_mapping"][0][:2] == [None, None]  # [CLS] and the question
    assert held_out["answers"][0] == ["Paris, France"]


def test_an_answer_in_a_later_window_is_found_and_cut_from_the_context(tokenizer):
    """A context four windows long whose answer lies in its last window: the rigged model
    points at the answer's first and last token, so post-processing must take the span from
    that window and map its offsets back to the original (cased) context."""
    context = ("Nothing to see in this sentence. " * 8) + "The treaty was signed in Zanzibar City."
    frame = questions(("q1", "Where was the treaty signed?", context, ["Zanzibar City"],
                       [context.index("Zanzibar")]),
                      ("q2", "Anything?", "Short text.", ["text"], [6]))
    windows = windows_of(frame, tokenizer, max_length=32, training=False)
    model = SpotModel(token_id(tokenizer, "Zanzibar"), token_id(tokenizer, "City", last=True))
    holding = [window for window, ids in enumerate(windows["input_ids"]) if model.start_id in ids]
    assert windows["example"].count(0) >= 4 and min(holding) >= 2
    scalars, report, predictions = TASK.evaluate(model, tokenizer, windows, MANIFEST, 3, "test")
    assert predictions == ["Zanzibar City", "Short"]
    assert scalars["exact_match"] == 50 and report["questions"] == 2


def test_no_answer_wins_only_where_allowed_and_beyond_the_threshold():
    offsets = [None, None, (0, 5), (6, 11), None]
    window = Window(np.array([3.0, 0, 2, 0, 0]), np.array([3.0, 0, 0, 1, 0]), offsets, 0)
    answer = best_answer("hello world", [window], 20, 30, allow_no_answer=False, threshold=0)
    assert (answer["answer"], answer["start"], answer["end"]) == ("hello world", 0, 11)
    assert best_answer("hello world", [window], 20, 30, True, 0)["answer"] == ""
    assert best_answer("hello world", [window], 20, 30, True, 5.0)["answer"] == "hello world"
    assert best_answer("hello world", [window], 20, 1, False, 0)["answer"] == "hello"


def test_loss_equals_the_models_own_on_unpadded_windows(tokenizer):
    torch.manual_seed(0)
    model = BertForQuestionAnswering(BertConfig(vocab_size=len(tokenizer), hidden_size=16,
                                                num_hidden_layers=1, num_attention_heads=2,
                                                intermediate_size=32)).eval()
    encoded = tokenizer("Who?", "Ada wrote it.", return_tensors="pt")
    with torch.no_grad():
        output = model(**encoded, start_positions=torch.tensor([5]),
                       end_positions=torch.tensor([5]))
    logits = span_logits(output).numpy()
    assert span_loss(logits, encoded["input_ids"].tolist(), [[5, 5]]) == pytest.approx(
        float(output.loss), rel=1e-5)


def test_doc_stride_too_large_is_refused_at_config_and_tokenize_time(tokenizer):
    with pytest.raises(ConfigError, match=r"task.doc_stride: 128 .* models.m.max_length 64"):
        QuestionAnswering(TaskConfig("question_answering")).check_model_config(
            ModelConfig(source="local", path=".", max_length=64), "models.m")
    frame = questions(("q9", "What is the name of the very long question here?", "Text.",
                       ["Text"], [0]))
    with pytest.raises(DataError, match=r"dataset 'qa' \(data/qa.json\), question 'q9': the "
                                        r"question takes 11 tokens, which leaves 2 of max_length "
                                        r"16 .* task.doc_stride \(8\) must be smaller"):
        windows_of(frame, tokenizer, max_length=16, training=True)


def test_a_tokenizer_without_offsets_is_refused(minilm_dir):
    from transformers.models.bert import BertTokenizerLegacy

    slow = BertTokenizerLegacy(vocab_file=str(minilm_dir / "vocab.txt"))
    frame = questions(("q1", "Who?", "Ada.", ["Ada"], [0]))
    with pytest.raises(DataError, match="BertTokenizerLegacy is not a fast"):
        windows_of(frame, slow, max_length=32, training=True)


def test_predict_answers_question_and_context_pairs(tokenizer):
    model = SpotModel(token_id(tokenizer, "Ada"), token_id(tokenizer, "Lovelace", last=True))
    (result,) = TASK.predict(["Who wrote it? ||| It was written by Ada Lovelace in 1843."],
                             model, tokenizer)
    assert (result["answer"], result["start"], result["end"]) == ("Ada Lovelace", 18, 30)
    assert result["question"] == "Who wrote it?" and 0 < result["score"] <= 1
    assert TASK.format_prediction(result).startswith("Ada Lovelace\t")
    with pytest.raises(DataError, match="input 1: question answering reads"):
        TASK.predict(["no separator here"], model, tokenizer)


def test_prediction_table_has_the_squad_columns():
    raw = TASK.prepare(questions(("q1", "Who?", "Ada and Bob.", ["Ada", "Bob"], [0, 8])),
                       qa_config(), "x")
    table = TASK.prediction_table(raw, ["Ada"], MANIFEST, None)
    assert list(table.columns) == ["id", "question", "context", "answers", "prediction"]
    assert json.loads(table["answers"][0]) == ["Ada", "Bob"]


def test_example_statistics_rebuild_the_scores_from_the_predictions_table():
    predictions = ["the Eiffel Tower", "Paris", "", "1889"]
    golds = [["Eiffel Tower"], ["in Paris", "Paris, France"], [], ["1887"]]
    table = pd.DataFrame({"id": list("abcd"), "question": ["q"] * 4, "context": ["c"] * 4,
                          "answers": [json.dumps(gold) for gold in golds],
                          "prediction": predictions})
    table = pd.read_csv(io.StringIO(table.to_csv(index=False)), keep_default_na=False)
    statistics = TASK.example_statistics(table, {})
    expected = reference_scores(predictions, golds)
    assert statistics["f1"].value == pytest.approx(expected["f1"])
    assert statistics["exact_match"].value == pytest.approx(expected["exact_match"])
