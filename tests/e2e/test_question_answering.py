"""The real `dvc repro` of extractive question answering on a slice of XQuAD with a tiny
model: the predictions table, its scores recomputed independently, the split by article,
MLflow and `predict`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO
from tests.e2e.project import make_project, run
from tests.tasks.test_question_answering import reference_scores

XQUAD = REPO.parent / "shared/data/xquad/xquad.en.json.gz"
TINY_QA_EXPERIMENT = f"""\
# @package _global_
defaults:
  - /model@models.tiny: tiny_bert_scratch
  - override /task: question_answering
  - override /dataset: xquad_en

experiment_name: e2e_tiny
seeds: [1]
dataset:
  path: {XQUAD}
  max_rows: {{train: 120, validation: 30, test: 40}}
models:
  tiny:
    max_length: 128
task:
  doc_stride: 32
train:
  epochs: 1
  batch_size: 16
  metric_for_best_model: loss
"""


@pytest.fixture(scope="module")
def qa_project(tmp_path_factory) -> Path:
    if not XQUAD.is_file():
        pytest.skip(f"{XQUAD} is not here (it exists on the build machines)")
    root = make_project(tmp_path_factory.mktemp("qa"), TINY_QA_EXPERIMENT)
    run(["dvc", "repro"], root)
    return root


def test_splits_keep_articles_apart(qa_project):
    raw = qa_project / "data/raw/xquad_en"
    splits = {split: pd.read_parquet(raw / f"{split}.parquet")
              for split in ("train", "validation", "test")}
    assert {split: len(frame) for split, frame in splits.items()} == {
        "train": 120, "validation": 30, "test": 40}
    for column in ("context", "group"):
        seen = [set(frame[column]) for frame in splits.values()]
        assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])


def test_results_equal_a_squad_evaluation_of_the_predictions_table(qa_project):
    results = pd.read_csv(qa_project / "reports/results.csv")
    assert results["status"].tolist() == ["success"]
    table = pd.read_csv(qa_project / "reports/predictions/tiny-1.csv", keep_default_na=False,
                        dtype=str)
    assert list(table.columns) == ["id", "question", "context", "answers", "prediction"]
    assert len(table) == 40
    assert all(prediction in context for prediction, context
               in zip(table["prediction"], table["context"], strict=True))
    golds = [json.loads(answers) for answers in table["answers"]]
    expected = reference_scores(list(table["prediction"]), golds)
    assert results["finetuned_f1"].item() == pytest.approx(expected["f1"], abs=1e-4)
    assert results["finetuned_exact_match"].item() == pytest.approx(expected["exact_match"],
                                                                     abs=1e-4)
    assert {"base_f1", "improvement_f1", "base_exact_match", "finetuned_loss"} <= set(results)
    assert "## tiny-1" in (qa_project / "reports/examples.md").read_text()

    client = MlflowClient(tracking_uri=f"sqlite:///{qa_project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("question_answering/xquad_en")
    (cell,) = client.search_runs([experiment.experiment_id], "tags.purpose = 'fine-tune'")
    for name in ("base_f1", "finetuned_f1", "finetuned_exact_match", "improvement_f1"):
        assert cell.data.metrics[name] == pytest.approx(results[name].item(), abs=1e-4)


def test_predict_answers_a_question_about_a_context(qa_project):
    context = "The Normans were the people who in the 10th and 11th centuries gave their name " \
              "to Normandy, a region in France."
    result = run([sys.executable, "-m", "pipeline.predict", "tiny", "1", "--json",
                  "--question", "Where is Normandy?", "--question", "Who gave their name?",
                  "--context", context], qa_project)
    lines = [json.loads(text) for text in result.stdout.splitlines()]
    assert [line["question"] for line in lines] == ["Where is Normandy?", "Who gave their name?"]
    for line in lines:
        assert context[line["start"]:line["end"]] == line["answer"]
        assert 0 <= line["score"] <= 1
