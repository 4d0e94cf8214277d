"""A model's files before any network is built: where they are (a GGUF file dequantized once
into a normal folder), the identity of its weights, and its tokenizer.

Apart from `pipeline.modeling` so that the tokenize stage does not load transformers' model
code (torch.distributed, the loss modules, scipy: 3-4 s of every process's start).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from filelock import FileLock
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from pipeline.config import ModelConfig
from pipeline.errors import SourceError
from pipeline.io import atomic_dir, sha256
from pipeline.paths import gguf_cache_dir
from pipeline.sources import WEIGHT_FILES, model_location, resolve_path

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
    """Model code loads only here (rarely: once per GGUF file), not for every tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, GgufConfig

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
