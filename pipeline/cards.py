"""Model cards: one per successful cell, reports/cards/<cell>.md, written by the report stage.

A card is the Hub's README.md: metadata (base model, datasets, language, license, tags, pipeline
tag, and a model-index with the cell's test metrics), then what was fine-tuned on what, the
test metrics before and after, how the cell compares with the other seeds and models, the
training settings, the data's provenance, the software, and how to load the model.

Cards live in the report stage's own output folder: the model folder, models/<cell>/model/, is
the train stage's DVC output, and a file another stage wrote into it would make DVC see that
output changed and train again. `pipeline.publish` copies the card into the folder it uploads.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
import math
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.repocard import metadata_load

from pipeline.comparison import (
    best_model,
    interval,
    main_metric_section,
    mean_std,
    number,
    p_text,
    paired_comparison,
    summary_table,
    table,
)
from pipeline.config import ModelConfig, Params, cell_name
from pipeline.io import atomic_dir
from pipeline.paths import CARDS_DIR, fine_tuned_model_dir, train_metrics_file
from pipeline.records import SUCCESS, read_record
from pipeline.sources import package_version, resolve_path
from pipeline.tasks import TaskAdapter
from pipeline.tracking import git_commit

SOFTWARE = ("transformers", "torch", "tokenizers", "datasets", "accelerate", "huggingface_hub")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CardContext:
    """What every card of one experiment draws on, computed once."""

    params: Params
    task: TaskAdapter
    results: pd.DataFrame
    manifest: dict[str, Any]
    summary: pd.DataFrame
    paired: pd.DataFrame
    best: str | None
    commit: str

    @classmethod
    def of(cls, params: Params, task: TaskAdapter, results: pd.DataFrame,
           manifest: dict[str, Any]) -> CardContext:
        metric = task.metric_names[0]
        lower = metric in task.lower_is_better
        return cls(params, task, results, manifest, summary_table(results),
                   paired_comparison(results, metric, lower), best_model(results, metric, lower),
                   git_commit())

    def row(self, model: str, seed: int) -> pd.Series:
        cells = self.results[(self.results["model"] == model) & (self.results["seed"] == seed)]
        return cells.iloc[0]


def hub_id(source: str | None, path: str | None, params: Params) -> str | None:
    """The Hub id of a model or dataset: its path on the Hub, or the one `card.hub_ids` gives
    for a packaged or local copy."""
    if source == "hub":
        return path
    return params.card.hub_ids.get(path or "")


def base_card_metadata(cfg: ModelConfig) -> dict[str, Any]:
    """The base model's own card metadata (license, language) where it is at hand offline: a
    package's or local folder's README.md, or the Hub cache."""
    if not cfg.pretrained or cfg.source is None:
        return {}
    if cfg.source == "hub":
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(cfg.path, "README.md", revision=cfg.revision)
        readme = Path(found) if isinstance(found, str) else None
    else:
        readme = resolve_path(cfg.source, cfg.path, "card") / "README.md"
    if readme is None or not readme.is_file():
        return {}
    try:
        return metadata_load(readme) or {}
    except (ValueError, yaml.YAMLError) as error:
        log.warning("%s: its metadata cannot be read (%s); the card leaves out what it would give",
                    readme, error)
        return {}


def languages(params: Params, base: dict[str, Any]) -> list[str] | None:
    if params.card.language:
        return params.card.language
    pair = [params.task.source_lang, params.task.target_lang]
    if all(pair):
        return pair
    found = base.get("language")
    return [found] if isinstance(found, str) else found


def eval_results(ctx: CardContext, row: pd.Series) -> list[EvalResult]:
    """The model-index: every test metric of this cell after fine-tuning. The dataset's type is
    its Hub id where it has one; otherwise a name the Hub cannot take for another dataset's id
    (our `rotten_tomatoes` is not the Hub's)."""
    dataset = ctx.params.dataset
    revision = ctx.manifest["source"].get("revision") if dataset.source == "hub" else None
    known = hub_id(dataset.source, dataset.path, ctx.params)
    return [EvalResult(task_type=ctx.task.pipeline_tag, task_name=ctx.params.task.name,
                       dataset_type=known or f"{dataset.name} ({dataset.source})",
                       dataset_name=dataset.name, dataset_config=dataset.subset,
                       dataset_split="test", dataset_revision=revision, metric_type=name,
                       metric_name=name, metric_value=round(float(row[f"finetuned_{name}"]), 6))
            for name in ctx.task.metric_names if math.isfinite(row[f"finetuned_{name}"])]


def card_data(ctx: CardContext, model: str, seed: int) -> ModelCardData:
    cfg = ctx.params.model(model)
    base = base_card_metadata(cfg)
    dataset = hub_id(ctx.params.dataset.source, ctx.params.dataset.path, ctx.params)
    return ModelCardData(
        model_name=f"{ctx.params.experiment_name}-{cell_name(model, seed)}",
        base_model=hub_id(cfg.source, cfg.path, ctx.params) if cfg.pretrained else None,
        datasets=[dataset] if dataset else None,
        language=languages(ctx.params, base),
        license=ctx.params.card.license or base.get("license"),
        library_name="transformers",
        pipeline_tag=ctx.task.pipeline_tag,
        tags=["fine-tuned", ctx.params.dataset.name, "finetune-pipeline"],
        eval_results=eval_results(ctx, ctx.row(model, seed)),
    )


def origin_text(cfg: ModelConfig, params: Params) -> str:
    """Where a model comes from, in words: a Hub id, and the package or folder read."""
    where = f"{cfg.source} `{cfg.path}`"
    if cfg.source == "package":
        where += f" {package_version(cfg.path)}"
    known = hub_id(cfg.source, cfg.path, params)
    if known and cfg.source != "hub":
        return f"[`{known}`](https://huggingface.co/{known}) (read from {where})"
    return f"[`{known}`](https://huggingface.co/{known})" if known else where


def base_text(cfg: ModelConfig, params: Params) -> str:
    if cfg.pretrained:
        kind = "an encoder-decoder warm-started from " if cfg.encoder_decoder else ""
        return kind + origin_text(cfg, params)
    shape = ", ".join(f"{key} {value}" for key, value in (cfg.architecture or {}).items())
    tokenizer = ("a tokenizer trained on the training split" if cfg.tokenizer else
                 f"the tokenizer of {origin_text(cfg, params)}")
    return f"a network built from random weights ({shape}) with {tokenizer}"


def intro_section(ctx: CardContext, model: str, seed: int) -> list[str]:
    params = ctx.params
    labels = ctx.manifest.get("labels") or []
    shown = f" (labels: {', '.join(map(str, labels))})" if 0 < len(labels) <= 20 else ""
    base = base_text(params.model(model), params)
    return [f"# {params.experiment_name}: {model}, seed {seed}", "",
            f"{base[0].upper()}{base[1:]}, fine-tuned for "
            f"{params.task.name.replace('_', ' ')} on `{params.dataset.name}`{shown} with seed "
            f"{seed}. One of {len(ctx.results)} cells ({len(params.models)} models x "
            f"{len(params.seeds)} seeds) of the experiment `{params.experiment_name}`; every "
            "cell is scored on the same test split before and after fine-tuning.", ""]


def results_section(ctx: CardContext, row: pd.Series) -> list[str]:
    rows = ctx.manifest["splits"]["test"]["rows"]
    lines = [[name, number(row[f"base_{name}"]), number(row[f"finetuned_{name}"]),
              number(row[f"improvement_{name}"], signed=True)] for name in ctx.task.metric_names]
    lower = ", ".join(ctx.task.lower_is_better) or "none"
    return ["## Test results", "",
            f"On the test split ({rows} rows), before (the untuned model, with a seeded new head "
            f"where the task adds one) and after fine-tuning; lower is better for: {lower}.", "",
            *table(["metric", "before", "after", "change"], lines), ""]


def seeds_sentence(ctx: CardContext, model: str, seed: int) -> str:
    metric = ctx.task.metric_names[0]
    column = f"finetuned_{metric}"
    cells = ctx.results[(ctx.results["model"] == model) & (ctx.results["status"] == SUCCESS)]
    ranked = cells.sort_values(column, ascending=metric in ctx.task.lower_is_better)
    rank = list(ranked["seed"]).index(seed) + 1
    stats = ctx.summary.set_index("model").loc[model]
    return (f"Test {metric} of `{model}` after fine-tuning over its {len(cells)} successful "
            f"seeds: {mean_std(stats, column)} (mean ± std), 95% interval of the mean "
            f"{interval(stats[f'{column}_ci95_low'], stats[f'{column}_ci95_high'])}, range "
            f"{interval(stats[f'{column}_min'], stats[f'{column}_max'])}. This seed "
            f"({number(ctx.row(model, seed)[column])}) ranks {rank} of {len(cells)}.")


def paired_sentence(ctx: CardContext, model: str) -> str:
    metric = ctx.task.metric_names[0]
    if model == ctx.best:
        return f"`{model}` is the experiment's best model by mean test {metric}."
    pair = ctx.paired.set_index("model").loc[model]
    return (f"Against the best model, `{ctx.best}`, on {pair['n_pairs']} paired seeds: "
            f"{number(pair['mean_difference'], signed=True)} (95% interval "
            f"{interval(pair['ci95_low'], pair['ci95_high'], signed=True)}, paired t-test "
            f"p = {p_text(pair['p_value'])}): {pair['note']}.")


def comparison_section(ctx: CardContext, model: str, seed: int) -> list[str]:
    metric = ctx.task.metric_names[0]
    return ["## Compared with the other seeds and models", "",
            seeds_sentence(ctx, model, seed), "", paired_sentence(ctx, model), "",
            *("#" + line if line.startswith("## ") else line for line in main_metric_section(
                ctx.summary, metric, metric in ctx.task.lower_is_better, ctx.best))]


def training_section(ctx: CardContext, model: str, seed: int) -> list[str]:
    cfg = ctx.params.model(model)
    settings = {"max_length": cfg.max_length, **dataclasses.asdict(cfg.training(ctx.params.train))}
    record = read_record(train_metrics_file(cell_name(model, seed)), "train")
    listed = ", ".join(f"{key} `{value}`" for key, value in settings.items())
    return ["## Training", "",
            f"The transformers Trainer, with the experiment's `train` settings and this model's "
            f"overrides: {listed}.", "",
            f"{record.get('steps')} optimizer steps, {number(record.get('epochs'))} epoch(s), in "
            f"{number(record.get('train_seconds'))} s; the checkpoint kept is the one with the "
            f"best validation {record.get('metric_for_best_model')} "
            f"({number(record.get('best_validation_metric'))}).", ""]


def source_text(ctx: CardContext) -> str:
    dataset, origin = ctx.params.dataset, ctx.manifest["source"]
    known = hub_id(dataset.source, dataset.path, ctx.params)
    where = f"{origin['source']} `{origin['path']}`" + (f", subset `{origin['subset']}`"
                                                         if origin.get("subset") else "")
    hub = f" (the Hub's [`{known}`](https://huggingface.co/datasets/{known}))" \
        if known and dataset.source != "hub" else ""
    revision = f", revision `{origin['revision']}`" if origin.get("revision") else ""
    return (f"`{dataset.name}`: {where}{hub}{revision}; input "
            f"columns {dataset.text_columns}, target column `{dataset.label_column}`. Splits "
            f"the source lacks are cut with split_seed {dataset.split_seed}; caps per split: "
            f"{dataclasses.asdict(dataset.max_rows)}.")


def label_table(manifest: dict[str, Any]) -> list[str]:
    counts = manifest.get("label_counts") or {}
    if not counts:
        return []
    splits = list(counts)
    rows = [[str(label), *(str(counts[split].get(label, 0)) for split in splits)]
            for label in manifest["labels"]]
    return ["", *table(["label", *splits], rows)]


def data_section(ctx: CardContext) -> list[str]:
    splits = ctx.manifest["splits"]
    rows = [[split, str(info["rows"]), f"`{info['sha256']}`"] for split, info in splits.items()]
    repeated = {split: count for split, count in
                ctx.manifest.get("duplicates_across_splits", {}).items()
                if split != "dropped" and count}
    lines = ["## Data", "", source_text(ctx), "",
             *table(["split", "rows", "sha256 of the snapshot (parquet)"], rows),
             *label_table(ctx.manifest)]
    if repeated:
        lines += ["", f"Inputs also found in an earlier split: {repeated}."]
    return [*lines, ""]


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def software_section(ctx: CardContext, row: pd.Series) -> list[str]:
    installed = ", ".join(f"{package} {version(package)}" for package in SOFTWARE)
    return ["## Software", "",
            f"{installed}; Python {platform.python_version()} (installed when this card was "
            f"written). Pipeline code at git commit `{ctx.commit}`; MLflow run "
            f"`{row['mlflow_run_id']}` (its `mlflow.source.git.commit` tag is the commit "
            "training ran at).", ""]


def usage_section(ctx: CardContext, model: str, seed: int) -> list[str]:
    return ["## How to use", "", "```python",
            ctx.task.usage(str(fine_tuned_model_dir(cell_name(model, seed)))), "```", ""]


def model_card(ctx: CardContext, model: str, seed: int) -> str:
    """The card of one successful cell: the Hub's metadata block, then the prose."""
    sections = [*intro_section(ctx, model, seed), *results_section(ctx, ctx.row(model, seed)),
                *comparison_section(ctx, model, seed), *training_section(ctx, model, seed),
                *data_section(ctx), *software_section(ctx, ctx.row(model, seed)),
                *usage_section(ctx, model, seed)]
    metadata = card_data(ctx, model, seed).to_yaml()
    return f"---\n{metadata}\n---\n\n" + "\n".join(sections)


def write_cards(params: Params, task: TaskAdapter, results: pd.DataFrame,
                manifest: dict[str, Any]) -> Path:
    """reports/cards/<cell>.md for every successful cell, replacing the folder as a whole (a
    cell that failed since has no card left)."""
    ctx = CardContext.of(params, task, results, manifest)
    with atomic_dir(CARDS_DIR) as scratch:
        for row in results[results["status"] == SUCCESS].itertuples():
            card = model_card(ctx, row.model, int(row.seed))
            (scratch / f"{cell_name(row.model, int(row.seed))}.md").write_text(card,
                                                                             encoding="utf-8")
    return CARDS_DIR


def with_location(card: str, cell: str, location: str) -> str:
    """A card whose usage example loads the model from `location` (a Hub id, a folder)
    rather than from the cell's folder in this repository."""
    return card.replace(f'"{fine_tuned_model_dir(cell)}"', f'"{location}"')


def card_body(card: str) -> str:
    """The card without its metadata block: the prose a person reads (the registry's
    description)."""
    return ModelCard(card).text.strip()
