"""Crash-safe training: a run SIGKILLed after a checkpoint and resumed ends exactly where an uninterrupted run does,
and a checkpoint interrupted mid-write is never what a resume picks up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _subprocess_training import (
    GLOBAL_BATCH,
    MAX_STEPS,
    ROOT,
    SAVE_STEPS,
    TIMEOUT,
    losses,
    max_abs_difference,
    reference_run_dir,
    run_checked,
    subprocess_env,
    train_args,
    weights,
)
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from scratchformers import ScratchGPTConfig, ScratchGPTForCausalLM
from scratchformers.training import (
    STAGING_DIR,
    AtomicCheckpointTrainer,
    get_last_complete_checkpoint,
    is_complete_checkpoint,
)


def start_and_kill_after_checkpoint(output_dir: Path, step: int) -> None:
    """Start training, wait until checkpoint-`step` is on disk (the run then stalls), and SIGKILL it."""
    log = output_dir.with_suffix(".log")
    with open(log, "w") as out:
        child = subprocess.Popen(
            [sys.executable, *train_args(output_dir, GLOBAL_BATCH, "--stall_after_save_step", str(step))],
            env=subprocess_env(), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + TIMEOUT
            while "STALLING" not in log.read_text():
                assert child.poll() is None, f"training exited before the checkpoint:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, "no checkpoint within the timeout"
                time.sleep(0.2)
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory) -> Path:
    """The uninterrupted 1-process run with the whole global batch (shared with the other subprocess tests)."""
    return reference_run_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("killed") / "run"
    start_and_kill_after_checkpoint(out, SAVE_STEPS)
    assert get_last_checkpoint(str(out)) == str(out / f"checkpoint-{SAVE_STEPS}")
    assert not (out / "model.safetensors").exists()  # the run really died before the end
    run_checked([sys.executable, *train_args(out, GLOBAL_BATCH, "--resume_from_checkpoint", "true")],
                out.with_name("resumed.log"))
    return out


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(killed_and_resumed, reference_run):
    resumed, uninterrupted = weights(killed_and_resumed / "model.safetensors"), weights(reference_run / "model.safetensors")
    assert max_abs_difference(resumed, uninterrupted) == 0.0


def test_resumed_run_has_the_loss_curve_of_an_uninterrupted_run(killed_and_resumed, reference_run):
    resumed = losses(killed_and_resumed)
    assert len(resumed) == MAX_STEPS  # steps 1..6 come from the checkpoint's log history, 7..12 from the resume
    assert resumed == losses(reference_run)


def test_resume_continued_from_the_checkpoint_step(killed_and_resumed):
    state = json.loads((killed_and_resumed / "trainer_state.json").read_text())
    assert state["global_step"] == MAX_STEPS
    assert (killed_and_resumed / f"checkpoint-{MAX_STEPS}").is_dir()


# ---- atomic checkpoints, in-process (no subprocess needed) ---------------------------------------------------------


class Sequences(torch.utils.data.Dataset):
    def __init__(self):
        self.ids = (torch.arange(16)[None] + torch.arange(16)[:, None]) % 32

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def make_trainer(trainer_class, output_dir: Path) -> Trainer:
    torch.manual_seed(0)
    config = ScratchGPTConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                              intermediate_size=32, max_position_embeddings=16)
    args = TrainingArguments(output_dir=str(output_dir), max_steps=4, save_steps=2, per_device_train_batch_size=4,
                             use_cpu=True, report_to="none", disable_tqdm=True, learning_rate=1e-2)
    return trainer_class(model=ScratchGPTForCausalLM(config), args=args, train_dataset=Sequences())


class Crash(RuntimeError):
    pass


def crash_while_saving_step(trainer: Trainer, step: int) -> None:
    """Make the save of `step` die after the weights are written but before the optimizer and trainer state are."""
    original = trainer._save_optimizer_and_scheduler

    def save_optimizer(output_dir):
        if trainer.state.global_step == step:
            raise Crash(f"killed while writing {output_dir}")
        return original(output_dir)

    trainer._save_optimizer_and_scheduler = save_optimizer


def test_plain_trainer_leaves_a_half_written_checkpoint_that_resume_would_pick(tmp_path):
    """Why AtomicCheckpointTrainer exists: transformers' own Trainer writes checkpoint-N in place."""
    trainer = make_trainer(Trainer, tmp_path)
    crash_while_saving_step(trainer, 4)
    with pytest.raises(Crash):
        trainer.train()
    assert get_last_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-4")  # the broken one
    assert not is_complete_checkpoint(tmp_path / "checkpoint-4")
    assert get_last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")


def test_interrupted_save_never_appears_as_a_checkpoint(tmp_path):
    trainer = make_trainer(AtomicCheckpointTrainer, tmp_path)
    crash_while_saving_step(trainer, 4)
    with pytest.raises(Crash):
        trainer.train()
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-2"]
    assert (tmp_path / STAGING_DIR / "checkpoint-4" / "model.safetensors").exists()  # the partial write is staged
    assert get_last_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-2")
    assert is_complete_checkpoint(tmp_path / "checkpoint-2")


def test_resume_after_an_interrupted_save_finishes_the_run(tmp_path):
    trainer = make_trainer(AtomicCheckpointTrainer, tmp_path)
    crash_while_saving_step(trainer, 4)
    with pytest.raises(Crash):
        trainer.train()
    resumed = make_trainer(AtomicCheckpointTrainer, tmp_path)
    resumed.train(resume_from_checkpoint=True)
    assert resumed.state.global_step == 4
    assert is_complete_checkpoint(tmp_path / "checkpoint-4")
    assert not (tmp_path / STAGING_DIR).exists()  # the stale staging copy was replaced and cleaned up


def test_resume_true_skips_a_half_written_checkpoint_from_a_plain_trainer(tmp_path):
    crashed = make_trainer(Trainer, tmp_path)
    crash_while_saving_step(crashed, 4)
    with pytest.raises(Crash):
        crashed.train()
    resumed = make_trainer(AtomicCheckpointTrainer, tmp_path)
    resumed.train(resume_from_checkpoint=True)  # a plain Trainer would fail on checkpoint-4's missing optimizer.pt
    assert resumed.state.global_step == 4
    assert is_complete_checkpoint(tmp_path / "checkpoint-4")


def test_resume_true_without_any_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="No complete checkpoint"):
        make_trainer(AtomicCheckpointTrainer, tmp_path).train(resume_from_checkpoint=True)


def test_no_pickled_training_args_are_written(tmp_path):
    trainer = make_trainer(AtomicCheckpointTrainer, tmp_path)
    trainer.train()
    trainer.save_model()
    for folder in (tmp_path, tmp_path / "checkpoint-2"):
        assert not (folder / "training_args.bin").exists()
        assert json.loads((folder / "training_args.json").read_text())["max_steps"] == 4
