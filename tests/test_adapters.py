"""LoRA on tiny models of each family: which layers are adapted, what trains, the merged
model against the adapter, and the refusals that name what to set."""

from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertLMHeadModel,
    BertModel,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    LlamaConfig,
    LlamaForCausalLM,
)

from pipeline.adapters import (
    ADAPTER,
    MERGED,
    default_targets,
    load_fine_tuned,
    parameter_count,
    save_adapted,
    with_lora,
)
from pipeline.config import ModelConfig, PeftSettings, TaskConfig
from pipeline.errors import ConfigError
from pipeline.tasks import get_task

LORA = PeftSettings(method="lora", r=4, alpha=8)
CLASSIFY = get_task(TaskConfig("text_classification"))
TINY = {"vocab_size": 120, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 64}
INPUTS = {"input_ids": torch.tensor([[2, 15, 40, 7, 3], [2, 9, 11, 3, 0]]),
          "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])}


def tiny_classifier(seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(**TINY, num_labels=3))


def trained_a_little(model: torch.nn.Module) -> torch.nn.Module:
    """LoRA's B matrices start at zero (the adapter changes nothing): move every trainable
    weight so that merging has something to merge."""
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.05 * torch.randn_like(parameter))
    return model


@pytest.mark.parametrize(("config", "targets"), [
    (BertConfig(**TINY), ["query", "value"]),
    (DistilBertConfig(vocab_size=120, dim=32, n_layers=1, n_heads=2, hidden_dim=64),
     ["q_lin", "v_lin"]),
    (LlamaConfig(**TINY), ["q_proj", "v_proj"]),
])
def test_the_default_targets_are_the_attention_query_and_value_projections(config, targets):
    assert default_targets(config, "train.peft") == targets


def test_an_encoder_decoder_takes_its_encoders_family_and_an_unknown_family_is_named():
    from transformers import EncoderDecoderConfig

    pair = EncoderDecoderConfig.from_encoder_decoder_configs(BertConfig(**TINY), BertConfig(**TINY))
    assert default_targets(pair, "train.peft") == ["query", "value"]
    with pytest.raises(ConfigError, match=r"train.peft.target_modules: no default for the model "
                                          r"family 'no_such_family'; name the layers"):
        default_targets(type("Config", (), {"model_type": "no_such_family"})(), "train.peft")


def test_only_the_low_rank_update_and_the_head_train():
    model = tiny_classifier()
    size = parameter_count(model)
    adapted = with_lora(model, LORA, CLASSIFY, "train.peft")
    trainable = {name for name, p in adapted.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name or "classifier" in name for name in trainable)
    assert any("classifier.modules_to_save" in name for name in trainable)
    # 2 layers x (query, value) x (A: 4x32 + B: 32x4), plus the head (3 x 32 + 3)
    assert parameter_count(adapted, trainable_only=True) == 2 * 2 * 2 * 4 * 32 + 3 * 32 + 3
    assert parameter_count(adapted, trainable_only=True) / size < 0.05


def test_distilberts_pre_classifier_trains_in_full():
    torch.manual_seed(0)
    model = DistilBertForSequenceClassification(DistilBertConfig(
        vocab_size=120, dim=32, n_layers=1, n_heads=2, hidden_dim=64, num_labels=2))
    adapted = with_lora(model, LORA, CLASSIFY, "train.peft")
    trainable = {name for name, p in adapted.named_parameters() if p.requires_grad}
    assert any("pre_classifier.modules_to_save" in name for name in trainable)


def test_a_target_that_matches_nothing_names_the_models_linear_layers():
    with pytest.raises(ConfigError) as error:
        with_lora(tiny_classifier(), PeftSettings(method="lora", target_modules=["q_proj"]),
                  CLASSIFY, "models.m.train.peft")
    assert str(error.value) == (
        "models.m.train.peft.target_modules: ['q_proj'] match no module of "
        "BertForSequenceClassification; its linear layers are named ['classifier', 'dense', "
        "'key', 'query', 'value']")


def test_a_model_without_the_task_head_is_refused_unless_named():
    tagger = get_task(TaskConfig("token_classification"))
    model = BertForMaskedLM(BertConfig(**TINY))  # no `classifier` module
    with pytest.raises(ConfigError, match=r"models.m.train.peft: BertForMaskedLM has none of the "
                                          r"task head modules \['classifier', 'score'\]"):
        with_lora(model, LORA, tagger, "models.m.train.peft")
    with pytest.raises(ConfigError, match=r"modules_to_save: \['head'\] match no module"):
        with_lora(model, PeftSettings(method="lora", modules_to_save=["head"]), tagger, "m")


@pytest.mark.parametrize("task_name", ["masked_lm", "causal_lm"])
def test_language_models_train_with_lora_and_their_loss_backpropagates(task_name):
    torch.manual_seed(0)
    model = (BertForMaskedLM(BertConfig(**TINY)) if task_name == "masked_lm"
             else LlamaForCausalLM(LlamaConfig(**TINY)))
    adapted = with_lora(model, LORA, get_task(TaskConfig(task_name)), "train.peft")
    loss = adapted(**INPUTS, labels=INPUTS["input_ids"]).loss
    loss.backward()
    grads = [p.grad for name, p in adapted.named_parameters() if "lora_A" in name]
    assert grads and all(grad is not None for grad in grads)


def test_the_merged_model_loads_with_auto_classes_and_equals_the_adapter(tmp_path, minilm_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    adapted = trained_a_little(with_lora(tiny_classifier(), LORA, CLASSIFY, "train.peft"))
    adapted.eval()
    with torch.no_grad():
        expected = adapted(**INPUTS).logits
    weights = save_adapted(adapted, tokenizer, tmp_path, merge=True)
    assert weights.stat().st_size < 50_000
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / MERGED).eval()
    assert type(merged).__name__ == "BertForSequenceClassification"
    with torch.no_grad():
        assert torch.allclose(merged(**INPUTS).logits, expected, atol=1e-5)


def test_without_merging_the_adapter_is_loaded_on_the_rebuilt_starting_model(
        tmp_path, monkeypatch, minilm_dir):
    """train.peft_merge: false keeps the adapter only; final_eval rebuilds the starting model
    as training did (same seed) and merges the adapter into it."""
    from transformers import AutoTokenizer

    from pipeline import adapters

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    adapted = trained_a_little(with_lora(tiny_classifier(seed=1), LORA, CLASSIFY, "train.peft"))
    adapted.eval()
    with torch.no_grad():
        expected = adapted(**INPUTS).logits
    save_adapted(adapted, tokenizer, tmp_path, merge=False)
    assert not (tmp_path / MERGED).exists() and (tmp_path / ADAPTER).is_dir()
    monkeypatch.setattr(adapters, "build_model", lambda *args: tiny_classifier(seed=1))
    model, _ = load_fine_tuned(CLASSIFY, ModelConfig(), {}, 1, tmp_path, "models.m")
    with torch.no_grad():
        assert torch.allclose(model(**INPUTS).logits, expected, atol=1e-5)
    assert not isinstance(model, type(adapted))  # a plain model, merged


def test_a_folder_without_model_or_adapter_says_to_train_first(tmp_path: Path):
    from pipeline.errors import SourceError

    with pytest.raises(SourceError, match="no trained model here"):
        load_fine_tuned(CLASSIFY, ModelConfig(), {}, 1, tmp_path, "models.m")


def tiny_model(task_name: str) -> torch.nn.Module:
    """A tiny model of the kind each task fine-tunes (BERT2BERT for sequence to sequence)."""
    from transformers import BertForTokenClassification, EncoderDecoderModel

    torch.manual_seed(0)
    if task_name == "seq2seq":
        decoder = BertConfig(**TINY, is_decoder=True, add_cross_attention=True)
        model = EncoderDecoderModel(encoder=BertModel(BertConfig(**TINY)),
                                    decoder=BertLMHeadModel(decoder))
        model.config.decoder_start_token_id = model.config.pad_token_id = 0
        return model
    return {"text_classification": tiny_classifier,
            "token_classification": lambda: BertForTokenClassification(BertConfig(**TINY)),
            "masked_lm": lambda: BertForMaskedLM(BertConfig(**TINY)),
            "causal_lm": lambda: LlamaForCausalLM(LlamaConfig(**TINY))}[task_name]()


@pytest.mark.parametrize("task_name", ["text_classification", "token_classification", "seq2seq",
                                       "masked_lm", "causal_lm"])
def test_every_tasks_lora_model_merges_into_the_same_outputs(task_name):
    task = get_task(TaskConfig("translation", source_lang="fr", target_lang="en")
                    if task_name == "seq2seq" else TaskConfig(task_name))
    adapted = trained_a_little(with_lora(tiny_model(task_name), LORA, task, "train.peft")).eval()
    inputs = {**INPUTS, "decoder_input_ids": INPUTS["input_ids"]} if task_name == "seq2seq" \
        else INPUTS
    with torch.no_grad():
        expected = adapted(**inputs).logits
        merged = adapted.merge_and_unload()
        assert not any("lora_" in name for name, _ in merged.named_parameters())
        assert torch.allclose(merged(**inputs).logits, expected, atol=1e-5)
