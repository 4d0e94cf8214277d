import pytest
from transformers import AutoTokenizer

from pipeline.config import TokenizerTraining, build
from pipeline.errors import ConfigError
from pipeline.tokenizer_training import train_tokenizer

TEXTS = ["Deux jeunes hommes blancs sont dehors près de buissons.",
         "Plusieurs hommes en casque font fonctionner un système de poulies géant.",
         "Une petite fille grimpe dans une maisonnette en bois."] * 50


@pytest.mark.parametrize(("algorithm", "start", "end"), [("bpe", "<s>", "</s>"),
                                                          ("wordpiece", "[CLS]", "[SEP]")])
def test_trained_tokenizer_reloads_with_autotokenizer_and_round_trips(tmp_path, algorithm, start,
                                                                       end):
    tokenizer = train_tokenizer(TokenizerTraining(algorithm=algorithm, vocab_size=300), TEXTS, 64)
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    ids = reloaded("Deux jeunes hommes sont dehors.")["input_ids"]
    assert ids == tokenizer("Deux jeunes hommes sont dehors.")["input_ids"]
    assert reloaded.convert_ids_to_tokens([ids[0], ids[-1]]) == [start, end]
    assert reloaded.decode(ids, skip_special_tokens=True).strip() == "Deux jeunes hommes sont dehors."
    assert len(reloaded) <= 300 and reloaded.pad_token is not None
    assert reloaded.model_max_length == 64


def test_lowercasing_and_custom_special_tokens():
    cfg = TokenizerTraining(algorithm="wordpiece", vocab_size=200, lowercase=True,
                            special_tokens={"pad_token": "<PAD>"})
    tokenizer = train_tokenizer(cfg, TEXTS, 32)
    assert tokenizer.pad_token == "<PAD>" and tokenizer.convert_tokens_to_ids("<PAD>") == 0
    assert tokenizer.decode(tokenizer("DEUX Hommes")["input_ids"],
                            skip_special_tokens=True) == "deux hommes"


CODE = ['import numpy as np\n\n\ndef test_fit(X):\n    """Docstring."""\n\tassert X  \n',
        "class Model:\r\n    def fit(self, X, y=None):\r\n        return self  # café ≠ cafe\r\n",
        "\n\n   leading blank lines and spaces\n   \n", "x = {'a': [1,  2]}\n\n\n\n"] * 40


def test_a_lossless_bpe_gives_code_back_exactly_and_marks_no_text(tmp_path):
    cfg = TokenizerTraining(algorithm="bpe", vocab_size=300, lossless=True)
    tokenizer = train_tokenizer(cfg, CODE, 64, mark_texts=False)
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    for text in [*CODE[:4], "def unseen(a,\tb):  \n    return a ≤ b\n"]:
        ids = reloaded(text)["input_ids"]
        assert reloaded.decode(ids) == text  # no start/end token, no space, no normalization
    assert reloaded(" x")["input_ids"] != reloaded("x")["input_ids"]
    marked = train_tokenizer(cfg, CODE, 64)
    tokens = marked.convert_ids_to_tokens(marked("x = 1")["input_ids"])
    assert (tokens[0], tokens[-1]) == ("<s>", "</s>")


def test_the_default_bpe_still_normalizes_and_adds_a_prefix_space():
    tokenizer = train_tokenizer(TokenizerTraining(algorithm="bpe", vocab_size=300), CODE, 64)
    assert tokenizer.decode(tokenizer("x = 1")["input_ids"], skip_special_tokens=True) == " x = 1"


@pytest.mark.parametrize("changes", [{"algorithm": "wordpiece"}, {"lowercase": True}])
def test_lossless_needs_bpe_without_lowercasing(changes):
    with pytest.raises(ConfigError, match=r"tokenizer.lossless: gives texts back exactly, which "
                                          r"needs algorithm bpe without lowercase"):
        build(TokenizerTraining, {"lossless": True, **changes}, "tokenizer")
