"""Building models from their sources, pretrained or freshly initialised (their files and
tokenizers: pipeline.model_files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoTokenizer,
    EncoderDecoderModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers import set_seed as set_transformers_seed

from pipeline.config import ModelConfig
from pipeline.errors import ConfigError, SourceError
from pipeline.model_files import model_folder, special_token_ids
from pipeline.sources import check_weights
from pipeline.tasks.base import TaskAdapter


def build_model(task: TaskAdapter, cfg: ModelConfig, manifest: dict[str, Any],
                tokenizer: PreTrainedTokenizerBase, seed: int, where: str) -> PreTrainedModel:
    """The model to fine-tune, its task head initialised from `seed`.

    With `pretrained: false` the whole network is random: the baseline that shows
    what pre-training is worth. The task checks the model before it is used.
    """
    set_transformers_seed(seed)
    if cfg.pretrained:
        model = pretrained_model(task, cfg, manifest, tokenizer, where)
        task.check_model(model, f"{where}.path")
    else:
        model = random_model(task, cfg, manifest, tokenizer, where)
        task.check_model(model, f"{where}.architecture")
    return model


def random_model(task: TaskAdapter, cfg: ModelConfig, manifest: dict[str, Any],
                 tokenizer: PreTrainedTokenizerBase, where: str) -> PreTrainedModel:
    """A network shaped by `cfg.architecture`, with random weights, sized to the tokenizer."""
    architecture = dict(cfg.architecture or {})
    model_type = architecture.pop("model_type")
    config = AutoConfig.for_model(model_type, vocab_size=len(tokenizer), **architecture,
                                  **special_token_ids(tokenizer), **task.head_config(manifest))
    try:
        return task.model_class.from_config(config)
    except ValueError as error:  # no such head for this model type
        raise ConfigError(f"{where}.architecture: model_type '{model_type}' cannot be built as "
                          f"{task.model_class.__name__} ({str(error).splitlines()[0]}); choose "
                          "an architecture with that head (conf/architecture/)") from None


def pretrained_model(task: TaskAdapter, cfg: ModelConfig, manifest: dict[str, Any],
                     tokenizer: PreTrainedTokenizerBase, where: str) -> PreTrainedModel:
    """The model's pretrained weights with the task's head (new, seeded, where it adds one)."""
    head = task.head_config(manifest)
    location = model_folder(cfg, where)
    if cfg.source != "hub" and not cfg.allow_unsafe_weights:
        check_weights(location, f"{where}.path")
    options = {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code,
               "use_safetensors": None if cfg.allow_unsafe_weights else True}
    try:
        if cfg.encoder_decoder:
            return warm_started_encoder_decoder(location, tokenizer, options)
        return task.model_class.from_pretrained(location, **options, **head)
    except (OSError, ValueError) as error:
        raise SourceError(f"{where}.path: cannot load '{location}' as a "
                          f"{task.model_class.__name__} ({error})") from None


def warm_started_encoder_decoder(location: str, tokenizer: PreTrainedTokenizerBase,
                                 options: dict[str, Any]) -> PreTrainedModel:
    """Encoder and decoder both from one encoder checkpoint; the decoder gets causal masks
    and new cross-attention layers, and generation starts from the tokenizer's start token."""
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(
        location, location, encoder_use_safetensors=options["use_safetensors"],
        decoder_use_safetensors=options["use_safetensors"], encoder_revision=options["revision"],
        decoder_revision=options["revision"])
    ids = special_token_ids(tokenizer)
    for key, value in ids.items():
        setattr(model.config, key, value)
        setattr(model.generation_config, key, value)
    model.config.vocab_size = model.config.decoder.vocab_size
    return model


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
