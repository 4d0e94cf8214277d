import math
import re

import pandas as pd
import pytest
from datasets import Dataset
from transformers import AutoConfig, AutoModelForCausalLM

from pipeline.config import GenerationSettings, ModelConfig, TaskConfig, TokenizerTraining, build
from pipeline.errors import ConfigError
from pipeline.model_files import special_token_ids
from pipeline.modeling import build_model
from pipeline.tasks.causal_lm import CausalLanguageModeling, document_openings, parses_as_python
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


# Python code: a lossless byte-level BPE and a tiny GPT-2 (sized to the tokenizer).
MODULES = [f"import os\nx = {i}\ny = x + 1\nz = [x, y]\nprint(z)\n\n\ndef f{i}(a):\n    return a\n"
           for i in range(40)]  # the first 18 tokens always end a statement
CODE_TASK = CausalLanguageModeling(TaskConfig(
    "causal_lm", samples=3, prompt_tokens=6, code_parse_rate=True,
    generation=GenerationSettings(num_beams=1, max_new_tokens=12)))
ARCHITECTURE = {"model_type": "gpt2", "n_embd": 32, "n_layer": 1, "n_head": 2, "n_positions": 64}


@pytest.fixture(scope="module")
def code_tokenizer():
    return train_tokenizer(TokenizerTraining(vocab_size=300, lossless=True), MODULES, 64,
                           mark_texts=CODE_TASK.tokenizer_marks_texts)


def code_model(tokenizer, **architecture):
    cfg = build(ModelConfig, {"pretrained": False, "architecture": architecture,
                              "tokenizer": {"lossless": True}, "max_length": 16}, "models.m")
    return build_model(CODE_TASK, cfg, {}, tokenizer, seed=1, where="models.m")


@pytest.mark.parametrize(("prompt", "continuation", "parses"), [
    ("def f(x):\n", "    return x\n", True),
    ("def f(", "x, y):\n    return x\n    retu", True),   # cut after the last complete line
    ("import os", "\nimport sys\nimport r", True),       # the prompt's line completed
    ("def f(x):\n", "    return (x\n", False),            # a bracket left open
    ("def f(x):\n", "    return x", False),               # no complete line written
    ("x = 1\n", "y = 2 +\n", False),
    ("s = '\\d'\n", "t = 1\n", True),                     # a SyntaxWarning only
    ("x = 1\n", "y = '\0'\n", False),                     # a null byte
    ("from os import pa", "th\nimport sys\n", True),
    ("import numpy", "_\n   \n\n", False),                # ends the prompt's line, then blanks
    ("x = 1\n", "\n\n  \n", False),                        # blank lines only
])
def test_a_sample_parses_when_its_complete_lines_are_python(prompt, continuation, parses):
    assert parses_as_python(prompt, continuation) is parses


def test_openings_are_the_starts_of_documents_longer_than_the_prompt():
    end = 0
    blocks_ = [[5, 6, 7, 8, end, 9, 9], [end, 3, 4, 5], [6, 7, end, 1, 2]]  # documents across blocks
    assert document_openings(blocks_, end, prompt_length=2, reference_length=3) == [
        ([5, 6], [7, 8]), ([3, 4], [5, 6, 7])]  # [9, 9] and [1, 2] are not longer than 2


def test_code_samples_start_at_test_files_and_their_parse_rate_is_counted(code_tokenizer):
    model = code_model(code_tokenizer, **ARCHITECTURE)
    assert CODE_TASK.metric_names[-1] == "parse_rate"
    split = CODE_TASK.tokenize(texts(MODULES[:4]), code_tokenizer, 16, {}, training=False)
    scalars, report, rows = CODE_TASK.evaluate(model, code_tokenizer, split, {}, 8, "test")
    assert len(rows) == 3 and report["samples"] == 3
    for row, module in zip(rows, MODULES, strict=False):
        assert module.startswith(row["prompt"] + row["reference"])  # each file's own start
        assert len(code_tokenizer(row["prompt"])["input_ids"]) == 6
    assert scalars["parse_rate"] == sum(row["parses"] for row in rows) / 3
    assert report["reference_parse_rate"] == 1.0  # the true code at the same cut parses
    table = CODE_TASK.prediction_table(pd.DataFrame(), rows, {}, None)
    assert list(table.columns) == ["prompt", "reference", "generated", "parses",
                                   "reference_parses"]
    markdown = "\n".join(CODE_TASK.examples_markdown(table.head(1)))
    assert f"```python\n{rows[0]['prompt']}\n```" in markdown and "(parses: " in markdown


def test_the_parse_rate_is_resampled_per_sample_read_back_from_csv(tmp_path):
    path = tmp_path / "predictions.csv"
    pd.DataFrame({"prompt": ["a", "b", "c", "d"], "reference": ["", "", "", ""],
                  "generated": ["", "", "", ""], "parses": [True, False, True, True],
                  "reference_parses": [True] * 4}).to_csv(path, index=False)
    table = pd.read_csv(path, keep_default_na=False)
    statistics = CODE_TASK.example_statistics(table, {})
    assert list(statistics) == ["parse_rate"]
    assert statistics["parse_rate"].n == 4 and statistics["parse_rate"].value == 0.75
    assert CausalLanguageModeling(TaskConfig("causal_lm")).example_statistics(
        table.drop(columns=["parses"]), {}) == {}


def test_a_prompt_and_continuation_longer_than_the_positions_are_refused(code_tokenizer):
    model = code_model(code_tokenizer, **{**ARCHITECTURE, "n_positions": 16})
    split = CODE_TASK.tokenize(texts(MODULES[:2]), code_tokenizer, 16, {}, training=False)
    with pytest.raises(ConfigError, match=re.escape(
            "task.prompt_tokens + task.generation.max_new_tokens: 6 + 12 tokens, but the model "
            "has 16 positions")):
        CODE_TASK.evaluate(model, code_tokenizer, split, {}, 8, "test")


def test_an_encoder_is_refused_as_a_causal_lm_and_decoders_are_accepted(code_tokenizer):
    bert = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 64}
    with pytest.raises(ConfigError, match=re.escape(
            "models.m.architecture: BertLMHeadModel is not a decoder: its prediction for a token "
            "changes with the tokens after it")):
        code_model(code_tokenizer, **bert)
    assert code_model(code_tokenizer, **bert, is_decoder=True).config.is_decoder
    llama = {"model_type": "llama", "hidden_size": 32, "num_hidden_layers": 1,
             "num_attention_heads": 2, "num_key_value_heads": 2, "intermediate_size": 64}
    assert type(code_model(code_tokenizer, **llama)).__name__ == "LlamaForCausalLM"
    with pytest.raises(ConfigError, match=re.escape(
            "models.m.architecture: model_type 'distilbert' cannot be built as "
            "AutoModelForCausalLM (Unrecognized configuration class")):
        code_model(code_tokenizer, model_type="distilbert", dim=32, n_layers=1, n_heads=2,
                   hidden_dim=64)


def test_predict_keeps_the_prompts_whitespace_and_prints_prompt_and_continuation(code_tokenizer):
    model = code_model(code_tokenizer, **ARCHITECTURE)
    prompt = "def test_fit(x):\n\t  "
    (result,) = CODE_TASK.predict([prompt], model, code_tokenizer)
    assert result["input"] == prompt and isinstance(result["output"], str)
    assert CODE_TASK.format_prediction(result) == f"{prompt}{result['output']}\n"
