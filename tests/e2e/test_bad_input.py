"""Bad config and bad data stop a stage with one clear message and leave no output behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO
from tests.e2e.project import run

BAD_EXIT = 2


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder (config and code, no git needed) with a small local dataset."""
    for name in ("conf", "pipeline", "requirements.txt", "requirements-data.txt"):
        (tmp_path / name).symlink_to(REPO / name)
    reviews = pd.DataFrame({"review": [f"review number {i}" for i in range(60)],
                            "verdict": ["good", "bad", "meh"] * 20})
    reviews.to_csv(tmp_path / "reviews.csv", index=False)
    return tmp_path


def compose(project: Path, *overrides: str) -> subprocess.CompletedProcess:
    local = ["dataset.source=local", f"dataset.path={project / 'reviews.csv'}",
             "dataset.text_columns=[review]", "dataset.label_column=verdict",
             "dataset.drop_labels=[]", "~models.tiny_bert"]
    return run([sys.executable, "-m", "pipeline.compose", *local, *overrides], project,
               check=False)


def stage(project: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", f"pipeline.stages.{name}", *args], project, check=False)


def assert_refused(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == BAD_EXIT, result.stderr[-2000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in message


def test_unknown_key_in_an_override_is_refused_and_params_are_kept(project):
    assert compose(project).returncode == 0
    before = (project / "params.yaml").read_text()
    result = compose(project, "+train.learnign_rate=1e-4")
    assert_refused(result, "train.learnign_rate: unknown key", "Did you mean 'learning_rate'?")
    assert (project / "params.yaml").read_text() == before


def test_wrong_type_is_refused(project):
    assert_refused(compose(project, "train.batch_size=big"),
                   "train.batch_size: expected int, got str 'big'")


def test_unknown_group_option_is_refused(project):
    assert_refused(compose(project, "experiment=nope"), "experiment")


def test_missing_model_folder_is_refused_before_any_work(project):
    assert_refused(compose(project, "models.minilm.source=local",
                           f"models.minilm.path={project / 'no_model'}"),
                   "models.minilm.path:", "does not exist")
    assert not (project / "params.yaml").exists()


def test_missing_column_is_refused_without_partial_output(project):
    assert compose(project, "dataset.text_columns=[body]").returncode == 0
    result = stage(project, "download")
    assert_refused(result, "missing column(s) ['body']", "the data has ['review', 'verdict']")
    assert not (project / "data").exists() or not any((project / "data/raw").iterdir())


def test_unknown_label_in_test_split_is_refused(project):
    folder = project / "splits"
    folder.mkdir()
    pd.DataFrame({"review": ["a", "b", "c", "d"] * 5, "verdict": ["good", "bad"] * 10}).to_csv(
        folder / "train.csv", index=False)
    pd.DataFrame({"review": ["e", "f"], "verdict": ["good", "awful"]}).to_csv(
        folder / "test.csv", index=False)
    assert compose(project, f"dataset.path={folder}",
                   "+dataset.splits={train: train.csv, test: test.csv}").returncode == 0
    assert_refused(stage(project, "download"), "test split: label(s) ['awful'] never occur")
    assert not (project / "data/raw/rotten_tomatoes").exists()


def test_empty_split_is_refused(project):
    assert compose(project, "dataset.drop_labels=[good,bad,meh]").returncode == 0
    assert_refused(stage(project, "download"), "no rows left after removing blank texts")


def test_metric_that_the_task_lacks_is_refused(project):
    assert_refused(compose(project, "train.metric_for_best_model=bleu"),
                   "'bleu' is not measured on the validation split by task 'text_classification'")


def test_stage_without_params_says_how_to_make_them(project):
    assert_refused(stage(project, "download"), "params.yaml: not found",
                   "python -m pipeline.compose")


def test_seed_outside_the_config_is_refused(project):
    assert compose(project).returncode == 0
    assert_refused(stage(project, "train", "--model", "minilm", "--seed", "99"),
                   "seed 99: not in seeds [1, 2, 3]")
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert list(params["models"]) == ["minilm"]


def test_missing_gguf_file_is_refused_before_any_work(project):
    result = run([sys.executable, "-m", "pipeline.compose", "experiment=clm_smollm2",
                  "models.smollm2.gguf_file=nope.gguf"], project, check=False)
    assert_refused(result, "models.smollm2.gguf_file:", "nope.gguf' does not exist")
    assert not (project / "params.yaml").exists()


def test_masked_lm_with_a_tokenizer_without_mask_token_stops_at_tokenize(project, tmp_path):
    from transformers import AutoTokenizer

    from tests.conftest import save_local_model

    folder = tmp_path / "no_mask"
    save_local_model(folder, corrupt=False)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.mask_token = None
    tokenizer.save_pretrained(folder)
    assert compose(project, "task=masked_lm", "train.metric_for_best_model=loss",
                   "models.minilm.source=local", f"models.minilm.path={folder}").returncode == 0
    assert stage(project, "download").returncode == 0
    assert_refused(stage(project, "tokenize", "--model", "minilm"), "masked_lm: the tokenizer",
                   "has no mask token; choose a masked-LM model")
    assert not (project / "data/tokenized/minilm").exists()


def test_question_answering_answer_off_its_text_is_refused_at_download(project):
    import json

    squad = {"data": [{"title": "T", "paragraphs": [{"context": "It is in Paris.", "qas": [
        {"id": "q1", "question": "Where?", "answers": [{"text": "Paris", "answer_start": 3}]}]}]}]}
    (project / "qa.json").write_text(json.dumps(squad))
    result = run([sys.executable, "-m", "pipeline.compose", "experiment=xquad_en",
                  f"dataset.path={project / 'qa.json'}"], project, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert_refused(stage(project, "download"), "qa.json: question 'q1': answer 'Paris' does not "
                   "start at character 3", "the text occurs at character 9. Fix its answer_start.")
    assert not (project / "data/raw/xquad_en").exists()
