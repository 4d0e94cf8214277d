"""Stage `download`: snapshot the dataset to data/raw/<dataset>/ with a manifest."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from pipeline.config import DatasetConfig
from pipeline.data import check_ids, make_splits, read_source, repeated_inputs
from pipeline.errors import DataError, run_cli
from pipeline.experiment import load_experiment
from pipeline.io import atomic_dir, sha256, write_json
from pipeline.paths import raw_dir
from pipeline.tasks import TaskAdapter

log = logging.getLogger("download")
SHOWN_DUPLICATES = 3


def without_repeats(splits: dict[str, pd.DataFrame], task: TaskAdapter,
                    cfg: DatasetConfig) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Count (and with dataset.drop_duplicates_across_splits, drop) validation and test rows
    whose input is also in an earlier split."""
    repeated = repeated_inputs({split: task.inputs(frame) for split, frame in splits.items()})
    counts = {split: int(mask.sum()) for split, mask in repeated.items()}
    if any(counts.values()):
        examples = [text[:80] for split, mask in repeated.items()
                    for text in task.inputs(splits[split])[mask].head(SHOWN_DUPLICATES)]
        action = ("dropped from validation and test" if cfg.drop_duplicates_across_splits else
                  "kept; set dataset.drop_duplicates_across_splits: true to drop them")
        log.warning("dataset '%s': inputs also found in an earlier split: %s (e.g. %s); %s",
                    cfg.name, counts, examples, action)
    if cfg.drop_duplicates_across_splits:
        splits = {**splits, **{split: splits[split][~mask].reset_index(drop=True)
                               for split, mask in repeated.items()}}
    return splits, {**counts, "dropped": cfg.drop_duplicates_across_splits}


def main() -> None:
    params, task = load_experiment()
    cfg = params.dataset
    frames, provenance = read_source(cfg)
    check_ids(frames, cfg)
    files = provenance.get("files", {})
    prepared = {
        split: task.prepare(frame, cfg, files[split]["path"] if split in files
                            else f"dataset '{cfg.name}', {split} data")
        for split, frame in frames.items()
    }
    for split, frame in prepared.items():
        if frame.empty:
            raise DataError(f"dataset '{cfg.name}', {split} data: no rows left after removing "
                            f"blank texts and dataset.drop_labels {cfg.drop_labels}")
    splits = make_splits(prepared, cfg, task.strata_column, task.group_column)
    splits, duplicates = without_repeats(splits, task, cfg)
    for split, frame in splits.items():
        if frame.empty:
            raise DataError(f"dataset '{cfg.name}': the {split} split is empty. Check the source "
                            "file, dataset.splits, dataset.max_rows and "
                            "dataset.drop_duplicates_across_splits.")
    description = task.describe(splits)
    with atomic_dir(raw_dir(cfg.name)) as scratch:
        written = {}
        for split, frame in splits.items():
            path = scratch / f"{split}.parquet"
            frame.to_parquet(path, index=False)
            written[split] = {"file": path.name, "rows": len(frame), "sha256": sha256(path)}
        write_json(scratch / "manifest.json", {
            "dataset": cfg.name,
            "task": params.task.name,
            "source": provenance,
            "split_seed": cfg.split_seed,
            "splits": written,
            "dropped_rows": {part: len(frames[part]) - len(frame)
                             for part, frame in prepared.items()},
            "duplicates_across_splits": duplicates,
            **description,
        })
    log.info("%s: %s", cfg.name, {split: len(frame) for split, frame in splits.items()})


if __name__ == "__main__":
    run_cli(main)
