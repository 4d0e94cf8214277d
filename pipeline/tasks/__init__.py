"""Task adapters, one module per task; `get_task` picks one by `task.name`."""

from __future__ import annotations

from pipeline.tasks.base import TaskAdapter
from pipeline.tasks.text_classification import TextClassification

TASKS: dict[str, type[TaskAdapter]] = {
    "text_classification": TextClassification,
}


def get_task(name: str) -> TaskAdapter:
    return TASKS[name]()
