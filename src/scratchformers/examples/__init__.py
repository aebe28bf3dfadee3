"""The training entry points behind ``scripts/*.py`` and ``scratchformers train`` (HF-examples style).

Each module has ``main(argv=None)`` parsing its dataclasses and every ``TrainingArguments`` flag with
``HfArgumentParser``. They live in the package so the console command works from any install; ``scripts/`` holds
thin wrappers. ``load_script(task)`` finds a task's ``main``: the package module if there is one, else the
repository's ``scripts/<name>.py`` (where other families' scripts live until they move here).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path

SCRIPTS = {
    "clm": "run_clm",
    "mlm": "run_mlm",
    "translation": "run_translation",
    "classification": "run_classification",
    "sft": "run_sft",
}
REPO_SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"


def load_script(task: str) -> Callable:
    """The ``main(argv)`` of the script that trains ``task`` (one of ``SCRIPTS``)."""
    if task not in SCRIPTS:
        raise ValueError(f"unknown training task {task!r}; allowed: {', '.join(SCRIPTS)}")
    name = SCRIPTS[task]
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}").main
    path = REPO_SCRIPTS / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(
            f"no script for task {task!r}: neither scratchformers.examples.{name} nor {path} exists "
            "(this family's training script is not part of this install)"
        )
    spec = importlib.util.spec_from_file_location(f"scratchformers_script_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main
