import numpy as np
import pandas as pd
import pytest
import yaml
from datasets import Dataset
from transformers import AutoTokenizer

from pipeline.compose import compose
from pipeline.config import DatasetConfig, TaskConfig, build
from pipeline.errors import DataError
from pipeline.tasks.text_classification import TextClassification
from tests.conftest import REPO

TASK = TextClassification(TaskConfig("text_classification"))
MANIFEST = {"labels": ["neg", "neutral", "pos"]}


def dataset_config(**changes) -> DatasetConfig:
    base = yaml.safe_load(compose([], REPO / "conf"))["dataset"]
    base.update(changes)
    return build(DatasetConfig, base, "dataset")


def test_metrics_match_a_hand_count():
    labels = np.array([0, 0, 1, 2, 2, 2])
    predicted = np.array([0, 1, 1, 2, 2, 0])
    logits = np.eye(3)[predicted] * 5.0
    scalars, report = TASK.metrics(logits, labels, MANIFEST)
    assert scalars["accuracy"] == pytest.approx(4 / 6)
    # neg: P 1/2 R 1/2; neutral: P 1/2 R 1; pos: P 1 R 2/3
    f1 = {"neg": 0.5, "neutral": 2 / 3, "pos": 0.8}
    for name, value in f1.items():
        assert report["per_label"][name]["f1"] == pytest.approx(value)
    assert report["per_label"]["pos"]["support"] == 3
    assert scalars["macro_f1"] == pytest.approx(np.mean(list(f1.values())))
    assert scalars["macro_precision"] == pytest.approx((0.5 + 0.5 + 1) / 3)
    assert scalars["macro_recall"] == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    assert all(type(value) is float for value in scalars.values())


def test_prepare_keeps_text_and_label_and_drops_unwanted_labels():
    raw = pd.DataFrame({"category": ["fresh", "plot", "rotten", "fresh"],
                        "text": ["good", "a plot", "bad", "  "], "movie": list("abcd")})
    prepared = TASK.prepare(raw, dataset_config(), "test data")
    assert prepared.to_dict("records") == [{"text": "good", "label": "fresh"},
                                           {"text": "bad", "label": "rotten"}]


def test_sentence_pairs_keep_both_texts():
    raw = pd.DataFrame({"s1": ["a", "b"], "s2": ["c", "d"], "y": [0, 1]})
    cfg = dataset_config(text_columns=["s1", "s2"], label_column="y", drop_labels=[])
    prepared = TASK.prepare(raw, cfg, "pairs")
    assert list(prepared.columns) == ["text", "text_pair", "label"]
    assert list(prepared["label"]) == ["0", "1"]


def test_missing_column_lists_what_the_data_has():
    raw = pd.DataFrame({"review": ["x"], "category": ["fresh"]})
    with pytest.raises(DataError, match=r"missing column\(s\) \['text'\]; the data has "
                                        r"\['review', 'category'\]"):
        TASK.prepare(raw, dataset_config(), "train data")


def test_label_unseen_in_train_is_refused():
    splits = {"train": pd.DataFrame({"label": ["a", "b"]}),
              "validation": pd.DataFrame({"label": ["a"]}),
              "test": pd.DataFrame({"label": ["a", "c"]})}
    with pytest.raises(DataError, match=r"test split: label\(s\) \['c'\] never occur"):
        TASK.describe(splits)


def test_single_label_is_refused():
    with pytest.raises(DataError, match="at least two labels"):
        TASK.describe({"train": pd.DataFrame({"label": ["a", "a"]})})


def test_tokenize_encodes_pairs_and_label_ids(minilm_dir):
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    split = Dataset.from_dict({"text": ["a cat", "a dog"], "text_pair": ["sat", "ran off"],
                               "label": ["pos", "neg"]})
    encoded = TASK.tokenize(split, tokenizer, 16, MANIFEST, training=True)
    assert encoded["labels"] == [2, 0]
    assert set(encoded.column_names) >= {"input_ids", "attention_mask", "labels"}
    assert tokenizer.sep_token_id in encoded["input_ids"][0][1:-1]  # two segments
    assert 1 in encoded["token_type_ids"][1]


def test_prediction_table_has_reference_prediction_and_score():
    raw = pd.DataFrame({"text": ["x", "y"], "label": ["pos", "neg"]})
    logits = np.array([[0.0, 0.0, 3.0], [0.0, 3.0, 0.0]])
    table = TASK.prediction_table(raw, logits, MANIFEST, [2, 0])
    assert list(table["prediction"]) == ["pos", "neutral"]
    assert list(table["reference"]) == ["pos", "neg"]
    assert (table["score"] > 0.8).all()


def reviews(labels: list[object], texts: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame({"text": texts or [f"review {i}" for i in range(len(labels))],
                         "category": labels})


@pytest.mark.parametrize("missing", ["", "  ", "NA", "NaN", None])
def test_a_row_without_a_label_is_refused_naming_its_row(missing):
    raw = reviews(["pos", "neg", missing, "pos"])
    with pytest.raises(DataError, match=r"train data: 1 row\(s\) have no label in column 'category' "
                                        r"\(data rows 3, counting from 1"):
        TASK.prepare(raw, dataset_config(drop_labels=[]), "train data")


def test_rows_without_a_label_can_be_dropped_by_their_value():
    prepared = TASK.prepare(reviews(["pos", "", "neg"]), dataset_config(drop_labels=[""]), "x")
    assert prepared["label"].tolist() == ["pos", "neg"]


def test_rows_with_empty_text_are_dropped_and_counted(caplog):
    raw = reviews(["pos", "neg", "pos"], texts=["good", "  ", "fine"])
    prepared = TASK.prepare(raw, dataset_config(drop_labels=[]), "train data")
    assert prepared["text"].tolist() == ["good", "fine"]
    assert "train data: 1 of 3 rows dropped for empty text" in caplog.text


def test_labels_differing_only_by_case_or_spaces_are_refused_or_normalised():
    raw = reviews(["pos", "pos ", "Neg", "neg"])
    prepared = TASK.prepare(raw, dataset_config(drop_labels=[]), "x")
    split = {"train": prepared, "validation": prepared, "test": prepared}
    with pytest.raises(DataError, match=r"labels that differ only by case or surrounding spaces "
                                        r"would be separate classes: 'Neg' / 'neg'; 'pos' / "
                                        r"'pos '.*dataset.normalize_labels: true"):
        TASK.describe(split)
    normalised = TASK.prepare(raw, dataset_config(drop_labels=[], normalize_labels=True), "x")
    assert normalised["label"].tolist() == ["pos", "pos", "neg", "neg"]
    assert TASK.describe({"train": normalised, "validation": normalised,
                          "test": normalised})["labels"] == ["neg", "pos"]


@pytest.mark.parametrize("split", ["validation", "test"])
def test_an_evaluation_split_with_a_single_label_is_refused(split):
    splits = {"train": pd.DataFrame({"label": ["a", "b"]}),
              "validation": pd.DataFrame({"label": ["a", "b"]}),
              "test": pd.DataFrame({"label": ["b", "a"]})}
    splits[split] = pd.DataFrame({"label": ["b", "b"]})
    with pytest.raises(DataError, match=rf"{split} split: every example has the label \['b'\]"):
        TASK.describe(splits)


def test_inputs_are_whitespace_normalised_text_and_pair():
    frame = pd.DataFrame({"text": ["a  b\n", "c"], "text_pair": ["x", " y  z"]})
    assert TASK.inputs(frame).tolist() == ["a b ||| x", "c ||| y z"]
