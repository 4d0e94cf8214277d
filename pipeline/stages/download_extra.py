"""Stage `download_extra@<set>`: snapshot the test split of an extra test set
(`evaluation.extra.<set>`) to data/extra/<set>/ with a manifest.

Only the test split is read: the file or Hub split that `splits.test` names, else the test
share cut from the whole source, seeded, as for the main dataset. Its labels must be labels
of the main dataset (the fine-tuned head predicts those only).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

import pandas as pd

from pipeline.config import SPLITS, DatasetConfig
from pipeline.data import load_split, make_splits, read_source, repeated_inputs
from pipeline.errors import DataError, run_cli
from pipeline.experiment import load_experiment, read_manifest
from pipeline.io import atomic_dir, sha256, write_json
from pipeline.paths import extra_dir
from pipeline.tasks import TaskAdapter

log = logging.getLogger("download_extra")


def extra_test_split(cfg: DatasetConfig, task: TaskAdapter, where: str) -> tuple[pd.DataFrame, dict]:
    """The extra set's test rows, prepared by the task, and where they came from."""
    if cfg.splits and "test" not in cfg.splits:
        raise DataError(f"{where}.splits: maps {sorted(cfg.splits)} but not test; name the test "
                        "file or split (only it is read), or leave splits out to cut the test "
                        "share from the whole source")
    if "test" in cfg.splits or cfg.source == "hub":
        cfg = dataclasses.replace(cfg, splits={"test": cfg.splits.get("test", "test")})
    frames, provenance = read_source(cfg)
    (part, frame), = frames.items()
    files = provenance.get("files", {})
    test = task.prepare(frame, cfg, files[part]["path"] if part in files else where)
    if test.empty:
        raise DataError(f"{where}: no rows left after removing blank texts and drop_labels "
                        f"{cfg.drop_labels}")
    if "test" not in cfg.splits:
        test = make_splits({"all": test}, cfg, task.strata_column)["test"]
    elif cfg.max_rows.test is not None and len(test) > cfg.max_rows.test:
        test = test.sample(n=cfg.max_rows.test, random_state=cfg.split_seed).reset_index(drop=True)
    return test, provenance


def check_labels(described: dict, manifest: dict, where: str) -> None:
    unknown = sorted(set(described["labels"]) - set(manifest["labels"]))
    if unknown:
        raise DataError(f"{where}: label(s) {unknown} are not labels of the main dataset "
                        f"{manifest['labels']}, which the fine-tuned head predicts. Rename them "
                        f"in the data, or list them in {where}.drop_labels.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True, help="a key of `evaluation.extra` in params.yaml")
    args = parser.parse_args()
    params, task = load_experiment()
    where = f"evaluation.extra.{args.name}"
    test, provenance = extra_test_split(params.extra_set(args.name), task, where)
    manifest = read_manifest(params)
    described = task.describe(dict.fromkeys(SPLITS, test))
    check_labels(described, manifest, where)
    seen = repeated_inputs({"train": task.inputs(load_split(params.dataset.name, "train")),
                            "validation": task.inputs(test.head(0)), "test": task.inputs(test)})
    in_training = int(seen["test"].sum())
    if in_training:
        log.warning("%s: %d of %d test inputs are also in the main training split", where,
                    in_training, len(test))
    with atomic_dir(extra_dir(args.name)) as scratch:
        test.to_parquet(scratch / "test.parquet", index=False)
        write_json(scratch / "manifest.json", {
            "name": args.name, "task": params.task.name, "source": provenance,
            "rows": len(test), "sha256": sha256(scratch / "test.parquet"),
            "label_counts": described["label_counts"].get("test", {}),
            "inputs_in_main_train": in_training})
    log.info("%s: %d test rows", where, len(test))


if __name__ == "__main__":
    run_cli(main)
