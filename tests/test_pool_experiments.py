"""pipeline.pool_experiments' reading of params; tests/test_queue_e2e.py pools real experiments."""

from __future__ import annotations

from pipeline.pool_experiments import differing, flattened


def test_params_flatten_to_override_names():
    params = {"seeds": [1, 2], "train": {"learning_rate": 1e-4, "eval_steps": None},
              "pretraining": {}, "models": {"a": {"path": "x/y"}}}
    assert flattened(params) == {"seeds": "[1, 2]", "train.learning_rate": "0.0001",
                                 "train.eval_steps": "null", "pretraining": "{}",
                                 "models.a.path": "x/y"}


def test_only_params_that_differ_are_swept():
    params = {"e1": {"seeds": "[1]", "lr": "0.1", "task": "t"},
              "e2": {"seeds": "[2]", "lr": "0.1", "task": "t"},
              "e3": {"seeds": "[3]", "lr": "0.1", "task": "t", "extra": "1"}}
    assert differing(params) == {"e1": {"extra": "", "seeds": "[1]"},
                                 "e2": {"extra": "", "seeds": "[2]"},
                                 "e3": {"extra": "1", "seeds": "[3]"}}
