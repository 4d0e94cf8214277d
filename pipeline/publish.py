"""Share a fine-tuned cell on the Hugging Face Hub:
`python -m pipeline.publish <model> <seed> --repo-id <namespace/name> [--private] [--dry-run DIR]`.

Builds the folder to upload (pipeline/sharing.py: safetensors weights, config, tokenizer, the
cell's model card as README.md, its test metrics and training curves) and uploads it with
huggingface_hub (create_repo, then upload_folder). The token is huggingface_hub's own: HF_TOKEN,
or the one `hf auth login` saved; this command never writes or prints it. `--dry-run DIR`
writes the folder to DIR and uploads nothing; `--best` takes the best cell of the best model
(both chosen on the test split) instead of naming one.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from pipeline.cards import with_location
from pipeline.config import cell_name
from pipeline.errors import PipelineError, run_cli
from pipeline.experiment import experiment_cell, load_experiment
from pipeline.io import atomic_dir
from pipeline.sharing import (
    best_cell,
    cell_row,
    check_current,
    read_card,
    read_results,
    write_share_folder,
)

EXAMPLE_REPO = "alice/minilm-rotten-tomatoes"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", help="a key of `models` in params.yaml")
    parser.add_argument("seed", nargs="?", type=int, help="one of `seeds` in params.yaml")
    parser.add_argument("--best", action="store_true",
                        help="the best cell of the best model, by the test split's main metric")
    parser.add_argument("--repo-id", help=f"the Hub repository, namespace/name ({EXAMPLE_REPO})")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--dry-run", metavar="DIR", type=Path,
                        help="write the folder to DIR (new or empty) and upload nothing")
    args = parser.parse_args()
    if args.best == (args.model is not None) or (args.model is not None and args.seed is None):
        parser.error("name a model and a seed, or give --best")
    if args.repo_id is None and args.dry_run is None:
        parser.error("--repo-id is required (or --dry-run DIR to write the folder only)")
    return args


def check_repo_id(repo_id: str) -> None:
    """The Hub's rule for a model repository: namespace/name, each of letters, digits, '-',
    '_' and '.', at most 96 characters."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        valid = repo_id.count("/") == 1 and all(repo_id.split("/"))
        validate_repo_id(repo_id)
    except HFValidationError:
        valid = False
    if not valid:
        raise PipelineError(f"--repo-id '{repo_id}': not a Hub repository id. Give namespace/name: "
                            "your user or organisation, then the model's name, each of letters, "
                            f"digits, '-', '_' and '.' (at most 96 characters), e.g. {EXAMPLE_REPO}")


def check_token() -> None:
    """huggingface_hub finds the token itself (HF_TOKEN, then `hf auth login`'s file): only
    check there is one, before any work."""
    from huggingface_hub import get_token

    if get_token() is None:
        raise PipelineError("no Hugging Face token: log in with `hf auth login` (a token with write "
                            "access, from https://huggingface.co/settings/tokens), or set HF_TOKEN. "
                            "Nothing was uploaded.")


def chosen_cell(args: argparse.Namespace) -> tuple[pd.Series, str]:
    """The cell's row of results.csv and its card; with --best, the card says how it was
    chosen."""
    if not args.best:
        experiment_cell(args.model, args.seed)  # a model and seed of this experiment
        row = cell_row(read_results(), args.model, args.seed)
        return row, read_card(row)
    _, task = load_experiment()
    row = best_cell(read_results(), task)
    metric = task.metric_names[0]
    note = (f"This cell was picked by `pipeline.publish --best`: the experiment's best model by "
            f"mean test {metric}, then its seed with the best test {metric}. Both choices were made "
            "on the test split, so its test figures are optimistic.")
    print(f"--best: {cell_name(row['model'], int(row['seed']))} ({note})")
    return row, read_card(row).replace("\n## Test results", f"\n{note}\n\n## Test results", 1)


def dry_run(row: pd.Series, card: str, target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise PipelineError(f"--dry-run {target}: exists and is not an empty folder; name a new or "
                            "empty folder (it would be replaced)")
    with atomic_dir(target) as scratch:
        write_share_folder(row, card, scratch)
    for path in sorted(target.iterdir()):
        print(f"{path.stat().st_size:>12,}  {path}")
    print(f"dry run: the folder to upload is {target}; nothing was uploaded")


def offline_error(repo_id: str, folder: Path, why: str) -> PipelineError:
    return PipelineError(f"{why}: nothing was uploaded to {repo_id}. The folder to upload is "
                         f"ready in {folder} (what --dry-run writes); run again with the Hub "
                         f"reachable (`make publish` unsets HF_HUB_OFFLINE), or upload that folder "
                         f"later with `hf upload {repo_id} {folder}`.")


def upload(folder: Path, repo_id: str, private: bool, cell: str) -> None:
    """create_repo (kept if it exists), then one commit of the whole folder."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if constants.HF_HUB_OFFLINE:
        raise offline_error(repo_id, folder, "the Hugging Face Hub is off here (HF_HUB_OFFLINE "
                                             "is set)")
    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=folder,
                          commit_message=f"Upload {cell} (pipeline.publish)")
    except OfflineModeIsEnabled:
        raise offline_error(repo_id, folder, "the Hugging Face Hub is off here (offline mode)") \
            from None
    except HfHubHTTPError as error:
        raise PipelineError(f"the Hub refused the upload to {repo_id} ({error}). Check that your "
                            "token may write there (`hf auth whoami`); the folder is kept in "
                            f"{folder}.") from None
    except Exception as error:  # huggingface_hub's HTTP client raises its own connection errors
        raise offline_error(repo_id, folder, f"the Hugging Face Hub cannot be reached "
                                             f"({type(error).__name__}: {error})") from None


def main() -> None:
    args = parse_args()
    if args.repo_id is not None:
        check_repo_id(args.repo_id)
    row, card = chosen_cell(args)
    check_current(row)
    cell = cell_name(row["model"], int(row["seed"]))
    card = with_location(card, cell, args.repo_id or str(args.dry_run.resolve()))
    if args.dry_run is not None:
        dry_run(row, card, args.dry_run)
        return
    check_token()
    folder = Path(tempfile.mkdtemp(prefix=f"publish-{cell}-"))
    write_share_folder(row, card, folder)
    upload(folder, args.repo_id, args.private, cell)
    shutil.rmtree(folder)
    print(f"{cell}: uploaded to https://huggingface.co/{args.repo_id}")


if __name__ == "__main__":
    run_cli(main)
