"""The variants' pure helpers: the rows' fingerprint and the generated-token count."""

from __future__ import annotations

import numpy as np
import pandas as pd

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
