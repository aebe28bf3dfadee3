"""`train clm` without --model_name_or_path trains a fresh model: unless the user gives --learning_rate it uses the
from-scratch rate 1e-3 (the demo's and docs/getting-started.md's for configs/gpt-tiny.json), not TrainingArguments'
fine-tuning default 5e-5 (issue 20).

Measured on the README's command with the shipped prose as the user's files (`scratchformers train clm --train_file
data/prose/train.txt --validation_file data/prose/validation.txt --max_steps 200`: gpt-tiny, batch 8, block 128,
seed 42; 2-core machine, 2026-12-06): validation perplexity 2,159 at 5e-5 (training loss 8.10 → 7.63 nats, from
ln 4096 = 8.32 at random) against 466 at 1e-3 (6.95 → 5.97)."""

from __future__ import annotations

import pytest
from journey_helpers import tiny_checkpoint, tiny_config_file

from scratchformers.data import DATA_DIR
from scratchformers_cli import main


class Stop(Exception):
    """Raised by the stand-in Trainer once it has seen the training arguments."""


@pytest.fixture
def learning_rate_used(monkeypatch):
    """Runs `scratchformers train clm ARGV` up to building the Trainer and returns the learning rate it was given."""
    from scratchformers.examples import run_clm

    seen = {}

    def trainer(*args, **kwargs):
        seen["learning_rate"] = kwargs["args"].learning_rate
        raise Stop

    monkeypatch.setattr(run_clm, "AtomicCheckpointTrainer", trainer)

    def run(tmp_path, *flags: str) -> float:
        notes = tmp_path / "notes.txt"
        notes.write_text("\n".join((DATA_DIR / "prose" / "validation.txt").read_text().splitlines()[:60]) + "\n")
        with pytest.raises(Stop):
            main(["--debug", "train", "clm", "--train_file", str(notes), "--output_dir", str(tmp_path / "out"),
                  "--vocab_size", "300", "--block_size", "16", "--report_to", "none", *flags])
        return seen["learning_rate"]

    return run


def test_a_fresh_model_trains_at_the_from_scratch_rate(tmp_path, learning_rate_used):
    assert learning_rate_used(tmp_path, "--config", str(tiny_config_file(tmp_path))) == 1e-3


@pytest.mark.parametrize("flag", ["--learning_rate", "--learning-rate"])
def test_the_users_rate_wins(tmp_path, learning_rate_used, flag):
    assert learning_rate_used(tmp_path, "--config", str(tiny_config_file(tmp_path)), flag, "5e-5") == 5e-5


def test_continuing_a_checkpoint_keeps_the_fine_tuning_default(tmp_path, learning_rate_used):
    base = tiny_checkpoint(tmp_path / "base")
    assert learning_rate_used(tmp_path, "--model_name_or_path", str(base)) == 5e-5
