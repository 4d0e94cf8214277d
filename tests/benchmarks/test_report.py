"""The benchmark's pure logic: FLOP counts, warm-up steps, goal checks, tables. No timing."""

from __future__ import annotations

import pytest

from benchmarks.report import (
    EXAMPLE,
    PIPELINE,
    RAW,
    GenerationMeasurement,
    Measurement,
    checks,
    checks_table,
    generation_checks,
    generation_table,
    markdown_table,
    matmul_flops,
    metric_of,
    results_table,
    training_flops,
    warmup_steps,
)


def measurement(variant: str, samples_per_second: float, accuracy: float,
                gflops: float = 10.0, metric: str = "accuracy") -> Measurement:
    """A result whose throughput and FLOP/s are exactly the given figures (10 s of training)."""
    params = 1_000_000
    tokens = round(gflops * 1e9 * 10 / (6 * params))
    return Measurement(variant=variant, train_samples=round(samples_per_second * 10),
                       train_seconds=10.0, wall_seconds=30.0, test_score=accuracy,
                       peak_rss_bytes=512 * 1024 * 1024, real_tokens=tokens,
                       non_embedding_params=params, threads=2, metric=metric,
                       extra={"rows": "abc"})


def generation(variant: str, sentences_per_second: float, bleu: float) -> GenerationMeasurement:
    """A generation result over 20 s: 20 tokens per sentence."""
    sentences = round(sentences_per_second * 20)
    return GenerationMeasurement(variant=variant, sentences=sentences,
                                 generated_tokens=20 * sentences, eval_seconds=20.0,
                                 wall_seconds=40.0, test_score=bleu,
                                 peak_rss_bytes=256 * 1024 * 1024, threads=2,
                                 extra={"rows": "abc"})


def test_training_flops_are_six_per_parameter_and_token():
    assert training_flops(10_000_000, 1000) == 6e10


def test_matmul_flops_count_multiply_and_add():
    assert matmul_flops(1000) == 2e9


@pytest.mark.parametrize(("warmup", "total", "expected"),
                         [(0.1, 125, 13), (0.1, 8, 1), (0.0, 100, 0), (5, 100, 5), (5.0, 100, 5)])
def test_warmup_is_a_share_below_one_and_a_step_count_above(warmup, total, expected):
    assert warmup_steps(warmup, total) == expected


def test_measurement_rates_and_json_round_trip():
    result = measurement(PIPELINE, 40.0, 0.8, gflops=60.0)
    assert result.samples_per_second == pytest.approx(40.0)
    assert result.flops_per_second == pytest.approx(60e9, rel=1e-6)
    assert Measurement.from_json(result.to_json()) == result


def test_checks_compare_ratios_with_the_goals():
    results = {PIPELINE: measurement(PIPELINE, 40.0, 0.805, gflops=60.0),
               EXAMPLE: measurement(EXAMPLE, 10.0, 0.81),
               RAW: measurement(RAW, 50.0, 0.80)}
    found = {check.name: check for check in checks(results, matmul_flops_per_second=150e9)}
    assert found["throughput pipeline / example"].value == pytest.approx(4.0)
    assert found["throughput pipeline / example"].met
    assert found["throughput pipeline / raw loop"].value == pytest.approx(0.8)
    assert found["throughput pipeline / raw loop"].met is False
    assert found["accuracy pipeline - example (points)"].value == pytest.approx(-0.5)
    assert found["accuracy pipeline - example (points)"].met
    assert found["training FLOP/s / fp32 matmul FLOP/s"].value == pytest.approx(0.4, rel=1e-6)
    assert found["training FLOP/s / fp32 matmul FLOP/s"].met is False


@pytest.mark.parametrize(("dvc", "mlflow", "noop", "share", "met"),
                         [(0.2, 0.2, 1.0, 0.04, [True, True]), (0.4, 0.2, 2.5, 0.06, [False, False])])
def test_orchestration_checks_add_dvc_and_mlflow_time_against_the_training(dvc, mlflow, noop,
                                                                           share, met):
    pipeline = measurement(PIPELINE, 40.0, 0.8)  # 10 s of training
    pipeline.extra.update(dvc_seconds=dvc, noop_repro_seconds=noop, mlflow={"cell_seconds": mlflow})
    found = {check.name: check for check in checks({PIPELINE: pipeline}, None)}
    overhead, repro = found["(DVC + MLflow) s / training s"], found["no-op dvc repro s"]
    assert overhead.value == pytest.approx(share)
    assert [overhead.met, repro.met] == met


def test_an_accuracy_drop_of_more_than_one_point_fails():
    results = {PIPELINE: measurement(PIPELINE, 40.0, 0.79), EXAMPLE: measurement(EXAMPLE, 10.0, 0.81)}
    found = {check.name: check for check in checks(results, None)}
    assert found["accuracy pipeline - example (points)"].met is False


def test_checks_whose_variants_did_not_run_have_no_verdict():
    found = checks({RAW: measurement(RAW, 50.0, 0.8)}, matmul_flops_per_second=None)
    assert [check.met for check in found] == [None] * 6
    assert "not run" in checks_table(found)


def test_markdown_table_aligns_columns():
    lines = markdown_table(["a", "long header"], [["wide cell", "1"]]).splitlines()
    assert lines == ["| a         | long header |",
                     "| --------- | ----------- |",
                     "| wide cell | 1           |"]


def test_results_table_lists_variants_in_a_fixed_order_with_their_figures():
    results = {RAW: measurement(RAW, 50.0, 0.8), PIPELINE: measurement(PIPELINE, 40.0, 0.805)}
    lines = results_table(results, matmul_flops_per_second=100e9).splitlines()
    assert [line.split("|")[1].strip() for line in lines[2:]] == [PIPELINE, RAW]
    pipeline = [cell.strip() for cell in lines[2].split("|")[1:-1]]
    assert pipeline[1:7] == ["40.0", "10.0", "10.0", "30.0", "0.8050", "512"]
    assert pipeline[-2:] == ["10.0", "0.10"]


def test_flops_per_second_leave_the_validation_inside_training_out():
    result = measurement(PIPELINE, 40.0, 0.8, gflops=60.0)  # 6e11 FLOPs in 10 s
    result.validation_seconds = 2.5
    assert result.step_seconds == 7.5
    assert result.flops_per_second == pytest.approx(6e11 / 7.5, rel=1e-6)
    assert result.samples_per_second == pytest.approx(40.0)  # the user waits for it all
    row = [cell.strip() for cell in results_table({PIPELINE: result}, 100e9).splitlines()[2]
           .split("|")[1:-1]]
    assert row[2:4] == ["10.0", "7.5"]
    assert row[-2:] == ["80.0", "0.80"]



def test_token_classification_checks_and_table_name_its_metric():
    results = {PIPELINE: measurement(PIPELINE, 40.0, 0.80, metric="f1"),
               EXAMPLE: measurement(EXAMPLE, 10.0, 0.82, metric="f1")}
    found = {check.name: check for check in checks(results, None)}
    assert found["f1 pipeline - example (points)"].value == pytest.approx(-2.0)
    assert found["f1 pipeline - example (points)"].met is False
    assert "test f1" in results_table(results, None).splitlines()[0]


def test_variants_scored_with_different_metrics_are_refused():
    with pytest.raises(ValueError, match="different metrics"):
        metric_of({PIPELINE: measurement(PIPELINE, 40.0, 0.8),
                   RAW: measurement(RAW, 40.0, 0.8, metric="f1")})
    assert metric_of({}) == "accuracy"


def test_generation_rates_and_json_round_trip():
    result = generation(PIPELINE, 2.5, 31.0)
    assert result.sentences_per_second == pytest.approx(2.5)
    assert result.tokens_per_second == pytest.approx(50.0)
    assert GenerationMeasurement.from_json(result.to_json()) == result


def test_generation_checks_compare_sentence_rates_and_bleu_in_points():
    results = {PIPELINE: generation(PIPELINE, 3.0, 30.5), EXAMPLE: generation(EXAMPLE, 1.0, 31.0),
               RAW: generation(RAW, 4.0, 30.0)}
    found = {check.name: check for check in generation_checks(results)}
    assert found["sentences/s pipeline / example"].value == pytest.approx(3.0)
    assert found["sentences/s pipeline / example"].met
    assert found["sentences/s pipeline / raw loop"].value == pytest.approx(0.75)
    assert found["sentences/s pipeline / raw loop"].met is False
    assert found["bleu pipeline - example (points)"].value == pytest.approx(-0.5)
    assert found["bleu pipeline - example (points)"].met
    assert [check.met for check in generation_checks({RAW: results[RAW]})] == [None, None, None]


def test_generation_table_lists_variants_in_a_fixed_order_with_their_figures():
    lines = generation_table({RAW: generation(RAW, 4.0, 30.0),
                              EXAMPLE: generation(EXAMPLE, 1.0, 31.0)}).splitlines()
    assert [line.split("|")[1].strip() for line in lines[2:]] == [EXAMPLE, RAW]
    assert [cell.strip() for cell in lines[3].split("|")[1:-1]] == [
        "raw", "4.00", "80.0", "20.0", "40.0", "30.00", "256", "1600"]
