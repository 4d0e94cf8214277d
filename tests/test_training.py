"""The arithmetic of training steps and the refusal of a training that cannot learn."""

import logging
import math

import pytest

from pipeline.config import TrainConfig
from pipeline.errors import ConfigError
from pipeline.training import check_learning_happens, learning_rates, optimizer_steps


@pytest.mark.parametrize(("rows", "batch", "accumulation", "epochs", "steps"), [
    (96, 500, 1, 1.0, 1), (100, 32, 1, 1.0, 4), (100, 32, 3, 2.0, 4), (100, 10, 4, 1.5, 5)])
def test_optimizer_steps_count_the_last_partial_batch_and_accumulation(rows, batch, accumulation,
                                                                        epochs, steps):
    cfg = TrainConfig(batch_size=batch, gradient_accumulation_steps=accumulation, epochs=epochs)
    batches = -(-rows // batch)  # ceil, counted here without math.ceil
    assert optimizer_steps(cfg, rows) == steps == math.ceil(epochs * -(-batches // accumulation))
    assert optimizer_steps(TrainConfig(max_steps=7), rows) == 7


def test_a_single_warmup_step_has_a_zero_learning_rate_and_is_refused():
    cfg = TrainConfig(batch_size=500, epochs=1, warmup=0.1, learning_rate=1e-4)
    assert learning_rates(cfg, 1) == [0.0]
    with pytest.raises(ConfigError, match=r"models.m.train: 96 training examples in batches of "
                                          r"500 make 1 optimizer step\(s\), 1 of them warm-up"):
        check_learning_happens(cfg, 96, "models.m.train")


def test_linear_warmup_then_decay_as_trainer_schedules_it():
    rates = learning_rates(TrainConfig(warmup=2, learning_rate=1.0), 6)
    assert rates == pytest.approx([0.0, 0.5, 1.0, 0.75, 0.5, 0.25])


def test_a_short_run_is_warned_about_and_a_normal_one_is_not(caplog):
    caplog.set_level(logging.WARNING)
    check_learning_happens(TrainConfig(batch_size=32, warmup=0.1, epochs=1), 96, "train")
    assert "train: only 3 optimizer step(s), 1 of them warm-up" in caplog.text
    caplog.clear()
    check_learning_happens(TrainConfig(batch_size=32, warmup=0.1), 4000, "train")
    assert caplog.text == ""
    check_learning_happens(TrainConfig(batch_size=500, warmup=0), 96, "train")  # lr > 0 at once
