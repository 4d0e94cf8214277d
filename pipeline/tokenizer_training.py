"""Training a tokenizer on the training split, for models pre-trained from scratch.

The result is an ordinary `PreTrainedTokenizerFast`: saved beside the tokenized data,
it reloads with `AutoTokenizer.from_pretrained` like any Hub tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from pipeline.config import TokenizerTraining

DEFAULT_SPECIAL_TOKENS = {
    "bpe": {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
            "mask_token": "<mask>"},
    "wordpiece": {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]",
                  "sep_token": "[SEP]", "mask_token": "[MASK]"},
}
#: The tokens around one text and a pair of texts: (start, end) roles.
BOUNDARIES = {"bpe": ("bos_token", "eos_token"), "wordpiece": ("cls_token", "sep_token")}


def special_tokens(cfg: TokenizerTraining) -> dict[str, str]:
    return {**DEFAULT_SPECIAL_TOKENS[cfg.algorithm], **cfg.special_tokens}


def normalizer(cfg: TokenizerTraining) -> normalizers.Normalizer | None:
    """NFC (and lower case if asked); none for a lossless tokenizer, which must give every
    text back as it was."""
    if cfg.lossless:
        return None
    return normalizers.Sequence([normalizers.NFC()]
                                + ([normalizers.Lowercase()] if cfg.lowercase else []))


def untrained_tokenizer(cfg: TokenizerTraining) -> tuple[Tokenizer, trainers.Trainer]:
    roles = special_tokens(cfg)
    common = {"vocab_size": cfg.vocab_size, "min_frequency": cfg.min_frequency,
              "special_tokens": list(dict.fromkeys(roles.values())), "show_progress": True}
    if cfg.algorithm == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token=None))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=not cfg.lossless)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      **common)
    else:
        tokenizer = Tokenizer(models.WordPiece(unk_token=roles["unk_token"]))
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(**common)
    tokenizer.normalizer = normalizer(cfg)
    return tokenizer, trainer


def train_tokenizer(cfg: TokenizerTraining, texts: Iterable[str], model_max_length: int,
                    mark_texts: bool = True) -> PreTrainedTokenizerFast:
    """A tokenizer whose vocabulary is learnt from `texts`. With `mark_texts` it puts its
    start and end tokens around every text (and pair of texts), as encoders and seq2seq
    models expect; without, it adds nothing, as GPT-2's: a causal LM's prompt must not end
    with the end-of-text token (`pipeline("text-generation")` encodes prompts this way)."""
    tokenizer, trainer = untrained_tokenizer(cfg)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    roles = special_tokens(cfg)
    if mark_texts:
        start, end = (roles[role] for role in BOUNDARIES[cfg.algorithm])
        ids = {token: tokenizer.token_to_id(token) for token in (start, end)}
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{start} $A {end}", pair=f"{start} $A {end} $B:1 {end}:1",
            special_tokens=list(ids.items()))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=model_max_length,
                                   **roles)
