"""The arithmetic of training steps and the refusal of a training that cannot learn."""

import logging
import math
from pathlib import Path

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


def test_full_fine_tuning_trains_exactly_as_before_train_peft_existed(tmp_path, monkeypatch,
                                                                      minilm_dir):
    """peft.method none (the default) must leave full fine-tuning bit for bit as it was: `fit`
    gives the same weights and losses as the Trainer run it made before LoRA was added (the
    same model, arguments, data and seed, with no peft code in between)."""
    import torch
    from datasets import Dataset, DatasetDict
    from transformers import AutoTokenizer, EarlyStoppingCallback, Trainer

    from pipeline.config import parse_params
    from pipeline.experiment import Cell
    from pipeline.modeling import build_model
    from pipeline.tasks import get_task
    from pipeline.training import fit, training_arguments

    monkeypatch.chdir(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    words = ["good", "bad", "fine", "dull", "warm", "cold", "funny", "slow"]
    texts = [f"{words[i % 8]} film {words[(i * 3) % 8]} plot" for i in range(48)]
    split = Dataset.from_dict({**tokenizer(texts, truncation=True, max_length=16),
                               "labels": [i % 2 for i in range(48)]})
    DatasetDict(train=split, validation=split.select(range(16)), test=split.select(range(16))
                ).save_to_disk("data/tokenized/tiny/splits")
    tokenizer.save_pretrained("data/tokenized/tiny/tokenizer")
    Path("data/tokenized/tiny/info.json").write_text("{}")
    params = parse_params({
        "experiment_name": "t", "task": {"name": "text_classification"}, "seeds": [1],
        "dataset": {"name": "d", "source": "local", "path": "d.csv", "text_columns": ["text"],
                    "label_column": "label", "watch": "d.csv"},
        "models": {"tiny": {"source": "local", "path": str(minilm_dir), "pretrained": False,
                            "watch": str(minilm_dir), "max_length": 16, "architecture": {
                                "model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1,
                                "num_attention_heads": 2, "intermediate_size": 64}}},
        "train": {"epochs": 2, "batch_size": 8, "learning_rate": 1e-3, "logging_steps": 2}})
    cell = Cell(params, get_task(params.task), "tiny", 1)
    manifest = {"labels": ["a", "b"], "label_counts": {"train": {"a": 24, "b": 24}},
                "splits": {}}
    trainer, result, _, size = fit(cell, cell.training, manifest, resume=False, launched=False)

    model = build_model(cell.task, cell.model_config, manifest, tokenizer, 1, cell.where)
    before = Trainer(model=model, args=training_arguments(cell.training, tmp_path / "before", 1,
                                                          cell.task, loss_only=False),
                     train_dataset=split, eval_dataset=split.select(range(16)),
                     data_collator=cell.task.collator(tokenizer), processing_class=tokenizer,
                     compute_metrics=cell.task.validation_metrics(manifest),
                     callbacks=[EarlyStoppingCallback(2)])
    expected = before.train()
    assert result.metrics["train_loss"] == expected.metrics["train_loss"]
    assert size == sum(p.numel() for p in model.parameters())
    mine, theirs = trainer.model.state_dict(), before.model.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[key], theirs[key]) for key in mine)
    assert [entry.get("loss") for entry in trainer.state.log_history] == [
        entry.get("loss") for entry in before.state.log_history]


def one_sgd_step(model, data, batch: int, accumulation: int, tmp_path: Path,
                 compute_loss_func=None) -> tuple[float, dict]:
    """Train `model` one SGD step on `data` in order; return the logged loss and each
    parameter's change."""
    import torch
    from transformers import TrainingArguments

    from pipeline.training import MeanLossTrainer

    before = {name: tensor.detach().clone() for name, tensor in model.named_parameters()}
    args = TrainingArguments(output_dir=str(tmp_path / f"b{batch}"), max_steps=1, optim="sgd",
                             per_device_train_batch_size=batch, learning_rate=0.1,
                             gradient_accumulation_steps=accumulation, max_grad_norm=1e9,
                             lr_scheduler_type="constant", train_sampling_strategy="sequential",
                             save_strategy="no", report_to="none", use_cpu=True)
    result = MeanLossTrainer(model=model, args=args, train_dataset=data,
                             compute_loss_func=compute_loss_func).train()
    with torch.no_grad():
        change = {name: tensor - before[name] for name, tensor in model.named_parameters()}
    return result.training_loss, change


def tiny_classifier():
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))


def tiny_causal_lm():
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=1,
                                      n_head=2, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))


@pytest.mark.parametrize("kind", ["classifier", "class_weighted_classifier", "causal_lm"])
def test_gradient_accumulation_takes_the_step_and_logs_the_loss_of_one_whole_batch(kind,
                                                                                  tmp_path):
    """Batch 16 in one piece or as two accumulated halves: the same update and the same
    logged loss, and that loss is the batch's mean cross-entropy computed here. transformers'
    own Trainer doubles both at two steps for BERT's heads (a forward taking **kwargs) and for
    a `compute_loss_func`, which is what MeanLossTrainer corrects."""
    import torch
    from datasets import Dataset

    from pipeline.training import class_weighted_loss

    ids = [[1, 5 + i % 7, 9 + i % 5, 2] for i in range(16)]
    weighted = None
    if kind == "causal_lm":
        build, data = tiny_causal_lm, Dataset.from_dict({"input_ids": ids, "labels": ids})
    else:  # every half of the batch holds 4 examples of each label
        build = tiny_classifier
        data = Dataset.from_dict({"input_ids": ids, "labels": [i % 2 for i in range(16)]})
        if kind == "class_weighted_classifier":
            weighted = class_weighted_loss({"labels": ["a", "b"],
                                            "label_counts": {"train": {"a": 30, "b": 10}}})

    whole_loss, whole_change = one_sgd_step(build(), data, 16, 1, tmp_path, weighted)
    halves_loss, halves_change = one_sgd_step(build(), data, 8, 2, tmp_path, weighted)

    model, batch = build(), torch.tensor(ids)
    with torch.no_grad():
        logits = model(input_ids=batch).logits
    if kind == "causal_lm":
        expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 50),
                                                     batch[:, 1:].reshape(-1))
    else:
        weights = torch.tensor([40 / (2 * 30), 40 / (2 * 10)]) if weighted else None
        expected = torch.nn.functional.cross_entropy(logits, torch.arange(16) % 2,
                                                     weight=weights)
    assert whole_loss == pytest.approx(expected.item(), rel=1e-5)
    assert halves_loss == pytest.approx(expected.item(), rel=1e-5)
    for name, change in whole_change.items():
        assert torch.allclose(halves_change[name], change, rtol=1e-3, atol=1e-7), name
    assert max(change.abs().max().item() for change in whole_change.values()) > 1e-4
