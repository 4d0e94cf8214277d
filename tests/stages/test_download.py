"""The download stage's handling of inputs repeated across splits."""

import pandas as pd
import yaml

from pipeline.compose import compose
from pipeline.config import DatasetConfig, TaskConfig, build
from pipeline.stages.download import without_repeats
from pipeline.tasks.text_classification import TextClassification
from tests.conftest import REPO

TASK = TextClassification(TaskConfig("text_classification"))


def dataset(**changes) -> DatasetConfig:
    base = yaml.safe_load(compose([], REPO / "conf"))["dataset"]
    return build(DatasetConfig, {**base, **changes}, "dataset")


def splits() -> dict[str, pd.DataFrame]:
    def frame(texts: list[str]) -> pd.DataFrame:
        return pd.DataFrame({"text": texts, "label": ["a", "b"] * (len(texts) // 2)})

    return {"train": frame(["one", "two", "three", "four"]),
            "validation": frame(["two ", "five"]),
            "test": frame(["six", " one", "five", "seven"])}


def test_repeated_inputs_are_counted_and_kept_by_default(caplog):
    kept, counts = without_repeats(splits(), TASK, dataset())
    assert counts == {"validation": 1, "test": 2, "dropped": False}
    assert [len(frame) for frame in kept.values()] == [4, 2, 4]
    assert "inputs also found in an earlier split: {'validation': 1, 'test': 2}" in caplog.text


def test_repeated_inputs_can_be_dropped_from_validation_and_test():
    kept, counts = without_repeats(splits(), TASK, dataset(drop_duplicates_across_splits=True))
    assert counts["dropped"] is True
    assert kept["validation"]["text"].tolist() == ["five"]
    assert kept["test"]["text"].tolist() == ["six", "seven"]
    assert kept["train"]["text"].tolist() == ["one", "two", "three", "four"]
