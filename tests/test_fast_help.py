"""`scratchformers train TASK --help` and `push --help` answer from the flag definitions alone (issue 15): the help
still lists the script's own flags and TrainingArguments', and the process imports no model, no `datasets` and not
the `scratchformers` package (which imports and registers every model)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from scratchformers.examples import arguments, load_script
from scratchformers_cli import TASKS

HELP_IN_A_FRESH_PROCESS = """
import json, sys, scratchformers_cli
try:
    code = scratchformers_cli.main({argv!r})
except SystemExit as done:
    code = done.code
# (transformers 5.13's TrainingArguments itself imports image processors under transformers.models: not counted)
heavy = sorted(m for m in sys.modules if m == 'scratchformers' or m.startswith(('scratchformers.', 'datasets'))
               or '.modeling_' in m)
print(json.dumps({{"code": code, "heavy": heavy}}))
"""


def help_of(argv: list[str]) -> tuple[str, dict]:
    """(help text, {"code", "heavy"}) of `scratchformers ARGV` run in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", HELP_IN_A_FRESH_PROCESS.format(argv=argv)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    *text, last = done.stdout.rstrip("\n").split("\n")
    return "\n".join(text), json.loads(last)


@pytest.mark.parametrize("task", TASKS)
def test_train_task_help_lists_its_flags_without_importing_models(task):
    text, result = help_of(["train", task, "--help"])
    assert result == {"code": 0, "heavy": []}
    own = [f.name for cls in arguments.TASKS[task][1] for f in dataclasses.fields(cls)]
    missing = [name for name in own if f"--{name}" not in text]
    assert not missing, missing
    assert "--learning_rate" in text and "--per_device_train_batch_size" in text  # TrainingArguments' flags


def test_push_help_imports_nothing_heavy():
    text, result = help_of(["push", "--help"])
    assert result == {"code": 0, "heavy": []}
    assert "--repo-id" in text and "--check" in text


@pytest.mark.parametrize("task", TASKS)
def test_the_scripts_parse_the_flags_the_help_shows(task):
    """The light help and the script share one definition: the script's parser knows every flag the help lists."""
    script = sys.modules[load_script(task).__module__]
    names = {cls.__name__: cls for cls in arguments.TASKS[task][1]}
    used = [v for v in vars(script).values() if isinstance(v, type) and v.__name__ in names]
    assert used and all(names[v.__name__] is v for v in used)
