"""The variants' pure helpers: the rows' fingerprint and the generated-token count, and what
the generation benchmark's timing relies on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.generation import generated_tokens
from benchmarks.variants import cell_text, rows_digest


def test_lists_read_back_from_parquet_as_arrays_give_the_same_digest():
    written = {"train": pd.DataFrame({"tokens": [["EU", "rejects"]], "tags": [["B-ORG", "O"]]})}
    read_back = {"train": pd.DataFrame({"tags": [np.array(["B-ORG", "O"], dtype=object)],
                                        "tokens": [np.array(["EU", "rejects"], dtype=object)]})}
    assert rows_digest(written) == rows_digest(read_back)
    assert cell_text(["a", "b"]) == cell_text(np.array(["a", "b"])) == "a\x1eb"


def test_the_digest_changes_with_a_row_or_its_order():
    frame = pd.DataFrame({"text": ["a", "b"], "label": ["fresh", "rotten"]})
    digest = rows_digest({"test": frame})
    assert rows_digest({"test": frame.iloc[::-1]}) != digest
    assert rows_digest({"test": frame.assign(label=["fresh", "fresh"])}) != digest


def test_generated_tokens_count_every_output_without_special_tokens():
    def tokenizer(texts, add_special_tokens):
        assert add_special_tokens is False
        return {"input_ids": [text.split() for text in texts]}

    assert generated_tokens(tokenizer, ["un chien", "", "deux chats noirs"]) == 5
    assert generated_tokens(tokenizer, []) == 0


def test_the_generation_benchmark_times_what_the_adapter_calls_to_generate(monkeypatch):
    """benchmarks/generation.py times the pipeline's generation by replacing
    `pipeline.evaluation.generate_texts`: the adapter must look it up there when it evaluates."""
    from pipeline import evaluation
    from pipeline.config import TaskConfig
    from pipeline.tasks.translation import Translation

    class Called(Exception):
        pass

    def generate_texts(*args, **kwargs):
        raise Called

    monkeypatch.setattr(evaluation, "generate_texts", generate_texts)
    task = Translation(TaskConfig("translation", source_lang="en", target_lang="fr"))
    with pytest.raises(Called):
        task.evaluate(None, None, None, {"labels": []}, 8, "test")
