"""Try a fine-tuned cell: `python -m pipeline.predict <model> <seed> "text" ...`.

For sentence-pair tasks write each pair as "first ||| second". Classification
prints label, score and input; token classification prints each input with its
entities (label, score, character span, words); translation and summarization
print each input and the generated text; masked language models fill each mask token
("the film was [MASK] ."), causal ones continue the text. --json prints JSON lines.
"""

from __future__ import annotations

import argparse
import json

from pipeline.adapters import load_fine_tuned
from pipeline.errors import run_cli
from pipeline.experiment import experiment_cell, read_manifest
from pipeline.paths import train_output_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a key of `models` in params.yaml")
    parser.add_argument("seed", type=int)
    parser.add_argument("inputs", nargs="+",
                        help="texts to classify, tag, translate, summarize, fill or continue")
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    args = parser.parse_args()
    cell = experiment_cell(args.model, args.seed)
    model, tokenizer = load_fine_tuned(cell.task, cell.model_config, read_manifest(cell.params),
                                       cell.seed, train_output_dir(cell.name), cell.where)
    for result in cell.task.predict(args.inputs, model, tokenizer):
        if args.json:
            print(json.dumps(result))
        else:
            print(cell.task.format_prediction(result))


if __name__ == "__main__":
    run_cli(main)
