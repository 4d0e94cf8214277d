"""Sweeps through `python -m pipeline.run -m` in a temporary repository: parallel jobs
(joblib) that share download and tokenization, an Optuna search through submitit's local
executor, the sweep's reports, the MLflow parent runs, and the MLflow UI in Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline.tracking import runs_link
from tests.e2e.project import make_project, run

SWEEP_EXPERIMENT = """\
# @package _global_
defaults:
  - /model@models.tiny_a: tiny_bert_scratch
  - /model@models.tiny_b: tiny_bert_scratch
  - override /dataset: rotten_tomatoes

experiment_name: e2e_sweep
seeds: [1, 2]
dataset:
  max_rows: {train: 240, validation: 64, test: 64}
models:
  tiny_b:
    architecture: {hidden_size: 64, num_attention_heads: 2, intermediate_size: 128}
train:
  epochs: 1
  batch_size: 16
  logging_steps: 5
"""
EXPERIMENT_NAME = "text_classification/rotten_tomatoes"
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1920,760", "--virtual-time-budget=20000"]


def sweep(root: Path, *overrides: str) -> tuple[Path, str]:
    """Run a sweep; return its folder and everything it printed."""
    before = set((root / "multirun").glob("*")) if (root / "multirun").is_dir() else set()
    result = run([sys.executable, "-m", "pipeline.run", "-m", "experiment=e2e_tiny", *overrides],
                 root)
    (folder,) = set((root / "multirun").glob("*")) - before
    return folder, result.stdout + result.stderr


def stages_run_in(job: Path) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", (job / "repro.log").read_text())


def jobs_of(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.name.isdigit())


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("sweep"), SWEEP_EXPERIMENT)


@pytest.fixture(scope="module")
def seed_sweep(project) -> Path:
    folder, _ = sweep(project, "seeds=[1],[2]", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    return folder


def test_each_job_runs_the_dag_in_its_own_folder_and_data_is_prepared_once(seed_sweep):
    jobs = jobs_of(seed_sweep)
    assert len(jobs) == 2
    for job, seed in zip(jobs, (1, 2), strict=True):
        results = pd.read_csv(job / "reports/results.csv")
        assert results["status"].tolist() == ["success", "success"]
        assert results["seed"].tolist() == [seed, seed]
        assert (job / "params.yaml").is_file() and (job / f"models/tiny_a-{seed}").is_dir()
    ran = [stage for job in jobs for stage in stages_run_in(job)]
    assert ran.count("download") == 1 and ran.count("tokenize@tiny_a") == 1, ran
    assert sorted(stage for stage in ran if stage.startswith("train@")) == [
        "train@tiny_a-1", "train@tiny_a-2", "train@tiny_b-1", "train@tiny_b-2"]


def test_sweep_report_pools_the_jobs_and_compares_the_models(seed_sweep):
    results = pd.read_csv(seed_sweep / "reports/results.csv")
    assert len(results) == 4 and set(results["model"]) == {"tiny_a", "tiny_b"}
    summary = pd.read_csv(seed_sweep / "reports/summary.csv")
    assert summary.set_index("model")["seeds"].to_dict() == {"tiny_a": 2, "tiny_b": 2}
    tiny_a = results.loc[results["model"] == "tiny_a", "finetuned_accuracy"]
    assert summary.loc[summary["model"] == "tiny_a", "finetuned_accuracy_mean"].item() == \
        pytest.approx(tiny_a.mean(), abs=1e-6)
    markdown = (seed_sweep / "reports/summary.md").read_text()
    best = summary.set_index("model")["finetuned_accuracy_mean"].idxmax()
    other = ({"tiny_a", "tiny_b"} - {best}).pop()
    assert f"| **{best}** (best) | 2 | reference |" in markdown
    assert re.search(rf"\| {other} \| 2 \| [+-]\d", markdown), markdown
    for plot in ("base_vs_finetuned", "training_curves"):
        assert (seed_sweep / f"reports/plots/{plot}.png").stat().st_size > 10_000


def test_mlflow_nests_cells_under_their_job_and_jobs_under_the_sweep(project, seed_sweep):
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    runs = {run.info.run_id: run for run in client.search_runs([experiment.experiment_id])}
    (parent,) = [run for run in runs.values() if run.data.tags.get("purpose") == "sweep"]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["sweep_dir"] == str(seed_sweep.resolve())
    jobs = [run for run in runs.values()
            if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(run.data.tags["purpose"] for run in jobs) == ["results", "results"]
    for job in jobs:
        cells = [run for run in runs.values()
                 if run.data.tags.get("mlflow.parentRunId") == job.info.run_id]
        assert len(cells) == 2 and all(cell.info.status == "FINISHED" for cell in cells)
        assert all("finetuned_accuracy" in cell.data.metrics for cell in cells)
    artifacts = {item.path for item in client.list_artifacts(parent.info.run_id)}
    assert {"results.csv", "summary.csv", "summary.md", "base_vs_finetuned.png"} <= artifacts


def test_optuna_search_through_submitit_reuses_the_prepared_data(optuna_sweep):
    folder = optuna_sweep
    optimum = (folder / "optimization_results.yaml").read_text()
    assert "best_params" in optimum and "train.learning_rate" in optimum
    for job in jobs_of(folder):
        ran = stages_run_in(job)
        assert "download" not in ran and "tokenize@tiny_a" not in ran, ran
        assert "train@tiny_a-1" in ran
    rates = pd.read_csv(folder / "reports/results.csv")["train.learning_rate"]
    assert len(set(rates)) == 2 and all(1e-4 <= rate <= 1e-2 for rate in rates)


@pytest.fixture(scope="module")
def optuna_sweep(project, seed_sweep) -> Path:
    folder, _ = sweep(project, "seeds=[1]", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2",
                      "hydra.sweeper.direction=maximize", "hydra.sweeper.sampler.seed=3",
                      "train.learning_rate=tag(log,interval(1e-4,1e-2))",
                      "hydra/launcher=submitit_local")
    return folder


def test_the_sweeps_best_candidate_is_confirmed_on_a_fresh_seed(project, optuna_sweep):
    results = pd.read_csv(optuna_sweep / "reports/results.csv")
    winner = results.loc[results["best_validation_metric"].idxmax()]
    run([sys.executable, "-m", "pipeline.confirm", str(optuna_sweep), "--top", "1",
         "--seeds", "7"], project)
    confirmed = pd.read_csv(optuna_sweep / "confirm/1/reports/results.csv")
    assert confirmed[["model", "seed", "status"]].values.tolist() == [
        [winner["model_name"], 7, "success"]]
    text = (optuna_sweep / "confirm/reports/confirmation.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| 1 |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == winner["model"]
    assert float(cells[2]) == pytest.approx(winner["best_validation_metric"], rel=1e-3)
    assert float(cells[4]) == pytest.approx(confirmed["finetuned_accuracy"].item(), rel=1e-3)
    assert (optuna_sweep / "confirm/reports/summary.md").is_file()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mlflow_server(project, seed_sweep):
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri",
         f"sqlite:///{project / 'mlflow.db'}", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "mlflow ui did not start"
            time.sleep(1)
    yield url
    os.killpg(server.pid, 15)
    server.wait(timeout=30)


def rest(url: str, endpoint: str, body: dict | None = None, **query: str) -> dict:
    """MLflow's REST API: a POST with a JSON body, or a GET with query parameters."""
    address = f"{url}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(query)}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(address, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium package is not installed (apt-get install chromium)")
    return found


def ui_number(value: float) -> str:
    """A metric as MLflow's runs table shows it: JavaScript's shortest form of the number."""
    return str(int(value)) if value.is_integer() else repr(value)


def test_mlflow_ui_serves_the_runs_and_the_browser_shows_them(project, mlflow_server, tmp_path):
    """The experiment opened through the link `make ui` and the report stage print: the Model
    training view's runs table, the cells listed (not folded under their job and sweep runs)
    with their fine-tuned accuracy."""
    browser = chromium()
    experiment = rest(mlflow_server, "experiments/get-by-name",
                      experiment_name=EXPERIMENT_NAME)["experiment"]
    runs = rest(mlflow_server, "runs/search", {"experiment_ids": [experiment["experiment_id"]],
                                               "filter": "tags.purpose = 'fine-tune'"})["runs"]
    names = {run["info"]["run_name"] for run in runs}
    assert {"tiny_a-seed1", "tiny_a-seed2", "tiny_b-seed1", "tiny_b-seed2"} <= names
    for cell in runs:
        metrics = {metric["key"] for metric in cell["data"]["metrics"]}
        assert {"base_accuracy", "finetuned_accuracy", "train_loss"} <= metrics
    page = runs_link(MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
                     .get_experiment_by_name(EXPERIMENT_NAME), mlflow_server)
    assert page.endswith("/runs?workflowType=machine_learning&viewStateShareKey=finetuning")
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run([browser, *BROWSER_FLAGS, *profile, "--dump-dom", page],
                         capture_output=True, text=True, timeout=180).stdout
    assert "You're viewing a shared view" in dom
    parents = rest(mlflow_server, "runs/search", {"experiment_ids": [experiment["experiment_id"]],
                                                  "filter": "tags.purpose = 'sweep'"})["runs"]
    assert parents and all(parent["info"]["run_name"] in dom for parent in parents)
    for cell in runs:
        assert cell["info"]["run_name"] in dom
        accuracy = next(metric["value"] for metric in cell["data"]["metrics"]
                        if metric["key"] == "finetuned_accuracy")
        assert f">{ui_number(accuracy)}<" in dom
    screenshot = Path(os.environ.get("UI_SCREENSHOT", tmp_path / "mlflow_ui.png"))
    subprocess.run([browser, *BROWSER_FLAGS, *profile, f"--screenshot={screenshot}", page],
                   capture_output=True, timeout=180, check=True)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
