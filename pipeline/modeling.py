"""Loading tokenizers and models from their sources, pretrained or freshly initialised."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    EncoderDecoderModel,
    GgufConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers import set_seed as set_transformers_seed

from pipeline.config import ModelConfig
from pipeline.errors import ConfigError, SourceError
from pipeline.io import atomic_dir, sha256
from pipeline.paths import gguf_cache_dir
from pipeline.sources import WEIGHT_FILES, check_weights, model_location, resolve_path
from pipeline.tasks.base import TaskAdapter

log = logging.getLogger(__name__)


def model_folder(cfg: ModelConfig, where: str) -> str:
    """What `from_pretrained` reads for this model: its source, or for a GGUF file the
    normal folder it was dequantized into."""
    if cfg.gguf_file is None:
        return model_location(cfg.source, cfg.path, f"{where}.path")
    return dequantized_folder(cfg, where)


def dequantized_folder(cfg: ModelConfig, where: str) -> str:
    """A GGUF checkpoint as a normal float32 model folder, converted on first use and kept in
    the user's cache (keyed by the file's hash), so later stages load it like any other."""
    if cfg.source == "hub":
        origin = cfg.path
        key = hashlib.sha256(f"{cfg.path}@{cfg.revision}/{cfg.gguf_file}".encode()).hexdigest()
    else:
        origin = str(resolve_path(cfg.source, cfg.path, f"{where}.path"))
        file = Path(origin) / cfg.gguf_file
        if not file.is_file():
            found = sorted(path.name for path in Path(origin).glob("*.gguf")) or ["none"]
            raise SourceError(f"{where}.gguf_file: no '{cfg.gguf_file}' in {origin} (GGUF files "
                              f"there: {', '.join(found)})")
        key = sha256(file)
    target = gguf_cache_dir() / key[:16]
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{target}.lock", timeout=1800):  # parallel cells convert it once
        if not (target / "config.json").is_file():
            log.info("%s: dequantizing %s to float32 in %s (once)", where, cfg.gguf_file, target)
            with atomic_dir(target) as scratch:
                save_dequantized(origin, cfg, scratch, where)
    return str(target)


def save_dequantized(origin: str, cfg: ModelConfig, folder: Path, where: str) -> None:
    options = {"gguf_file": cfg.gguf_file, "revision": cfg.revision}
    tokenizer = AutoTokenizer.from_pretrained(origin, **options)
    model = AutoModelForCausalLM.from_pretrained(
        origin, quantization_config=GgufConfig(dequantize=True), dtype=torch.float32, **options)
    packed = sorted({type(module).__name__ for module in model.modules()
                     if "Gguf" in type(module).__name__})
    if packed:
        raise SourceError(f"{where}.gguf_file: {cfg.gguf_file} kept packed GGUF modules "
                          f"{packed} after dequantizing; it cannot become a normal model folder")
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:  # plain float32 weights now: nothing left to keep quantized
        quantizer.remove_quantization_config(model)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def weights_identity(cfg: ModelConfig, where: str) -> str | None:
    """The hash of the starting weights when they are a local or packaged file (Hub models
    are pinned by `revision`; models from scratch have none)."""
    if not cfg.pretrained or cfg.source == "hub" or cfg.source is None:
        return None
    folder = resolve_path(cfg.source, cfg.path, f"{where}.path")
    files = [folder / cfg.gguf_file] if cfg.gguf_file else [
        folder / name for name in WEIGHT_FILES if (folder / name).is_file()]
    return ",".join(sha256(file) for file in files) or None


def load_tokenizer(cfg: ModelConfig, where: str) -> PreTrainedTokenizerBase:
    """The pretrained tokenizer at the model's source (trained tokenizers: see tokenize)."""
    location = model_folder(cfg, where)
    try:
        return AutoTokenizer.from_pretrained(location, revision=cfg.revision,
                                             trust_remote_code=cfg.trust_remote_code)
    except OSError as error:
        raise SourceError(f"{where}.path: cannot load a tokenizer from '{location}' ({error})") \
            from None


def special_token_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int | None]:
    """The tokenizer's padding, start and end ids, for a model config built around it: a
    network built from scratch, or a decoder warm-started from an encoder (BERT2BERT)."""
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id
    end = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    return {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": start, "eos_token_id": end,
            "decoder_start_token_id": start}


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
