"""What a `python -m pipeline.run -m ...` sweep ends with (a Hydra callback, see
conf/config.yaml): its jobs pooled into `<sweep folder>/reports/` and one parent MLflow run
(pipeline/pooling.py).

Each job's settings are the overrides Hydra recorded for it in `<job>/.hydra/overrides.yaml`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from pipeline.pooling import Job, pool_jobs

HYDRA_OVERRIDES = Path(".hydra/overrides.yaml")
log = logging.getLogger(__name__)


def hydra_jobs(sweep_dir: Path) -> list[Job]:
    """The jobs of a Hydra sweep folder, in job order."""
    folders = sorted((path.parent.parent for path in sweep_dir.glob(f"*/{HYDRA_OVERRIDES}")),
                     key=lambda path: int(path.name) if path.name.isdigit() else path.name)
    jobs = []
    for folder in folders:
        overrides = yaml.safe_load((folder / HYDRA_OVERRIDES).read_text()) or []
        jobs.append(Job(folder.name, folder,
                        dict(item.lstrip("+~").split("=", 1) for item in overrides),
                        f"tags.run_dir = '{folder.resolve()}'"))
    return jobs


class SweepReport(Callback):
    """After the last job of a sweep."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        optuna = sweep_dir / "optimization_results.yaml"
        try:
            pool_jobs(sweep_dir, hydra_jobs(sweep_dir), [optuna] if optuna.is_file() else [])
        except Exception:  # Hydra would turn it into a warning and exit 0
            log.exception("%s: the sweep's pooled report failed (each job's own reports are in "
                          "its folder)", sweep_dir)
            raise SystemExit(1) from None
