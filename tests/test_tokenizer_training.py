import pytest
from transformers import AutoTokenizer

from pipeline.config import TokenizerTraining
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
