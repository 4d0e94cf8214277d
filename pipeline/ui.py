"""`make ui`: print the link to each experiment's runs in MLflow's Model training view (our
shared view of them: the Dataset column and the main metric before, after and gained, the
cells listed by it), then start `mlflow ui` on this repository's store, on 127.0.0.1 only.

MLflow 3.17's UI opens an experiment on its GenAI overview unless the link (or the user's
toggle) asks for the Model training view: open the experiments through these links.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from pipeline.errors import run_cli
from pipeline.paths import repository_root
from pipeline.tracking import runs_link


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{repository_root() / 'mlflow.db'}"
    address = f"http://127.0.0.1:{args.port}"
    for experiment in MlflowClient(tracking_uri=store).search_experiments():
        if experiment.name != "Default":
            print(f"{experiment.name}: {runs_link(experiment, address)}")
    mlflow = shutil.which("mlflow") or str(Path(sys.executable).parent / "mlflow")
    os.execv(mlflow, [mlflow, "ui", "--backend-store-uri", store, "--host", "127.0.0.1",
                      "--port", str(args.port)])


if __name__ == "__main__":
    run_cli(main)
