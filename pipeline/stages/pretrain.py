"""Stage `pretrain@<name>`: pre-train a language model from scratch (masked or causal LM,
`pretraining.<name>.objective`) on the experiment's training texts, with the tokenizer of
`train_tokenizer@<name>`.

Writes pretrained/<name>/, a normal model folder (config, weights, tokenizer, training
curves) that fine-tuning names as `source: local, path: pretrained/<name>`, and
metrics/pretrain/<name>.json: the validation perplexity before and after, and a unigram
model's. Only the training split is read for training; perplexity is measured on the
validation split.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from pipeline.errors import run_cli
from pipeline.experiment import load_experiment
from pipeline.io import write_json
from pipeline.launch import use_available_cores
from pipeline.paths import pretrain_metrics_file
from pipeline.pretraining import pretrain
from pipeline.stages.common import ends_run_if_interrupted
from pipeline.tracking import finish_run, start_cell_run

log = logging.getLogger("pretrain")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True, help="a key of `pretraining` in params.yaml")
    args = parser.parse_args()
    params, task = load_experiment()
    entry = params.pretraining_entry(args.name)
    logged = {"pretraining": {"name": args.name, **dataclasses.asdict(entry)},
              "train": dataclasses.asdict(entry.training(f"pretraining.{args.name}.train"))}
    run_id = start_cell_run(params, args.name, entry.seed, logged, purpose="pretrain")
    use_available_cores()
    with ends_run_if_interrupted(params, run_id):
        try:
            summary = pretrain(params, task, args.name, entry, run_id)
        except Exception as error:
            finish_run(params, run_id, failed_error=f"{type(error).__name__}: {error}")
            raise
    finish_run(params, run_id)
    write_json(pretrain_metrics_file(args.name), summary)
    log.info("%s: validation perplexity %.1f -> %.1f in %.0f s (unigram model: %.1f)",
             args.name, summary["base_perplexity"], summary["final_perplexity"],
             summary["train_seconds"], summary["unigram_perplexity"])


if __name__ == "__main__":
    run_cli(main)
