"""Stage `train_tokenizer@<name>`: the tokenizer of a model pre-trained from scratch
(`pretraining.<name>.tokenizer`: WordPiece or byte-level BPE, vocabulary size, minimum
frequency, lowercasing, special tokens, lossless), learnt from the experiment's training
split. It marks texts with start and end tokens as its objective's models expect.

Writes data/tokenizers/<name>/, which reloads with `AutoTokenizer.from_pretrained`.
"""

from __future__ import annotations

import argparse
import logging

from pipeline.data import load_split
from pipeline.errors import run_cli
from pipeline.experiment import load_experiment
from pipeline.io import atomic_dir
from pipeline.paths import trained_tokenizer_dir
from pipeline.tasks import get_task
from pipeline.tokenizer_training import train_tokenizer

log = logging.getLogger("train_tokenizer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True, help="a key of `pretraining` in params.yaml")
    args = parser.parse_args()
    params, task = load_experiment()
    entry = params.pretraining_entry(args.name)
    tokenizer = train_tokenizer(entry.tokenizer,
                                task.texts(load_split(params.dataset.name, "train")),
                                entry.max_length, get_task(entry.task).tokenizer_marks_texts)
    with atomic_dir(trained_tokenizer_dir(args.name)) as scratch:
        tokenizer.save_pretrained(scratch)
    log.info("%s: %s tokenizer with %d tokens", args.name, entry.tokenizer.algorithm,
             len(tokenizer))


if __name__ == "__main__":
    run_cli(main)
