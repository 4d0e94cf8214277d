"""The entry's choice of benchmarks and the options `all` passes on."""

from __future__ import annotations

import pytest

from benchmarks.run import COMPARISONS, check_shared, chosen


def test_options_alone_run_the_text_classification_benchmark():
    assert chosen(["--train-rows", "192"]) == (["text_classification"], ["--train-rows", "192"])
    assert chosen([]) == (["text_classification"], [])


def test_a_named_benchmark_takes_the_rest_and_all_runs_every_one():
    assert chosen(["generation", "--test-rows", "8"]) == (["generation"], ["--test-rows", "8"])
    assert chosen(["all", "--threads", "2"]) == (list(COMPARISONS), ["--threads", "2"])
    assert chosen(["sweep_cost", "--keep"]) == (["sweep_cost"], ["--keep"])


def test_an_unknown_benchmark_is_refused():
    with pytest.raises(SystemExit, match="unknown benchmark 'ner'"):
        chosen(["ner"])


def test_all_refuses_options_that_differ_between_benchmarks():
    check_shared(["--threads", "2", "--seed=3", "--keep", "--workdir", "/tmp"])
    with pytest.raises(SystemExit, match="--train-rows"):
        check_shared(["--train-rows", "192"])
