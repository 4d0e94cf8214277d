"""Parameter-efficient fine-tuning with LoRA (peft): which layers get a low-rank update, the
task head trained in full, and what a cell keeps: the adapter (small) and, unless
`train.peft_merge` is false, the model with the update merged into its weights, a normal
model folder that every loader reads.

The task adapter says what is task-specific (`peft_task_type`, `peft_head_modules`); the
model family says which layers to adapt. peft (which imports torch) is imported inside the
functions that build or load a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import ModelConfig, PeftSettings
from pipeline.errors import ConfigError, SourceError
from pipeline.modeling import build_model, load_trained

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from pipeline.tasks.base import TaskAdapter

ADAPTER, MERGED = "adapter", "model"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
#: The attention query and value projections of each family (config.model_type), as in the
#: LoRA paper; families missing here fall back to peft's own table.
DEFAULT_TARGETS = {
    **dict.fromkeys(("bert", "roberta", "xlm-roberta", "electra", "camembert"), ("query", "value")),
    "distilbert": ("q_lin", "v_lin"),
    **dict.fromkeys(("bart", "mbart", "marian", "llama", "mistral", "qwen2"), ("q_proj", "v_proj")),
    **dict.fromkeys(("t5", "mt5"), ("q", "v")),
    "gpt2": ("c_attn",),
}


def default_targets(config: Any, where: str) -> list[str]:
    """The layers LoRA adapts when `target_modules` is null; an encoder-decoder built from two
    checkpoints (BERT2BERT) takes its encoder's family."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT

    family = config.encoder.model_type if config.model_type == "encoder-decoder" \
        else config.model_type
    targets = DEFAULT_TARGETS.get(family) or PEFT.get(family)
    if not targets:
        raise ConfigError(f"{where}.target_modules: no default for the model family '{family}'; "
                          "name the layers to adapt (e.g. its attention projections)")
    return list(targets)


def matches(name: str, entry: str) -> bool:
    """peft's rule for a list of names: the module's full name or its last dotted parts."""
    return name == entry or name.endswith(f".{entry}")


def linear_names(model: PreTrainedModel) -> list[str]:
    """The distinct leaf names of the model's linear layers: what `target_modules` can name."""
    import torch
    from transformers.pytorch_utils import Conv1D

    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if isinstance(module, torch.nn.Linear | Conv1D)})


def unmatched(model: PreTrainedModel, entries: list[str]) -> list[str]:
    names = [name for name, _ in model.named_modules()]
    return [entry for entry in entries if not any(matches(name, entry) for name in names)]


def check_targets(model: PreTrainedModel, targets: list[str], where: str) -> None:
    missing = unmatched(model, targets)
    if missing:
        raise ConfigError(f"{where}.target_modules: {missing} match no module of "
                          f"{type(model).__name__}; its linear layers are named "
                          f"{linear_names(model)}")


def saved_modules(model: PreTrainedModel, settings: PeftSettings, task: TaskAdapter,
                  where: str) -> list[str]:
    """The task head (which starts random, so it must train in full) and `modules_to_save`."""
    missing = unmatched(model, settings.modules_to_save)
    if missing:
        children = [name for name, _ in model.named_children()]
        raise ConfigError(f"{where}.modules_to_save: {missing} match no module of "
                          f"{type(model).__name__} (its top-level modules: {children})")
    heads = [head for head in task.peft_head_modules if not unmatched(model, [head])]
    if task.peft_head_modules and not heads and not settings.modules_to_save:
        raise ConfigError(f"{where}: {type(model).__name__} has none of the task head modules "
                          f"{list(task.peft_head_modules)}, which must train in full; name its "
                          f"head in {where}.modules_to_save (top-level modules: "
                          f"{[name for name, _ in model.named_children()]})")
    return [*heads, *settings.modules_to_save]


def with_lora(model: PreTrainedModel, settings: PeftSettings, task: TaskAdapter,
              where: str) -> PreTrainedModel:
    """`model` with its pretrained weights frozen and LoRA layers on the target modules."""
    from peft import LoraConfig, get_peft_model

    targets = settings.target_modules or default_targets(model.config, where)
    check_targets(model, targets, where)
    config = LoraConfig(task_type=task.peft_task_type, r=settings.r, lora_alpha=settings.alpha,
                        lora_dropout=settings.dropout, target_modules=targets,
                        modules_to_save=saved_modules(model, settings, task, where) or None,
                        bias=settings.bias)
    return get_peft_model(model, config)


def parameter_count(model: PreTrainedModel, trainable_only: bool = False) -> int:
    """Parameters of `model` (shared ones counted once), or those that train."""
    return sum(parameter.numel() for parameter in model.parameters()
               if parameter.requires_grad or not trainable_only)


def save_adapted(model: Any, tokenizer: PreTrainedTokenizerBase, folder: Path,
                 merge: bool) -> Path:
    """The adapter in `folder/adapter`, and with `merge` the merged model in `folder/model`;
    returns the adapter's weights file. Merging changes `model` in place: save it last."""
    model.save_pretrained(folder / ADAPTER)
    tokenizer.save_pretrained(folder / ADAPTER)
    if merge:
        model.merge_and_unload().save_pretrained(folder / MERGED)
        tokenizer.save_pretrained(folder / MERGED)
    return folder / ADAPTER / ADAPTER_WEIGHTS


def load_fine_tuned(task: TaskAdapter, cfg: ModelConfig, manifest: dict[str, Any], seed: int,
                    folder: Path, where: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A cell's fine-tuned model from its train output `folder`: the model folder (full
    fine-tuning, or LoRA merged), else the adapter on top of the starting model, rebuilt as
    training built it (same seed, so any part that starts random is the same) and merged."""
    if (folder / MERGED / "config.json").is_file() or not (folder / ADAPTER).is_dir():
        return load_trained(task, folder / MERGED)
    from peft import PeftModel
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder / ADAPTER)
    base = build_model(task, cfg, manifest, tokenizer, seed, where)
    try:
        adapted = PeftModel.from_pretrained(base, folder / ADAPTER)
    except (OSError, ValueError) as error:
        raise SourceError(f"{folder / ADAPTER}: cannot load the adapter ({error})") from None
    return adapted.merge_and_unload().eval(), tokenizer
