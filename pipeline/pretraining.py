"""Pre-training a masked language model from scratch on the experiment's training texts,
with the tokenizer that `train_tokenizer@<name>` learnt (stage `pretrain@<name>`).

Only the training split is read for training; perplexity is measured on the validation
split, before and after.
"""

from __future__ import annotations

import logging
import shutil
import time
from typing import Any

from datasets import Dataset
from transformers import AutoTokenizer, EarlyStoppingCallback, Trainer

from pipeline.config import Params, PretrainingConfig, TaskConfig
from pipeline.data import load_split, training_share
from pipeline.errors import PipelineError
from pipeline.io import atomic_dir, write_json
from pipeline.modeling import build_model
from pipeline.paths import checkpoint_dir, pretrained_dir, trained_tokenizer_dir
from pipeline.records import SUCCESS, curve_points
from pipeline.tasks import TaskAdapter
from pipeline.tasks.masked_lm import MaskedLanguageModeling
from pipeline.tracking import log_artifacts, log_metrics
from pipeline.training import training_arguments

log = logging.getLogger("pretrain")


def text_blocks(params: Params, task: TaskAdapter, language_model: MaskedLanguageModeling,
                tokenizer: Any, max_length: int) -> dict[str, Dataset]:
    """The training and validation texts of the experiment (whatever its task) as blocks."""
    blocks = {}
    for split in ("train", "validation"):
        texts = Dataset.from_dict({"text": list(task.texts(load_split(params.dataset.name, split)))})
        blocks[split] = language_model.tokenize(texts, tokenizer, max_length, {},
                                                training=split == "train")
    return blocks


def pretrain(params: Params, task: TaskAdapter, name: str, entry: PretrainingConfig,
             run_id: str) -> dict[str, Any]:
    cfg = entry.training(f"pretraining.{name}.train")
    folder = trained_tokenizer_dir(name)
    if not (folder / "tokenizer_config.json").is_file():
        raise PipelineError(f"{folder}: missing. Run train_tokenizer@{name} first (`dvc repro`).")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    language_model = MaskedLanguageModeling(TaskConfig(name="masked_lm", masking=entry.masking))
    blocks = text_blocks(params, task, language_model, tokenizer, entry.max_length)
    model = build_model(language_model, entry.model, {}, tokenizer, entry.seed,
                        f"pretraining.{name}")
    log.info("%s: %s with %.1fM parameters, %d training blocks of %d tokens", name,
             type(model).__name__, model.num_parameters() / 1e6, len(blocks["train"]),
             entry.max_length)

    def perplexity(desc: str) -> dict[str, float]:
        return language_model.evaluate(model, tokenizer, blocks["validation"], {},
                                       cfg.eval_batch_size, desc)[0]

    before = perplexity(f"{name} before pre-training")
    callbacks = [EarlyStoppingCallback(cfg.early_stopping_patience)] \
        if cfg.early_stopping_patience else []
    shutil.rmtree(checkpoint_dir(f"pretrain-{name}"), ignore_errors=True)
    trainer = Trainer(model=model,
                      args=training_arguments(cfg, checkpoint_dir(f"pretrain-{name}"), entry.seed,
                                              language_model, loss_only=True),
                      train_dataset=training_share(blocks["train"], cfg.data_fraction,
                                                   params.dataset.split_seed),
                      eval_dataset=blocks["validation"],
                      data_collator=language_model.collator(tokenizer),
                      processing_class=tokenizer, callbacks=callbacks)
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    after = perplexity(f"{name} after pre-training")
    summary = {"status": SUCCESS, "mlflow_run_id": run_id, "train_seconds": round(seconds, 2),
               "train_samples_per_second": round(result.metrics["train_samples_per_second"], 3),
               "steps": trainer.state.global_step, "parameters": model.num_parameters(),
               "vocabulary": len(tokenizer), "training_blocks": len(blocks["train"]),
               **{f"base_{key}": value for key, value in before.items()},
               **{f"final_{key}": value for key, value in after.items()}}
    with atomic_dir(pretrained_dir(name)) as scratch:
        trainer.save_model(str(scratch))
        tokenizer.save_pretrained(scratch)
        write_json(scratch / "curves.json", trainer.state.log_history)
        write_json(scratch / "pretraining.json", summary)
    log_metrics(params, run_id, [*curve_points(trainer.state.log_history),
                                 *((key, value, 0) for key, value in summary.items()
                                   if key.startswith(("base_", "final_")))])
    log_artifacts(params, run_id, [pretrained_dir(name) / "pretraining.json"])
    shutil.rmtree(checkpoint_dir(f"pretrain-{name}"), ignore_errors=True)
    return summary
