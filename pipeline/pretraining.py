"""Pre-training a language model from scratch on the experiment's training texts, with the
tokenizer that `train_tokenizer@<name>` learnt (stage `pretrain@<name>`), by its objective:
masked LM (an encoder) or causal LM (a decoder).

Only the training split is read for training; perplexity is measured on the validation
split, before and after, beside that of a unigram model of the training tokens: a network
that beats it uses context.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from typing import Any

import numpy as np
from datasets import Dataset
from transformers import AutoTokenizer, EarlyStoppingCallback

from pipeline.config import Params, PretrainingConfig
from pipeline.data import load_split, training_share
from pipeline.errors import PipelineError
from pipeline.io import atomic_dir, write_json
from pipeline.modeling import build_model
from pipeline.paths import checkpoint_dir, pretrained_dir, trained_tokenizer_dir
from pipeline.records import SUCCESS, curve_points
from pipeline.tasks import TaskAdapter, get_task
from pipeline.tasks.language_modeling import LanguageModeling
from pipeline.tracking import log_artifacts, log_metrics
from pipeline.training import MeanLossTrainer, training_arguments

log = logging.getLogger("pretrain")


def text_blocks(params: Params, task: TaskAdapter, language_model: LanguageModeling,
                tokenizer: Any, max_length: int) -> dict[str, Dataset]:
    """The training and validation texts of the experiment (whatever its task) as blocks."""
    blocks = {}
    for split in ("train", "validation"):
        texts = Dataset.from_dict({"text": list(task.texts(load_split(params.dataset.name, split)))})
        blocks[split] = language_model.tokenize(texts, tokenizer, max_length, {},
                                                training=split == "train")
    return blocks


def unigram_perplexity(blocks: dict[str, Dataset], vocabulary: int, causal: bool) -> float:
    """The perplexity, on the tokens validation scores, of a model that ignores context:
    each token's frequency among the training tokens (add-one smoothed, so that a token
    never seen in training still has a probability). Causal LMs score every token but the
    first of each block; masked LMs the masked ones."""
    counts = np.bincount(np.concatenate([np.asarray(ids) for ids in blocks["train"]["input_ids"]]),
                         minlength=vocabulary) + 1.0
    log_probabilities = np.log(counts / counts.sum())
    scored = np.concatenate([np.asarray(labels[1:] if causal else labels, dtype=np.int64)
                             for labels in blocks["validation"]["labels"]])
    scored = scored[scored != -100]
    return math.exp(-float(log_probabilities[scored].mean()))


def pretrain(params: Params, task: TaskAdapter, name: str, entry: PretrainingConfig,
             run_id: str) -> dict[str, Any]:
    cfg = entry.training(f"pretraining.{name}.train")
    folder = trained_tokenizer_dir(name)
    if not (folder / "tokenizer_config.json").is_file():
        raise PipelineError(f"{folder}: missing. Run train_tokenizer@{name} first (`dvc repro`).")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    language_model: LanguageModeling = get_task(entry.task)  # type: ignore[assignment]
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
    trainer = MeanLossTrainer(
        model=model,
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
               "unigram_perplexity": unigram_perplexity(blocks, len(tokenizer),
                                                        language_model.causal),
               **{f"base_{key}": value for key, value in before.items()},
               **{f"final_{key}": value for key, value in after.items()}}
    with atomic_dir(pretrained_dir(name)) as scratch:
        trainer.save_model(str(scratch))
        tokenizer.save_pretrained(scratch)
        write_json(scratch / "curves.json", trainer.state.log_history)
        write_json(scratch / "pretraining.json", summary)
    log_metrics(params, run_id, [*curve_points(trainer.state.log_history),
                                 *((key, value, 0) for key, value in summary.items()
                                   if key.startswith(("base_", "final_", "unigram_")))])
    log_artifacts(params, run_id, [pretrained_dir(name) / "pretraining.json"])
    shutil.rmtree(checkpoint_dir(f"pretrain-{name}"), ignore_errors=True)
    return summary
