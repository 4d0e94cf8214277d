"""Fine-tuning one cell with the transformers Trainer, and resuming it after a crash.

Checkpoints go to checkpoints/<cell>/, outside DVC's outputs (which DVC deletes before a
stage runs): a run killed mid-training resumes from the last one when the cell's settings
and data are unchanged, and logs to the same MLflow run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import EarlyStoppingCallback, Trainer, TrainerState, TrainingArguments
from transformers.trainer_utils import TrainOutput

from pipeline import launch
from pipeline.adapters import parameter_count, save_adapted, with_lora
from pipeline.config import TrainConfig
from pipeline.data import training_share
from pipeline.errors import ConfigError
from pipeline.evaluation import longest_first
from pipeline.experiment import Cell, load_tokenized
from pipeline.io import atomic_dir, read_json, write_json
from pipeline.model_files import weights_identity
from pipeline.modeling import build_model, precision_flags
from pipeline.paths import checkpoint_dir, train_metrics_file, train_output_dir
from pipeline.records import SUCCESS, curve_points
from pipeline.tasks import TaskAdapter
from pipeline.tracking import log_metrics

RESUME_FILE = "resume.json"
COST_FIGURES = ("train_trainable_parameters", "train_trainable_share", "train_weights_mb",
                "train_peak_rss_mb")
#: Fewer optimizer steps than warm-up plus this many: the run barely trains; say so.
FEW_STEPS_AFTER_WARMUP = 5
log = logging.getLogger(__name__)


def training_arguments(cfg: TrainConfig, output_dir: Path, seed: int, task: TaskAdapter,
                       loss_only: bool, launched: bool = False) -> TrainingArguments:
    """`loss_only`: validation measures the loss alone, so Trainer need not gather the
    logits (for a seq2seq model, length x vocabulary floats per example). `launched`: one of
    `cfg.processes` workers, each taking its share of the global batch."""
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size // cfg.processes if launched else cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup,
        lr_scheduler_type=cfg.lr_scheduler,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        max_grad_norm=cfg.max_grad_norm,
        eval_strategy=cfg.eval_strategy,
        save_strategy=cfg.eval_strategy,
        eval_steps=cfg.eval_steps,
        save_steps=cfg.eval_steps,
        logging_steps=cfg.logging_steps,
        prediction_loss_only=loss_only,
        load_best_model_at_end=True,
        metric_for_best_model=cfg.metric_for_best_model,
        greater_is_better=cfg.metric_for_best_model not in task.lower_is_better,
        remove_unused_columns=not task.collator_reads_extra_columns,
        save_total_limit=cfg.save_total_limit,
        save_only_model=False,  # optimizer, scheduler and RNG states, to resume exactly
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        dataloader_num_workers=cfg.dataloader_workers,
        seed=seed,
        data_seed=seed,
        report_to="none",
        **precision_flags(cfg.precision),
        **(launch.distributed_flags() if launched else {}),
    )


class MeanLossTrainer(Trainer):
    """A Trainer whose loss under gradient accumulation is the mean of the accumulated
    batches' losses, each its batch's mean. transformers' Trainer leaves the loss of a model
    whose `forward` takes `**kwargs` (BERT's heads, EncoderDecoder, ...) or of a
    `compute_loss_func` undivided by the accumulation steps, trusting it to normalise by
    `num_items_in_batch`; most heads ignore that count, so the gradient and the logged loss
    came out `gradient_accumulation_steps` times too large. Here every model and loss returns
    its own batch mean and Trainer divides by the steps: one rule for all (at one
    accumulation step, nothing changes)."""

    loss_is_scaled_for_ga = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False


def class_weighted_loss(manifest: dict[str, Any]) -> Callable[..., torch.Tensor]:
    """Cross-entropy weighted by inverse label frequency in the training split."""
    counts = torch.tensor([manifest["label_counts"]["train"][label]
                           for label in manifest["labels"]], dtype=torch.float)
    weights = counts.sum() / (len(counts) * counts)

    def loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        logits = outputs.logits.float()
        return torch.nn.functional.cross_entropy(
            logits.view(-1, logits.size(-1)), labels.view(-1),
            weight=weights.to(logits.device), ignore_index=-100)

    return loss


def logged_params(cell: Cell, cfg: TrainConfig) -> dict[str, Any]:
    """The cell's settings as MLflow logs them (and as its resume fingerprint hashes them)."""
    model = dataclasses.asdict(cell.model_config)
    model.pop("train")
    return {"model": {"name": cell.model, **model}, "seed": cell.seed,
            "task": dataclasses.asdict(cell.params.task),
            "dataset": dataclasses.asdict(cell.params.dataset), "train": dataclasses.asdict(cfg)}


def fingerprint(cell: Cell, cfg: TrainConfig, manifest: dict[str, Any]) -> str:
    """What a checkpoint must match to be resumed: the cell's settings, its data and the
    starting weights when they are a file here (a model pre-trained again meanwhile)."""
    identity = {"params": logged_params(cell, cfg),
                "data": {split: info["sha256"] for split, info in manifest["splits"].items()},
                "weights": weights_identity(cell.model_config, cell.where)}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def resumable_run(folder: Path, identity: str) -> str | None:
    """The MLflow run of an interrupted training with the same identity, if its checkpoints
    are still there; otherwise clear the folder."""
    state = folder / RESUME_FILE
    for partial in folder.glob("checkpoint-*"):  # killed while writing it
        if not (partial / "trainer_state.json").is_file():
            shutil.rmtree(partial)
    if state.is_file() and any(folder.glob("checkpoint-*/trainer_state.json")):
        saved = read_json(state)
        if saved["fingerprint"] == identity:
            return saved["mlflow_run_id"]
    shutil.rmtree(folder, ignore_errors=True)
    return None


def remember_run(folder: Path, identity: str, run_id: str) -> None:
    """Written before training starts, so that a killed run can be resumed into."""
    write_json(folder / RESUME_FILE, {"fingerprint": identity, "mlflow_run_id": run_id})


def optimizer_steps(cfg: TrainConfig, rows: int) -> int:
    """The optimizer steps Trainer takes on `rows` training examples, by its own arithmetic
    (a last, smaller batch counts; `batch_size` is the global batch)."""
    if cfg.max_steps > 0:
        return cfg.max_steps
    batches = math.ceil(rows / cfg.batch_size)
    accumulation = cfg.gradient_accumulation_steps
    per_epoch = max(batches // accumulation + int(batches % accumulation > 0), 1)
    return math.ceil(cfg.epochs * per_epoch)


def learning_rates(cfg: TrainConfig, steps: int) -> list[float]:
    """The learning rate of every optimizer step, from the scheduler Trainer builds."""
    from transformers import get_scheduler

    warmup = int(cfg.warmup) if cfg.warmup >= 1 else math.ceil(steps * cfg.warmup)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.learning_rate)
    scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=warmup,
                              num_training_steps=steps)
    rates = []
    for _ in range(steps):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return rates


def check_learning_happens(cfg: TrainConfig, rows: int, where: str) -> None:
    """Refuse a training whose every step has a learning rate of 0 (its "fine-tuned" weights
    would be the starting ones, reported as a success), and warn when it barely trains."""
    steps = optimizer_steps(cfg, rows)
    warmup = int(cfg.warmup) if cfg.warmup >= 1 else math.ceil(steps * cfg.warmup)
    if steps > warmup + FEW_STEPS_AFTER_WARMUP:
        return
    if max(learning_rates(cfg, steps)) == 0:
        raise ConfigError(f"{where}: {rows} training examples in batches of {cfg.batch_size} "
                          f"make {steps} optimizer step(s), {warmup} of them warm-up, so the "
                          "learning rate is 0 at every step and training would change nothing. "
                          f"Lower {where}.batch_size or {where}.warmup, or raise {where}.epochs.")
    log.warning("%s: only %d optimizer step(s), %d of them warm-up: this barely trains (raise "
                "epochs or lower batch_size)", where, steps, warmup)


def fit(cell: Cell, cfg: TrainConfig, manifest: dict[str, Any], resume: bool,
        launched: bool) -> tuple[Trainer, TrainOutput, float, int]:
    """Train (every worker runs this); return the trainer, its result, the seconds taken and
    the model's size in parameters (before any LoRA layers are added)."""
    splits, tokenizer = load_tokenized(cell.model)
    train_split = training_share(splits["train"], cfg.data_fraction, cell.params.dataset.split_seed)
    check_learning_happens(cfg, len(train_split), f"{cell.where}.train")
    model = build_model(cell.task, cell.model_config, manifest, tokenizer, cell.seed,
                        cell.where)
    size = parameter_count(model)
    if cfg.peft.method == "lora":
        model = with_lora(model, cfg.peft, cell.task, f"{cell.where}.train.peft")
    compute_metrics = cell.task.validation_metrics(manifest)
    callbacks = []
    if cfg.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(cfg.early_stopping_patience))
    trainer = MeanLossTrainer(
        model=model,
        args=training_arguments(cfg, checkpoint_dir(cell.name), cell.seed, cell.task,
                                loss_only=compute_metrics is None, launched=launched),
        train_dataset=train_split,
        # With train.group_by_length Trainer groups validation batches by length too; without
        # it, it validates in dataset order, each batch padded to its longest: sorted, the
        # batches pad little (the validation metrics do not depend on the order)
        eval_dataset=splits["validation"].select(longest_first(splits["validation"])),
        data_collator=cell.task.collator(tokenizer),
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        compute_loss_func=class_weighted_loss(manifest) if cfg.class_weighted_loss else None,
        callbacks=callbacks,
    )
    check_world_size(cfg, trainer.args.world_size, launched)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume or None)
    return trainer, result, time.perf_counter() - started, size


def check_world_size(cfg: TrainConfig, world_size: int, launched: bool) -> None:
    """A launcher misconfigured elsewhere (an accelerate config file) could start workers that
    each train alone on all the data: refuse rather than train `processes` times over."""
    expected = cfg.processes if launched else 1
    if world_size != expected:
        raise ConfigError(f"train.launcher: expected {expected} training process(es) working "
                          f"together, but Trainer sees {world_size}; check the {cfg.launcher} "
                          "settings outside this pipeline (environment, accelerate config)")


def training_record(cfg: TrainConfig, state: TrainerState, result: TrainOutput, seconds: float,
                    run_id: str, processes: int) -> dict[str, Any]:
    """The cell's training record: metrics/train/<cell>.json and models/<cell>/train.json."""
    return {
        "status": SUCCESS,
        "mlflow_run_id": run_id,
        "train_seconds": round(seconds, 2),
        "train_samples_per_second": round(result.metrics["train_samples_per_second"], 3),
        "train_loss": result.metrics["train_loss"],
        "steps": state.global_step,
        "epochs": state.epoch,
        "best_validation_metric": state.best_metric,
        "metric_for_best_model": cfg.metric_for_best_model,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "processes": processes,
    }


def peak_memory_mb() -> float:
    """The largest resident memory this process has had (Linux reports ru_maxrss in KiB): the
    interpreter and libraries, the data, the model as loaded, and training with its gradients,
    optimizer state and validation. One process of several for a launched training."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def save_fine_tuned(trainer: Trainer, cfg: TrainConfig, folder: Path) -> list[Path]:
    """The fine-tuned model in `folder/model` (with LoRA: the adapter in `folder/adapter`, and
    the merged model unless `peft_merge` is false); returns the weights files this cell adds
    to what the starting model already stores."""
    if cfg.peft.method == "none":
        trainer.save_model(str(folder / "model"))
        return sorted((folder / "model").glob("*.safetensors"))
    return [save_adapted(trainer.model, trainer.processing_class, folder, cfg.peft_merge)]


def cost_figures(trainer: Trainer, size: int) -> dict[str, float]:
    """What fine-tuning this way costs: parameters trained (and their share of the model's)
    and the process's peak memory, taken before saving (merging LoRA unloads its layers)."""
    trainable = parameter_count(trainer.model, trainable_only=True)
    return {"train_trainable_parameters": trainable,
            "train_trainable_share": round(trainable / size, 6),
            "train_peak_rss_mb": peak_memory_mb()}


def megabytes(files: list[Path]) -> float:
    return round(sum(path.stat().st_size for path in files) / 2**20, 3)


def train_cell(cell: Cell, manifest: dict[str, Any], run_id: str, resume: bool,
               launched: bool) -> None:
    """Train; the main process (rank 0 of several) writes the model, curves and record and
    logs the curves and costs to MLflow, the others only train."""
    cfg = cell.training
    trainer, result, seconds, size = fit(cell, cfg, manifest, resume, launched)
    if not trainer.is_world_process_zero():
        return
    record = training_record(cfg, trainer.state, result, seconds, run_id, trainer.args.world_size)
    record.update(cost_figures(trainer, size))
    with atomic_dir(train_output_dir(cell.name)) as scratch:
        record["train_weights_mb"] = megabytes(save_fine_tuned(trainer, cfg, scratch))
        write_json(scratch / "curves.json", trainer.state.log_history)
        log_metrics(cell.params, run_id, [*curve_points(trainer.state.log_history),
                                          *((key, record[key], 0) for key in COST_FIGURES)])
        write_json(scratch / "train.json", record)
    write_json(train_metrics_file(cell.name), record)
