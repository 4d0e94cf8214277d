"""Stage `baseline_eval@<model>-<seed>`: the untuned model on the test split and on each
extra test set.

Where the task adds a head, it is initialised from the seed, so the baseline is
what fine-tuning starts from. Tasks with a model-free baseline (summarization's
lead-N) record its scores here too.
"""

from __future__ import annotations

from typing import Any

from pipeline.data import load_split
from pipeline.errors import run_cli
from pipeline.experiment import extra_set_scores, load_tokenized, read_manifest, write_predictions
from pipeline.io import atomic_file, write_json
from pipeline.modeling import build_model
from pipeline.paths import base_predictions_file, baseline_metrics_file
from pipeline.records import SUCCESS
from pipeline.stages.common import parse_cell, run_cell_stage


def main() -> None:
    cell = parse_cell(__doc__)
    record = baseline_metrics_file(cell.name)
    predictions = base_predictions_file(cell.name)

    def body() -> None:
        manifest = read_manifest(cell.params)
        splits, tokenizer = load_tokenized(cell.model)
        model = build_model(cell.task, cell.model_config, manifest, tokenizer, cell.seed,
                            cell.where)
        batch_size = cell.training.eval_batch_size
        scalars, report, outputs = cell.task.evaluate(model, tokenizer, splits["test"], manifest,
                                                      batch_size, f"baseline {cell.name}")
        write_predictions(cell, outputs, manifest, splits["test"]["labels"], predictions)
        reference = cell.task.reference_scores(load_split(cell.params.dataset.name, "test"))
        extra = extra_set_scores(cell, model, tokenizer, manifest, "baseline")
        write_json(record, {"status": SUCCESS, **scalars, "reference_scores": reference,
                            "extra": extra, "report": report})

    def on_failure(failure: dict[str, Any]) -> None:
        with atomic_file(predictions) as scratch:
            scratch.write_text("", encoding="utf-8")
        write_json(record, failure)

    run_cell_stage("baseline_eval", body, on_failure)


if __name__ == "__main__":
    run_cli(main)
