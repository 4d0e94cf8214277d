"""Stage `download`: snapshot the dataset to data/raw/<dataset>/ with a manifest."""

from __future__ import annotations

import logging

from pipeline.data import check_ids, make_splits, read_source
from pipeline.errors import DataError, run_cli
from pipeline.experiment import load_experiment
from pipeline.io import atomic_dir, sha256, write_json
from pipeline.paths import raw_dir

log = logging.getLogger("download")


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
    for split, frame in splits.items():
        if frame.empty:
            raise DataError(f"dataset '{cfg.name}': the {split} split is empty. Check the source "
                            "file, dataset.splits and dataset.max_rows.")
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
            **description,
        })
    log.info("%s: %s", cfg.name, {split: len(frame) for split, frame in splits.items()})


if __name__ == "__main__":
    run_cli(main)
