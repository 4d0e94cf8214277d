"""Stage `final_eval@<model>-<seed>`: the fine-tuned model on the test split and on each extra
test set; close the MLflow run.

Logs baseline, fine-tuned and improvement metrics side by side, with the resolved
config, the per-class report and the test predictions as artifacts.
"""

from __future__ import annotations

from typing import Any

from pipeline.adapters import load_fine_tuned
from pipeline.errors import run_cli
from pipeline.experiment import extra_set_scores, load_tokenized, read_manifest, write_predictions
from pipeline.io import atomic_file, read_json, write_json
from pipeline.paths import baseline_metrics_file, final_metrics_file, predictions_file, train_output_dir
from pipeline.records import FAILED, SUCCESS, UpstreamFailure, base_vs_finetuned_metrics, extra_metrics
from pipeline.stages.common import ends_run_if_interrupted, parse_cell, run_cell_stage
from pipeline.tracking import finish_run, log_evaluation, reopen_run


def main() -> None:
    cell = parse_cell(__doc__)
    record = final_metrics_file(cell.name)
    predictions = predictions_file(cell.name)
    baseline = read_json(baseline_metrics_file(cell.name))
    trained = read_json(train_output_dir(cell.name) / "train.json")
    run_id = trained["mlflow_run_id"]

    def body() -> None:
        for upstream in (baseline, trained):
            if upstream["status"] == FAILED:
                raise UpstreamFailure(f"{upstream['stage']} stage: {upstream['error']}")
        reopen_run(cell.params, run_id)
        manifest = read_manifest(cell.params)
        model, tokenizer = load_fine_tuned(cell.task, cell.model_config, manifest, cell.seed,
                                           train_output_dir(cell.name), cell.where)
        test = load_tokenized(cell.model)[0]["test"]
        batch_size = cell.training.eval_batch_size
        scalars, report, outputs = cell.task.evaluate(model, tokenizer, test, manifest,
                                                      batch_size, f"final {cell.name}")
        write_predictions(cell, outputs, manifest, test["labels"], predictions)
        extra = extra_set_scores(cell, model, tokenizer, manifest, "final")
        log_evaluation(cell, run_id, {**base_vs_finetuned_metrics(baseline, scalars),
                                      **extra_metrics(baseline, extra),
                                      **baseline.get("reference_scores", {})},
                       {"base": baseline.get("report"), "finetuned": report}, predictions, manifest)
        write_json(record, {"status": SUCCESS, **scalars, "extra": extra, "report": report})
        finish_run(cell.params, run_id)

    def on_failure(failure: dict[str, Any]) -> None:
        with atomic_file(predictions) as scratch:
            scratch.write_text("", encoding="utf-8")
        write_json(record, failure)
        finish_run(cell.params, run_id, failed_error=failure["error"])

    with ends_run_if_interrupted(cell.params, run_id):
        run_cell_stage("final_eval", body, on_failure)


if __name__ == "__main__":
    run_cli(main)
