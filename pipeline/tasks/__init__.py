"""Task adapters, one module per task; `get_task` picks one by `task.name`."""

from __future__ import annotations

from pipeline.config import TaskConfig
from pipeline.tasks.base import TaskAdapter
from pipeline.tasks.causal_lm import CausalLanguageModeling
from pipeline.tasks.masked_lm import MaskedLanguageModeling
from pipeline.tasks.question_answering import QuestionAnswering
from pipeline.tasks.summarization import Summarization
from pipeline.tasks.text_classification import TextClassification
from pipeline.tasks.token_classification import TokenClassification
from pipeline.tasks.translation import Translation

TASKS: dict[str, type[TaskAdapter]] = {
    "text_classification": TextClassification,
    "token_classification": TokenClassification,
    "translation": Translation,
    "summarization": Summarization,
    "masked_lm": MaskedLanguageModeling,
    "causal_lm": CausalLanguageModeling,
    "question_answering": QuestionAnswering,
}


def get_task(config: TaskConfig) -> TaskAdapter:
    return TASKS[config.name](config)
