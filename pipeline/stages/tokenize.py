"""Stage `tokenize@<model>`: tokenize every split once per model; every seed reuses it. The
test split of each extra test set (`evaluation.extra`) is tokenized too, into
data/tokenized_extra/<model>/ (so that changing a set does not rerun training).

The tokenizer is saved beside the splits, and every later stage loads it from there:
the model's own, or one trained here on the training split (`models.<name>.tokenizer`).
"""

from __future__ import annotations

import argparse
import logging

from datasets import Dataset, DatasetDict

from pipeline.config import SPLITS
from pipeline.data import load_extra, load_split
from pipeline.errors import ConfigError, run_cli
from pipeline.experiment import load_experiment, read_manifest
from pipeline.io import atomic_dir, write_json
from pipeline.model_files import load_tokenizer, weights_identity
from pipeline.paths import tokenized_dir, tokenized_extra_dir
from pipeline.tokenizer_training import train_tokenizer

log = logging.getLogger("tokenize")


def check_tokenizer_length(limit: int, max_length: int, where: str) -> None:
    """A Hub model's positions are only known once its tokenizer is loaded (a local or packaged
    one's are checked when the config is composed). Tokenizers without a limit say 1e30."""
    if max_length > limit:
        raise ConfigError(f"{where}.max_length: {max_length} tokens, but the model's tokenizer "
                          f"allows {limit}; set max_length to {limit} or less")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="a key of `models` in params.yaml")
    args = parser.parse_args()
    params, task = load_experiment()
    model_cfg = params.model(args.model)
    manifest = read_manifest(params)
    if model_cfg.tokenizer is None:
        tokenizer = load_tokenizer(model_cfg, f"models.{args.model}")
        check_tokenizer_length(tokenizer.model_max_length, model_cfg.max_length,
                               f"models.{args.model}")
    else:
        log.info("%s: training a %s tokenizer on the training split", args.model,
                 model_cfg.tokenizer.algorithm)
        tokenizer = train_tokenizer(model_cfg.tokenizer,
                                    task.texts(load_split(params.dataset.name, "train")),
                                    model_cfg.max_length, task.tokenizer_marks_texts)
    tokenized = DatasetDict()
    truncated = {}
    for split in SPLITS:
        raw = Dataset.from_pandas(load_split(params.dataset.name, split), preserve_index=False)
        tokenized[split] = task.tokenize(raw, tokenizer, model_cfg.max_length, manifest,
                                         training=split == "train")
        if task.reports_truncation:
            truncated[split] = sum(len(ids) >= model_cfg.max_length
                                   for ids in tokenized[split]["input_ids"])
    extra = {name: task.tokenize(Dataset.from_pandas(load_extra(name), preserve_index=False),
                                 tokenizer, model_cfg.max_length, manifest, training=False)
             for name in params.evaluation.extra}
    if any(truncated.values()):
        log.warning("%s: examples cut at max_length=%d per split: %s", args.model,
                    model_cfg.max_length, truncated)
    with atomic_dir(tokenized_dir(args.model)) as scratch:
        tokenized.save_to_disk(str(scratch / "splits"))
        tokenizer.save_pretrained(scratch / "tokenizer")
        write_json(scratch / "info.json", {
            "model": args.model,
            "max_length": model_cfg.max_length,
            "rows": {split: len(part) for split, part in tokenized.items()},
            "truncated": truncated,
            # the starting weights, so that the cells rerun when a model folder changes
            # even where its tokenizer and these splits do not
            "weights_sha256": weights_identity(model_cfg, f"models.{args.model}"),
        })
    with atomic_dir(tokenized_extra_dir(args.model)) as scratch:
        for name, split in extra.items():
            split.save_to_disk(str(scratch / name))
        write_json(scratch / "info.json", {name: len(split) for name, split in extra.items()})


if __name__ == "__main__":
    run_cli(main)
