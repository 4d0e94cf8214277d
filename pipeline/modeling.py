"""Loading tokenizers and models from their sources, pretrained or freshly initialised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers import set_seed as set_transformers_seed

from pipeline.config import ModelConfig
from pipeline.errors import ConfigError, SourceError
from pipeline.sources import check_weights, model_location
from pipeline.tasks.base import TaskAdapter


def load_tokenizer(cfg: ModelConfig, where: str) -> PreTrainedTokenizerBase:
    location = model_location(cfg.source, cfg.path, f"{where}.path")
    try:
        return AutoTokenizer.from_pretrained(location, revision=cfg.revision,
                                             trust_remote_code=cfg.trust_remote_code)
    except OSError as error:
        raise SourceError(f"{where}.path: cannot load a tokenizer from '{location}' ({error})") \
            from None


def build_model(task: TaskAdapter, cfg: ModelConfig, manifest: dict[str, Any],
                vocab_size: int, seed: int, where: str) -> PreTrainedModel:
    """The model to fine-tune, its task head initialised from `seed`.

    With `pretrained: false` the whole network is random: the baseline that shows
    what pre-training is worth.
    """
    set_transformers_seed(seed)
    location = model_location(cfg.source, cfg.path, f"{where}.path")
    head = task.head_config(manifest)
    if not cfg.pretrained:
        architecture = dict(cfg.architecture or {})
        model_type = architecture.pop("model_type")
        config = AutoConfig.for_model(model_type, vocab_size=vocab_size, **architecture, **head)
        return task.model_class.from_config(config)
    if cfg.source != "hub" and not cfg.allow_unsafe_weights:
        check_weights(location, f"{where}.path")
    try:
        return task.model_class.from_pretrained(
            location, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code,
            use_safetensors=None if cfg.allow_unsafe_weights else True, **head)
    except (OSError, ValueError) as error:
        raise SourceError(f"{where}.path: cannot load '{location}' as a "
                          f"{task.model_class.__name__} ({error})") from None


def load_trained(task: TaskAdapter, folder: Path) -> tuple[PreTrainedModel,
                                                         PreTrainedTokenizerBase]:
    if not (folder / "config.json").is_file():
        raise SourceError(f"{folder}: no trained model here. Run its train stage first "
                          "(`dvc repro`).")
    model = task.model_class.from_pretrained(folder, use_safetensors=True)
    return model.eval(), AutoTokenizer.from_pretrained(folder)


def precision_flags(precision: str) -> dict[str, bool]:
    """Trainer's fp16/bf16 flags: mixed precision only where CUDA can run it."""
    cuda = torch.cuda.is_available()
    if precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
    if precision != "fp32" and not cuda:
        raise ConfigError(f"train.precision: '{precision}' needs a CUDA GPU, and none is "
                          "visible. Use 'auto' or 'fp32'.")
    return {"fp16": precision == "fp16", "bf16": precision == "bf16"}
