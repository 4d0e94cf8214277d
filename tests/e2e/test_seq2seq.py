"""`dvc repro` of translation and summarization on tiny models and real data slices."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline.tasks.summarization import rouge
from tests.conftest import REPO
from tests.e2e.project import make_project, run

MULTI30K = REPO.parent / "shared/data/multi30k"
TINY_BART = """\
    tokenizer: {vocab_size: 600}
    architecture: {d_model: 64, encoder_layers: 1, decoder_layers: 1,
                   encoder_attention_heads: 2, decoder_attention_heads: 2,
                   encoder_ffn_dim: 128, decoder_ffn_dim: 128}
    max_length: 48
    train: {epochs: 3}
"""
TRANSLATION = f"""\
# @package _global_
defaults:
  - /language_pair: fr-en
  - /model@models.tiny_bart: bart_scratch
  - override /task: translation
  - override /dataset: multi30k

experiment_name: e2e_tiny
seeds: [1]
dataset:
  path: {MULTI30K}
  max_rows: {{train: 400, validation: 40, test: 40}}
models:
  tiny_bart:
{TINY_BART}
task:
  generation: {{num_beams: 2, max_new_tokens: 16}}
train:
  batch_size: 16
  learning_rate: 3.0e-3
  metric_for_best_model: loss
"""
SUMMARIZATION = f"""\
# @package _global_
defaults:
  - /model@models.minilm2minilm: minilm2minilm
  - /model@models.tiny_bart: bart_scratch
  - override /task: summarization
  - override /dataset: bbc_headlines

experiment_name: e2e_tiny
seeds: [1]
dataset:
  max_rows: {{train: 96, validation: 16, test: 16}}
models:
  minilm2minilm:
    max_length: 64
    train: {{epochs: 1}}
  tiny_bart:
{TINY_BART}
task:
  generation: {{num_beams: 2, max_new_tokens: 12}}
train:
  batch_size: 16
  metric_for_best_model: loss
"""


@pytest.fixture(scope="module")
def translation_project(tmp_path_factory) -> Path:
    if not MULTI30K.is_dir():
        pytest.skip(f"{MULTI30K} is not here (it exists on the build machines)")
    root = make_project(tmp_path_factory.mktemp("translation"), TRANSLATION)
    run(["dvc", "repro"], root)
    return root


@pytest.fixture(scope="module")
def summarization_project(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("summarization"), SUMMARIZATION)
    run(["dvc", "repro"], root)
    return root


def test_bleu_in_results_equals_the_sacrebleu_command_line_on_the_exported_predictions(
        translation_project, tmp_path):
    results = pd.read_csv(translation_project / "reports/results.csv")
    assert results["status"].tolist() == ["success"]
    predictions = pd.read_csv(translation_project / "reports/predictions/tiny_bart-1.csv",
                              keep_default_na=False)
    assert list(predictions.columns) == ["source", "reference", "hypothesis"]
    assert len(predictions) == 40
    (tmp_path / "ref.txt").write_text("\n".join(predictions["reference"]) + "\n")
    (tmp_path / "hyp.txt").write_text("\n".join(predictions["hypothesis"]) + "\n")
    command = [Path(sys.executable).parent / "sacrebleu", tmp_path / "ref.txt", "-i",
               tmp_path / "hyp.txt", "-m", "bleu", "chrf", "-b", "-w", "4"]
    bleu, chrf = json.loads(subprocess.run(command, capture_output=True, text=True,
                                           check=True).stdout)
    assert results["finetuned_bleu"].item() == pytest.approx(bleu, abs=1e-4)
    assert results["finetuned_chrf"].item() == pytest.approx(chrf, abs=1e-4)
    assert results["finetuned_chrf"].item() > results["base_chrf"].item()
    assert results["finetuned_loss"].item() < results["base_loss"].item()


def test_translation_run_in_mlflow_has_scores_signature_and_predictions(translation_project):
    client = MlflowClient(tracking_uri=f"sqlite:///{translation_project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("translation/multi30k")
    (mlflow_run,) = client.search_runs([experiment.experiment_id], "tags.purpose = 'fine-tune'")
    assert mlflow_run.info.status == "FINISHED"
    assert {"base_bleu", "finetuned_bleu", "improvement_chrf", "finetuned_gen_words"} <= set(
        mlflow_run.data.metrics)
    assert {"train_loss", "val_loss"} <= set(mlflow_run.data.metrics)
    artifacts = {item.path for item in client.list_artifacts(mlflow_run.info.run_id)}
    assert {"tiny_bart-1.csv", "report.json", "config.yaml"} <= artifacts
    assert "label_distribution.json" not in artifacts  # no labels in translation
    report = json.loads((translation_project / "metrics/final/tiny_bart-1.json").read_text())
    assert report["report"]["bleu_signature"].startswith("nrefs:1|case:mixed")
    assert len(report["report"]["examples"]) == 5


def test_trained_tokenizer_and_model_reload_with_auto_classes(translation_project):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    folder = translation_project / "models/tiny_bart-1/model"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    assert len(tokenizer) <= 600 and model.config.vocab_size == len(tokenizer)
    assert model.config.pad_token_id == tokenizer.pad_token_id


def test_summarization_reports_rouge_beside_the_lead_baseline(summarization_project):
    results = pd.read_csv(summarization_project / "reports/results.csv")
    assert results["status"].tolist() == ["success", "success"]
    for name in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        assert {f"base_{name}", f"finetuned_{name}", f"lead_{name}"} <= set(results.columns)
    assert results["lead_rouge1"].nunique() == 1 and results["lead_rouge1"].iloc[0] > 10
    for model in ("minilm2minilm", "tiny_bart"):
        predictions = pd.read_csv(summarization_project / f"reports/predictions/{model}-1.csv",
                                  keep_default_na=False)
        row = results[results["model"] == model].iloc[0]
        scores = rouge(list(predictions["hypothesis"]), list(predictions["reference"]))
        assert row["finetuned_rougeL"] == pytest.approx(scores["rougeL"], abs=1e-4)
    summary = pd.read_csv(summarization_project / "reports/summary.csv")
    assert "lead_rouge1_mean" in summary.columns
    examples = (summarization_project / "reports/examples.md").read_text()
    assert "## minilm2minilm-1" in examples and "| source | reference | hypothesis |" in examples


def test_seq2seq_predict_generates_text(summarization_project):
    result = run([sys.executable, "-m", "pipeline.predict", "minilm2minilm", "1", "--json",
                  "Oil prices rose sharply on Monday after the cartel cut its output."],
                 summarization_project)
    (line,) = [json.loads(text) for text in result.stdout.splitlines()]
    assert line["input"].startswith("Oil prices rose") and isinstance(line["output"], str)
