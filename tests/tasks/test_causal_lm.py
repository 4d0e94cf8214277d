import math

import pandas as pd
import pytest
from datasets import Dataset
from transformers import AutoConfig, AutoModelForCausalLM

from pipeline.config import GenerationSettings, TaskConfig, TokenizerTraining
from pipeline.modeling import special_token_ids
from pipeline.tasks.causal_lm import CausalLanguageModeling
from pipeline.tokenizer_training import train_tokenizer
from tests.tasks.test_masked_lm import models_own_loss

ARTICLES = ["Shares in the firm rose sharply after the results were announced on Monday.",
            "The minister said the new rules would come into force next year.",
            "The striker scored twice as the home side won the cup final."] * 20
TASK = CausalLanguageModeling(TaskConfig("causal_lm", samples=2, prompt_tokens=6,
                                         generation=GenerationSettings(num_beams=1,
                                                                       max_new_tokens=5)))


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TokenizerTraining(vocab_size=300), ARTICLES, 64)


@pytest.fixture(scope="module")
def tiny_model(tokenizer):
    config = AutoConfig.for_model("llama", vocab_size=len(tokenizer), hidden_size=32,
                                  num_hidden_layers=1, num_attention_heads=2,
                                  num_key_value_heads=2, intermediate_size=64,
                                  **special_token_ids(tokenizer))
    return AutoModelForCausalLM.from_config(config).eval()


def texts(items: list[str]) -> Dataset:
    return Dataset.from_pandas(pd.DataFrame({"text": items}))


def test_every_text_ends_with_the_end_token_and_every_token_is_a_label(tokenizer):
    split = TASK.tokenize(texts(ARTICLES[:3]), tokenizer, 16, {}, training=False)
    ids = [token for block in split["input_ids"] for token in block]
    assert ids.count(tokenizer.eos_token_id) == 3 and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.bos_token_id not in ids  # texts are joined without start tokens
    assert split["labels"] == split["input_ids"]
    training = TASK.tokenize(texts(ARTICLES), tokenizer, 16, {}, training=True)
    assert {len(ids) for ids in training["input_ids"]} == {16}
    assert training["labels"] == training["input_ids"]


def test_perplexity_is_the_exponential_of_the_models_own_next_token_loss(tokenizer, tiny_model):
    split = TASK.tokenize(texts(ARTICLES), tokenizer, 16, {}, training=False)
    scalars, report, _ = TASK.evaluate(tiny_model, tokenizer, split, {}, 8, "test")
    reference = models_own_loss(tiny_model, split, shift=1)  # the model shifts labels itself
    assert scalars["loss"] == pytest.approx(reference, rel=1e-4)
    assert scalars["perplexity"] == pytest.approx(math.exp(reference), rel=1e-4)
    # each block of n tokens scores its n - 1 next tokens
    assert report["scored_tokens"] == sum(len(ids) - 1 for ids in split["input_ids"])


def test_samples_continue_the_opening_tokens_of_test_blocks(tokenizer, tiny_model):
    split = TASK.tokenize(texts(ARTICLES), tokenizer, 16, {}, training=False)
    rows = TASK.evaluate(tiny_model, tokenizer, split, {}, 8, "test")[2]
    assert len(rows) == 2 and set(rows[0]) == {"prompt", "reference", "generated"}
    assert rows[0]["prompt"] == tokenizer.decode(split[0]["input_ids"][:6],
                                                 skip_special_tokens=True)
    table = TASK.prediction_table(pd.DataFrame(), rows, {}, None)
    assert list(table.columns) == ["prompt", "reference", "generated"]


def test_a_tokenizer_without_padding_pads_with_its_end_token(tokenizer):
    unpadded = train_tokenizer(TokenizerTraining(vocab_size=300), ARTICLES, 64)
    unpadded.pad_token = None
    TASK.tokenize(texts(ARTICLES[:2]), unpadded, 16, {}, training=True)
    assert unpadded.pad_token == unpadded.eos_token


def test_predict_continues_each_input(tokenizer, tiny_model):
    results = TASK.predict(["The minister said", "Shares"], tiny_model, tokenizer)
    assert [result["input"] for result in results] == ["The minister said", "Shares"]
    assert all(isinstance(result["output"], str) for result in results)
