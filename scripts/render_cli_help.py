"""Re-render the committed `scratchformers train TASK --help` texts (src/scratchformers_light/help/).

`train TASK --help` lists every TrainingArguments flag, and importing TrainingArguments costs transformers plus
torch (about 2 s), so the console command prints this pre-rendered text instead when the installed Python has the
major.minor it was rendered with and the installed transformers has the same argument sources (a hash of the files
the flags are read from: `scratchformers_light.arguments.HELP_SOURCES`), whatever its version number; otherwise it
renders the help live. Run this after changing a training script's flags or docstring, adding a task to
`scratchformers_light.arguments.TASKS`, or moving the development environment to a transformers release whose
TrainingArguments changed; tests/cli/test_fast_help.py fails while the file is stale.

    python scripts/render_cli_help.py            # renders every task in scratchformers_light.arguments.TASKS
"""

from __future__ import annotations

from scratchformers_light.arguments import TASKS, help_key, installed_versions, render_help_files


def main() -> int:
    """Write ``help/train-TASK.txt`` for every training task, and ``help/versions.json``; print what was written."""
    written = render_help_files(TASKS)
    versions = installed_versions()
    print(f"rendered for Python {versions['python']} and the argument sources of transformers {versions['transformers']}"
          f" (sha256 {help_key()['transformers_help_sources'][:12]}…):")
    for path in written:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
