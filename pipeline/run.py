"""Run the whole stage chain once per Hydra job: `python -m pipeline.run [-m] [overrides]`.

Each job is a small DVC project in its own Hydra folder (`multirun/<time>/<job>/`, or
`outputs/<time>/` without -m), run by pipeline/jobs.py: DVC's run cache, shared with this
repository, restores any stage already run with the same code, params and inputs, so
download and tokenization are done once per dataset and model, and a repeated sweep only
reruns what changed. Jobs prepare data one at a time (a lock), so parallel jobs reuse it too.

Every job tracks into this repository's MLflow store; the sweep's own parent run, summary
and plots come from `pipeline.sweep.SweepReport` (a Hydra callback, see conf/config.yaml).
Hydra returns each job's validation metric, which an Optuna sweeper maximizes or minimizes.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from pipeline.jobs import run_job
from pipeline.launch import available_cores


def parallel_jobs(launcher: DictConfig) -> int:
    """How many jobs the launcher runs at once on this machine: joblib's n_jobs (negative
    counts back from the number of cores, -1 = one per core); other launchers run one at a
    time here (submitit_slurm jobs each get their own machine's cores)."""
    if "joblib" not in str(launcher.get("_target_", "")):
        return 1
    n_jobs = launcher.get("n_jobs") or -1
    return n_jobs if n_jobs > 0 else max(1, available_cores() + 1 + n_jobs)


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    return run_job(OmegaConf.to_container(cfg, resolve=True), Path.cwd(),
                   Path(hydra_cfg.runtime.output_dir), parallel_jobs(hydra_cfg.launcher))


if __name__ == "__main__":
    main()
