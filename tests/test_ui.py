import sys

import yaml

from pipeline import ui
from pipeline.compose import compose
from pipeline.config import parse_params
from pipeline.tracking import start_cell_run
from tests.conftest import REPO


def test_make_ui_prints_each_experiments_model_training_link_then_starts_the_ui(
        tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params = parse_params(yaml.safe_load(compose([f"tracking.tracking_uri={store}"],
                                                 REPO / "conf")))
    start_cell_run(params, "minilm", 1, {})
    started = []
    monkeypatch.setattr(ui.os, "execv", lambda path, args: started.append(args[1:]))
    monkeypatch.setattr(sys, "argv", ["pipeline.ui", "--port", "5123"])
    ui.main()
    assert capsys.readouterr().out == (
        "text_classification/rotten_tomatoes: http://127.0.0.1:5123/#/experiments/1/runs"
        "?workflowType=machine_learning&viewStateShareKey=finetuning\n")
    assert started == [["ui", "--backend-store-uri", store, "--host", "127.0.0.1", "--port",
                        "5123"]]
