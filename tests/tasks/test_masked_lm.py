import math

import numpy as np
import pandas as pd
import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForMaskedLM, AutoTokenizer, BertConfig, BertForMaskedLM

from pipeline.config import DatasetConfig, MaskingSettings, TaskConfig, build
from pipeline.errors import DataError
from pipeline.tasks.language_modeling import blocks
from pipeline.tasks.masked_lm import MaskedLanguageModeling

REVIEWS = ["An unexpectedly moving portrait of grief, with superb performances throughout.",
           "Tedious, overlong and relentlessly predictable; the cast deserves better.",
           "A charming, featherweight comedy that never overstays its welcome."] * 20


def masked_lm(**masking) -> MaskedLanguageModeling:
    return MaskedLanguageModeling(TaskConfig("masked_lm", masking=MaskingSettings(**masking)))


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    return AutoTokenizer.from_pretrained(minilm_dir)


@pytest.fixture(scope="module")
def tiny_model(tokenizer):
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64)
    return BertForMaskedLM(config).eval()


def models_own_loss(model, split: Dataset, shift: int) -> float:
    """The mean loss per scored token, from the model's own loss on one block at a time."""
    total, tokens = 0.0, 0
    for row in split:
        batch = {key: torch.tensor([row[key]]) for key in ("input_ids", "attention_mask", "labels")}
        count = sum(label != -100 for label in row["labels"][shift:])
        with torch.inference_mode():
            total += float(model(**batch).loss) * count
        tokens += count
    return total / tokens


def texts(items: list[str]) -> Dataset:
    return Dataset.from_pandas(pd.DataFrame({"text": items}))


def test_blocks_join_texts_and_cut_them_keeping_the_tail_only_for_evaluation():
    encoded = {"input_ids": [[1, 2, 3], [4, 5], [6, 7, 8, 9]], "mask": [[1] * 3, [1] * 2, [1] * 4]}
    assert blocks(encoded, 4, keep_tail=False) == {"input_ids": [[1, 2, 3, 4], [5, 6, 7, 8]],
                                                   "mask": [[1] * 4, [1] * 4]}
    assert blocks(encoded, 4, keep_tail=True)["input_ids"] == [[1, 2, 3, 4], [5, 6, 7, 8], [9]]


def test_prepare_keeps_one_text_column_and_drops_blank_texts():
    cfg = build(DatasetConfig, {"name": "reviews", "source": "local", "path": "x",
                                "text_columns": ["review"]}, "dataset")
    frame = pd.DataFrame({"review": [" Good. ", "  ", None, "Bad."], "stars": [5, 1, 2, 1]})
    assert masked_lm().prepare(frame, cfg, "data").to_dict("list") == {"text": ["Good.", "Bad."]}
    with pytest.raises(DataError, match=r"no column 'text'.*dataset.text_columns"):
        masked_lm().prepare(frame.rename(columns={"review": "body"}),
                            build(DatasetConfig, {"name": "r", "source": "local", "path": "x",
                                                  "text_columns": ["text"]}, "d"), "data")


def test_prepare_honours_drop_labels_when_the_data_has_labels():
    cfg = build(DatasetConfig, {"name": "rt", "source": "local", "path": "x",
                                "text_columns": ["text"], "label_column": "category",
                                "drop_labels": ["plot"]}, "dataset")
    frame = pd.DataFrame({"text": ["A review.", "A plot summary.", "Another review."],
                          "category": ["fresh", "plot", "rotten"]})
    assert masked_lm().prepare(frame, cfg, "data")["text"].tolist() == ["A review.",
                                                                        "Another review."]


def test_held_out_blocks_are_masked_once_the_same_way_and_training_blocks_are_not(tokenizer):
    task = masked_lm(probability=0.2)
    first = task.tokenize(texts(REVIEWS), tokenizer, 32, {}, training=False)
    again = task.tokenize(texts(REVIEWS), tokenizer, 32, {}, training=False)
    assert first["labels"] == again["labels"] and first["input_ids"] == again["input_ids"]
    labels = np.concatenate([np.array(row) for row in first["labels"]])
    assert 0.12 < (labels != -100).mean() < 0.28
    masked_ids = np.concatenate([np.array(row) for row in first["input_ids"]])[labels != -100]
    assert 0.65 < (masked_ids == tokenizer.mask_token_id).mean() < 0.95  # 80% become [MASK]
    training = task.tokenize(texts(REVIEWS), tokenizer, 32, {}, training=True)
    assert "labels" not in training.column_names
    assert {len(ids) for ids in training["input_ids"]} == {32}
    batch = task.collator(tokenizer)([training[i] for i in range(4)])
    assert batch["labels"].shape == (4, 32) and (batch["labels"] != -100).any()
    special = np.isin(batch["labels"].numpy(), [tokenizer.cls_token_id, tokenizer.sep_token_id])
    assert not special.any()  # [CLS] and [SEP] are never masked


def test_whole_word_masking_hides_every_piece_of_a_chosen_word(tokenizer):
    task = masked_lm(probability=0.3, whole_word=True)
    split = task.tokenize(texts(["unexpectedly featherweight relentlessly " * 5]), tokenizer, 64,
                          {}, training=False)
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("unexpectedly featherweight "
                                                       "relentlessly " * 5)["input_ids"])
    masked = [label != -100 for label in split[0]["labels"]]
    for index, token in enumerate(tokens):
        if token.startswith("##"):  # a continuation piece: masked exactly when its word start is
            start = index
            while tokens[start].startswith("##"):
                start -= 1
            assert masked[index] == masked[start], tokens[start:index + 1]
    assert any(masked)


def test_perplexity_is_the_exponential_of_the_models_own_loss_on_the_masked_tokens(
        tokenizer, tiny_model):
    task = masked_lm()
    split = task.tokenize(texts(REVIEWS), tokenizer, 32, {}, training=False)
    scalars, report, rows = task.evaluate(tiny_model, tokenizer, split, {}, 8, "test")
    reference = models_own_loss(tiny_model, split, shift=0)
    assert scalars["loss"] == pytest.approx(reference, rel=1e-5)
    assert scalars["perplexity"] == pytest.approx(math.exp(reference), rel=1e-5)
    assert 0 <= scalars["token_accuracy"] <= 1
    assert report["scored_tokens"] == sum(row["scored_tokens"] for row in rows)
    assert len(rows) == len(split) and rows[0]["masked_text"].startswith("[CLS]")
    assert len(rows[0]["reference"].split()) == rows[0]["scored_tokens"]


def test_a_tokenizer_without_a_mask_token_is_refused(tokenizer):
    no_mask = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    no_mask.mask_token = None
    with pytest.raises(DataError, match="has no mask token"):
        masked_lm().tokenize(texts(REVIEWS[:2]), no_mask, 32, {}, training=True)


def test_predict_fills_each_mask_and_keeps_the_other_words(minilm_dir, tokenizer):
    model = AutoModelForMaskedLM.from_pretrained(minilm_dir).eval()
    (result,) = masked_lm().predict(["the movie was [MASK] and long ."], model, tokenizer)
    assert "[MASK]" not in result["output"]
    # the head is untrained (random): a word piece ("##side") joins the word before it
    squeezed = result["output"].replace(" ", "")
    assert squeezed.startswith("themoviewas") and squeezed.endswith("andlong.")
    assert len(squeezed) > len("themoviewasandlong.")
