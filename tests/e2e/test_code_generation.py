"""`dvc repro` of a code model from scratch: a lossless byte-level BPE and a tiny GPT-2
pre-trained on a few of scikit-learn's test files, then trained further and scored by
perplexity and by the share of its continuations of held-out files that parse as Python."""

from __future__ import annotations

import ast
import json
import sys
from itertools import pairwise
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline.sources import package_path
from tests.e2e.project import make_project, run, stages_run

CODE = """\
# @package _global_
defaults:
  - /architecture@pretraining.code.architecture: gpt2_mini
  - override /task: causal_lm
  - override /dataset: sklearn_tests

experiment_name: e2e_tiny
seeds: [1]
task:
  samples: 4
  prompt_tokens: 32
  code_parse_rate: true
  generation: {num_beams: 1, max_new_tokens: 48, length_penalty: 1.0, no_repeat_ngram_size: 0}
dataset:
  max_file_bytes: 6000
  max_rows: {train: 30, validation: 4, test: 4}
pretraining:
  code:
    objective: causal_lm
    tokenizer: {algorithm: bpe, vocab_size: 500, lossless: true}
    architecture: {n_embd: 32, n_layer: 2, n_head: 2, n_positions: 128}
    max_length: 128
    train: {epochs: 4, learning_rate: 3.0e-3, batch_size: 16, group_by_length: false}
models:
  code:
    {source: local, path: pretrained/code, watch: pretrained/code, revision: null, gguf_file: null,
     pretrained: true, max_length: 128, trust_remote_code: false, tokenizer: null, train: {}}
train:
  epochs: 1
  batch_size: 16
  learning_rate: 1.0e-3
  group_by_length: false
  metric_for_best_model: loss
"""


@pytest.fixture(scope="module")
def code_project(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("code"), CODE)
    result = run(["dvc", "repro"], root)
    assert stages_run(result.stdout)[:4] == [
        "stage_code", "download", "train_tokenizer@code", "pretrain@code"]
    return root


def parses(prompt: str, continuation: str) -> bool:
    """The parse-rate rule, counted again: the complete lines of prompt + continuation are
    Python, and one of the lines that start inside the continuation is not blank."""
    text = prompt + continuation
    starts = [0] + [position + 1 for position, char in enumerate(text) if char == "\n"]
    lines = [text[start:end] for start, end in pairwise(starts)]
    written = [line for start, line in zip(starts, lines, strict=False) if start >= len(prompt)]
    if not any(line.strip() for line in written):
        return False
    try:
        ast.parse("".join(lines))
    except SyntaxError:
        return False
    return True


def test_pretraining_lowers_perplexity_and_the_dag_runs_tokenizer_then_pretraining_first(
        code_project):
    record = json.loads((code_project / "metrics/pretrain/code.json").read_text())
    assert record["status"] == "success" and record["vocabulary"] <= 500
    assert record["final_perplexity"] < record["base_perplexity"] / 3
    assert 1 < record["unigram_perplexity"] < record["base_perplexity"]
    dag = run(["dvc", "dag", "--dot"], code_project).stdout
    for edge in ('"download" -> "train_tokenizer@code"', '"train_tokenizer@code" -> "pretrain@code"',
                 '"pretrain@code" -> "tokenize@code"', '"tokenize@code" -> "train@code-1"'):
        assert edge in dag
    client = MlflowClient(tracking_uri=f"sqlite:///{code_project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("causal_lm/sklearn_tests")
    (pretraining,) = client.search_runs([experiment.experiment_id], "tags.purpose = 'pretrain'")
    assert {"base_perplexity", "final_perplexity", "unigram_perplexity"} <= set(
        pretraining.data.metrics)
    (cell,) = client.search_runs([experiment.experiment_id], "tags.purpose = 'fine-tune'")
    assert {"base_parse_rate", "finetuned_parse_rate"} <= set(cell.data.metrics)


def test_the_tokenizer_gives_every_training_file_back_exactly(code_project):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(code_project / "pretrained/code")
    texts = pd.read_parquet(code_project / "data/raw/sklearn_tests/train.parquet")["text"]
    assert len(texts) == 30
    original = (package_path("sklearn", "test") / "tests/test_init.py").read_text()
    for text in [*texts, original]:
        assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_the_pretrained_model_reloads_and_runs_in_a_text_generation_pipeline(code_project):
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    folder = str(code_project / "pretrained/code")
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert type(model).__name__ == "GPT2LMHeadModel" and model.config.n_positions == 128
    generator = pipeline("text-generation", model=model, tokenizer=AutoTokenizer.from_pretrained(
        folder), device="cpu")
    prompt = "import numpy as np\n\n\ndef test_fit(\n    "
    (output,) = generator(prompt, max_new_tokens=12, do_sample=False)
    assert output["generated_text"].startswith(prompt)
    assert len(output["generated_text"]) > len(prompt)


def test_the_parse_rate_is_the_share_of_exported_samples_that_parse(code_project):
    table = pd.read_csv(code_project / "reports/predictions/code-1.csv", keep_default_na=False)
    assert list(table.columns) == ["prompt", "reference", "generated", "parses",
                                   "reference_parses"] and len(table) == 4
    recounted = [parses(row.prompt, row.generated) for row in table.itertuples()]
    references = [parses(row.prompt, row.reference) for row in table.itertuples()]
    assert table["parses"].tolist() == recounted
    assert table["reference_parses"].tolist() == references
    (row,) = pd.read_csv(code_project / "reports/results.csv").to_dict("records")
    assert row["finetuned_parse_rate"] == pytest.approx(sum(recounted) / 4)
    assert 0 <= row["base_parse_rate"] <= 1
    final = json.loads((code_project / "metrics/final/code-1.json").read_text())
    assert final["report"]["reference_parse_rate"] == pytest.approx(sum(references) / 4)
    raw = pd.read_parquet(code_project / "data/raw/sklearn_tests/test.parquet")["text"]
    assert all(any(text.startswith(prompt) for text in raw) for prompt in table["prompt"])
    assert "```python" in (code_project / "reports/examples.md").read_text()


def test_predict_continues_code_and_keeps_the_prompt(code_project):
    prompt = "def test_fit_predict("
    result = run([sys.executable, "-m", "pipeline.predict", "code", "1", "--json", prompt],
                 code_project)
    (line,) = [json.loads(text) for text in result.stdout.splitlines()]
    assert line["input"] == prompt and line["output"]
    printed = run([sys.executable, "-m", "pipeline.predict", "code", "1", prompt],
                  code_project).stdout
    assert printed == f"{prompt}{line['output']}\n\n"  # greedy: the same continuation
