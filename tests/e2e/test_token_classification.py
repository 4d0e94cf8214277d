"""The real `dvc repro` of token classification on a slice of CoNLL-2003 with a tiny model:
per-label scores, the label distribution, MLflow and entity prediction."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO
from tests.e2e.project import make_project, run

CONLL = REPO.parent / "shared/data/conll2003"
TINY_NER_EXPERIMENT = f"""\
# @package _global_
defaults:
  - /model@models.tiny: tiny_bert_scratch
  - override /task: token_classification
  - override /dataset: conll2003

experiment_name: e2e_tiny
seeds: [1]
dataset:
  path: {CONLL}
  max_rows: {{train: 300, validation: 60, test: 60}}
train:
  epochs: 2
  batch_size: 16
  metric_for_best_model: f1
  class_weighted_loss: true
"""


@pytest.fixture(scope="module")
def ner_project(tmp_path_factory) -> Path:
    if not CONLL.is_dir():
        pytest.skip(f"{CONLL} is not here (it exists on the build machines)")
    root = make_project(tmp_path_factory.mktemp("ner"), TINY_NER_EXPERIMENT)
    run(["dvc", "repro"], root)
    return root


def test_token_classification_fills_results_per_label_and_mlflow(ner_project):
    results = pd.read_csv(ner_project / "reports/results.csv")
    assert results["status"].tolist() == ["success"]
    assert {"base_f1", "finetuned_f1", "improvement_f1", "finetuned_precision",
            "finetuned_recall", "finetuned_accuracy"} <= set(results.columns)
    per_label = pd.read_csv(ner_project / "reports/per_label.csv")
    assert set(per_label["label"]) == {"LOC", "MISC", "ORG", "PER"}
    assert set(per_label["stage"]) == {"base", "finetuned"}
    distribution = pd.read_csv(ner_project / "reports/label_distribution.csv")
    assert set(distribution["split"]) == {"train", "validation", "test"}
    assert distribution.groupby("split")["share"].sum().round(4).eq(1).all()
    assert "B-PER" in set(distribution["label"]) and "I-PER" in set(distribution["label"])
    client = MlflowClient(tracking_uri=f"sqlite:///{ner_project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("token_classification/conll2003")
    (mlflow_run,) = client.search_runs([experiment.experiment_id], "tags.purpose = 'fine-tune'")
    assert "finetuned_PER_f1" in mlflow_run.data.metrics
    assert mlflow_run.data.metrics["finetuned_f1"] == pytest.approx(
        results["finetuned_f1"].item(), abs=1e-5)
    artifacts = {item.path for item in client.list_artifacts(mlflow_run.info.run_id)}
    assert "label_distribution.json" in artifacts


def test_token_classification_predict_returns_entities(ner_project):
    result = run([sys.executable, "-m", "pipeline.predict", "tiny", "1", "--json",
                  "Peter Blackburn flew to New York ."], ner_project)
    (line,) = [json.loads(text) for text in result.stdout.splitlines()]
    words = line["input"].split()
    assert line["input"] == "Peter Blackburn flew to New York ."
    assert len(line["tags"]) == len(words)
    assert {tag.split("-")[-1] for tag in line["tags"]} <= {"O", "PER", "LOC", "ORG", "MISC"}
    assert [(entity["word"], entity["label"]) for entity in line["entities"]] == \
        entities_of(words, line["tags"])
    for entity in line["entities"]:
        assert line["input"][entity["start"]:entity["end"]] == entity["word"]
        assert 0 < entity["score"] <= 1


def entities_of(words: list[str], tags: list[str]) -> list[tuple[str, str]]:
    """IOB2 chunks, counted here independently: B-X starts one, I-X right after an X continues
    it, an I-X after anything else starts one."""
    chunks: list[tuple[list[str], str]] = []
    previous = None
    for word, tag in zip(words, tags, strict=True):
        kind = None if tag == "O" else tag[2:]
        if kind is not None and kind == previous and tag.startswith("I-"):
            chunks[-1][0].append(word)
        elif kind is not None:
            chunks.append(([word], kind))
        previous = kind
    return [(" ".join(chunk), label) for chunk, label in chunks]
