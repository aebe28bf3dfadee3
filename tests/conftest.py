"""Shared test fixtures: tiny configs, deterministic seeds, and a subprocess that cannot import scratchformers."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Remote-code modules go to a folder of this test process's own: transformers before 5.13 keys that cache by the
# checkpoint folder's base name only, so parallel tests (and runs) that each save a "ckpt" would overwrite each other.
os.environ.setdefault("HF_MODULES_CACHE", tempfile.mkdtemp(prefix="sf-hf-modules-"))
torch.set_num_threads(1)

# the one family table and tiny configs (tests/families.py), imported after the environment above is set
from families import TINY  # noqa: E402, F401  (also for `from conftest import TINY`)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _restore_environ():
    """Each test gets the environment back as it was: e.g. TrainingArguments(fsdp=...) sets ACCELERATE_USE_FSDP in
    os.environ itself, which would make every later training test in the same process look like an FSDP run."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def tiny() -> dict:
    """Keyword arguments of a tiny Transformer config (dropout off, so forward passes are deterministic)."""
    return dict(TINY)


BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    class _Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "scratchformers" or name.startswith("scratchformers."):
                raise ImportError("scratchformers is not installed in this process")
    sys.meta_path.insert(0, _Block())
    """
)


@pytest.fixture
def run_without_package(tmp_path):
    """Run a Python snippet in a fresh process where `import scratchformers` fails; return its stdout."""

    def run(code: str) -> str:
        script = tmp_path / "isolated.py"
        script.write_text(BLOCKER + textwrap.dedent(code))
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH="")
        done = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    return run
