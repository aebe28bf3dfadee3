"""The training entry points behind ``scripts/*.py`` and ``scratchformers train`` (HF-examples style).

Each module has ``main(argv=None)`` parsing its dataclasses and every ``TrainingArguments`` flag with
``HfArgumentParser``. They live in the package so the console command works from any install; ``scripts/`` holds
thin wrappers. The tasks, each with its script and flags, are ``scratchformers_light.arguments.TASKS``;
``load_script(task)`` finds a task's ``main``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from scratchformers_light.arguments import TASKS


def load_script(task: str) -> Callable:
    """The ``main(argv)`` of the script that trains ``task`` (one of ``TASKS``)."""
    if task not in TASKS:
        raise ValueError(f"unknown training task {task!r}; allowed: {', '.join(TASKS)}")
    return importlib.import_module(f"{__name__}.{TASKS[task][0]}").main
