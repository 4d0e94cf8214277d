"""Try a fine-tuned cell: `python -m pipeline.predict <model> <seed> "text" ...`.

For sentence-pair tasks write each pair as "first ||| second". Classification
prints label, score and input; token classification prints each input with its
entities (label, score, character span, words); translation and summarization
print each input and the generated text; masked language models fill each mask token
("the film was [MASK] ."), causal ones continue the text. Question answering reads
"question ||| context", or --question (repeatable) with --context or --context-file, and
prints the answer, its score, its character span in the context and the question.
--json prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.adapters import load_fine_tuned
from pipeline.errors import SourceError, run_cli
from pipeline.experiment import experiment_cell, read_manifest
from pipeline.paths import train_output_dir
from pipeline.tasks.base import PAIR_SEPARATOR


def question_inputs(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    """Each --question paired with the context, as one "question ||| context" input."""
    if args.context_file is not None:
        if not args.context_file.is_file():
            raise SourceError(f"--context-file: '{args.context_file}' does not exist")
        args.context = args.context_file.read_text(encoding="utf-8")
    if bool(args.question) != (args.context is not None):
        parser.error("--question and --context (or --context-file) go together")
    return [f"{question}{PAIR_SEPARATOR}{args.context}" for question in args.question]


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a key of `models` in params.yaml")
    parser.add_argument("seed", type=int)
    parser.add_argument("inputs", nargs="*",
                        help="texts to classify, tag, translate, summarize, fill or continue; "
                             "'question ||| context' to answer")
    parser.add_argument("--question", action="append", default=[],
                        help="a question about the context (repeat for several)")
    context = parser.add_mutually_exclusive_group()
    context.add_argument("--context", help="the text the questions are about")
    context.add_argument("--context-file", type=Path, help="a UTF-8 file holding the context")
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    return parser


def main() -> None:
    parser = argument_parser()
    args = parser.parse_intermixed_args()  # texts may follow --json
    inputs = [*args.inputs, *question_inputs(args, parser)]
    if not inputs:
        parser.error("give at least one input, or --question with --context")
    cell = experiment_cell(args.model, args.seed)
    model, tokenizer = load_fine_tuned(cell.task, cell.model_config, read_manifest(cell.params),
                                       cell.seed, train_output_dir(cell.name), cell.where)
    for result in cell.task.predict(inputs, model, tokenizer):
        if args.json:
            print(json.dumps(result))
        else:
            print(cell.task.format_prediction(result))


if __name__ == "__main__":
    run_cli(main)
