"""The download_extra stage: only an extra set's test split is read, and its labels must be
the main dataset's."""

import pandas as pd
import pytest

from pipeline.config import DatasetConfig, TaskConfig, build
from pipeline.errors import DataError
from pipeline.stages.download_extra import check_labels, extra_test_split
from pipeline.tasks.text_classification import TextClassification

TASK = TextClassification(TaskConfig("text_classification"))
WHERE = "evaluation.extra.other"


def extra_set(path, **changes) -> DatasetConfig:
    return build(DatasetConfig, {"name": "other", "source": "local", "path": str(path),
                                 "text_columns": ["text"], "label_column": "label",
                                 "watch": str(path), **changes}, WHERE)


def reviews(count: int) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"review number {i}" for i in range(count)],
                         "label": ["good", "bad"] * (count // 2)})


def test_only_the_test_file_is_read_when_splits_names_one(tmp_path):
    reviews(10).to_csv(tmp_path / "test.csv", index=False)
    (tmp_path / "train.csv").write_bytes(b"\xff\xfe not even text")  # never opened
    test, provenance = extra_test_split(extra_set(tmp_path, splits={"train": "train.csv",
                                                              "test": "test.csv"},
                                            max_rows={"test": 6}), TASK, WHERE)
    assert len(test) == 6 and set(test["label"]) == {"good", "bad"}
    assert list(provenance["files"]) == ["test"]


def test_without_splits_the_test_share_is_cut_from_the_whole_source(tmp_path):
    reviews(40).to_csv(tmp_path / "all.csv", index=False)
    test, _ = extra_test_split(extra_set(tmp_path / "all.csv", test_fraction=0.25), TASK, WHERE)
    assert len(test) == 10


def test_splits_without_a_test_split_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"evaluation.extra.other.splits: maps \['train'\] but "
                                        r"not test"):
        extra_test_split(extra_set(tmp_path, splits={"train": "train.csv"}), TASK, WHERE)


def test_labels_the_main_dataset_lacks_are_refused():
    check_labels({"labels": ["fresh"]}, {"labels": ["fresh", "rotten"]}, WHERE)
    with pytest.raises(DataError, match=r"evaluation.extra.other: label\(s\) \['bad', 'good'\] "
                                        r"are not labels of the main dataset \['fresh', "
                                        r"'rotten'\]"):
        check_labels({"labels": ["bad", "good"]}, {"labels": ["fresh", "rotten"]}, WHERE)
