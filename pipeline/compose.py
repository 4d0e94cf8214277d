"""Compose conf/ into params.yaml: `python -m pipeline.compose [hydra overrides]`.

The same composition that `dvc exp run` does (DVC's Hydra integration), for people
who run `dvc repro`. The result is validated, and local model and data sources are
checked, before params.yaml is replaced.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import PARAMS_FILE
from pipeline.errors import ConfigError, run_cli
from pipeline.experiment import checked_params
from pipeline.io import atomic_file

CONF_DIR = Path("conf")


def compose(overrides: list[str], conf_dir: Path = CONF_DIR) -> str:
    """The composed config as YAML text, exactly as DVC writes it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(str(conf_dir.resolve()), version_base=None):
            cfg = hydra_compose(config_name="config", overrides=overrides)
        OmegaConf.resolve(cfg)
    except (HydraException, OmegaConfBaseException) as error:
        # Hydra's message spans lines and lists its search path: keep what a user acts on.
        message = " ".join(str(error).split("Config search path")[0].split())
        raise ConfigError(f"conf/ with overrides {overrides}: {message}") from None
    return OmegaConf.to_yaml(cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="e.g. experiment=mrpc_bert seeds=[1,2]")
    parser.add_argument("--output", type=Path, default=PARAMS_FILE)
    args = parser.parse_args()
    text = compose(args.overrides)
    params = checked_params(text, "composed config")
    with atomic_file(args.output) as scratch:
        scratch.write_text(text, encoding="utf-8")
    cells = len(params.cells())
    print(f"{args.output}: experiment {params.experiment_name}, {len(params.models)} model(s) x "
          f"{len(params.seeds)} seed(s) = {cells} cells")


if __name__ == "__main__":
    run_cli(main)
