"""`scratchformers train ... --resume_from_checkpoint` as a user types it (issue 20): the bare flag continues from the
last checkpoint in --output_dir (as the refusal message and README say), the resumed run reuses the checkpoint's
tokenizer instead of training another, and resuming a tied-head model warns about no "missing" lm_head.weight."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from journey_helpers import tiny_config_file
from test_quiet_runs import warnings_shown

from scratchformers.data import DATA_DIR
from scratchformers_cli import main

FLAGS = ["--report_to", "none", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8",
         "--disable_tqdm", "true", "--save_steps", "1", "--do_train", "--vocab_size", "300", "--block_size", "16"]


def notes(folder: Path, name: str, start: int) -> Path:
    """Forty lines of the shipped prose from line ``start``: the user's text file."""
    path = folder / name
    path.write_text("\n".join((DATA_DIR / "prose" / "train.txt").read_text().splitlines()[start:start + 40]) + "\n")
    return path


def train(tmp_path: Path, train_file: Path, *extra: str) -> int:
    return main(["train", "clm", "--train_file", str(train_file), "--config", str(tiny_config_file(tmp_path)),
                 "--output_dir", str(tmp_path / "run"), *FLAGS, *extra])


def error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.fixture
def interrupted_run(tmp_path, monkeypatch):
    """A run of 2 steps that saved checkpoint-1 and checkpoint-2 in tmp_path/run (its final save is not needed)."""
    monkeypatch.chdir(tmp_path)
    assert train(tmp_path, notes(tmp_path, "notes.txt", 0), "--max_steps", "2", "--do_eval", "false") in (0, None)
    assert (tmp_path / "run" / "checkpoint-2").is_dir()
    return tmp_path


def resume(run_dir: Path, monkeypatch, *flags: str) -> list[str]:
    """Resume the run in ``run_dir`` on other text with ``flags``; returns the warnings shown. Training a tokenizer
    fails the test: a resumed run must reuse the checkpoint's."""
    from scratchformers.examples import run_clm

    def no_training(*args, **kwargs):
        raise AssertionError("a resumed run must reuse the checkpoint's tokenizer, not train another")

    monkeypatch.setattr(run_clm, "train_tokenizer", no_training)
    other = notes(run_dir, "more-notes.txt", 200)  # other text: a retrained tokenizer would differ
    with warnings_shown() as shown:
        assert train(run_dir, other, *flags) in (0, None)
    return shown


@pytest.mark.parametrize("value", [[], ["true"]], ids=["bare", "true"])
def test_the_bare_flag_resumes_from_the_last_checkpoint(interrupted_run, monkeypatch, value):
    shown = resume(interrupted_run, monkeypatch, "--max_steps", "4", "--resume_from_checkpoint", *value)
    run = interrupted_run / "run"
    assert json.loads((run / "trainer_state.json").read_text())["global_step"] == 4
    assert (run / "tokenizer.json").read_text() == (run / "checkpoint-2" / "tokenizer.json").read_text()
    assert shown == []


def test_resuming_a_tied_model_from_a_path_reuses_its_tokenizer_and_warns_nothing(interrupted_run, monkeypatch):
    """The tied output layer is not in the checkpoint (the token embedding carries it): no "There were missing keys
    in the checkpoint model loaded: ['lm_head.weight']"."""
    run = interrupted_run / "run"
    shown = resume(interrupted_run, monkeypatch, "--max_steps", "2", "--resume_from_checkpoint",
                   str(run / "checkpoint-1"))
    assert not [line for line in shown if "missing keys" in line], shown
    assert json.loads((run / "trainer_state.json").read_text())["global_step"] == 2
    assert (run / "tokenizer.json").read_text() == (run / "checkpoint-1" / "tokenizer.json").read_text()


@pytest.mark.parametrize("earlier", ["nothing", "files without checkpoints"])
def test_the_bare_flag_without_a_checkpoint_is_one_error_line(tmp_path, monkeypatch, capsys, earlier):
    monkeypatch.chdir(tmp_path)
    if earlier != "nothing":
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "config.json").write_text("{}")
    assert train(tmp_path, notes(tmp_path, "notes.txt", 0), "--max_steps", "2", "--resume_from_checkpoint") == 2
    line = error_line(capsys)
    assert "--resume_from_checkpoint" in line and "no checkpoint-N folder" in line


def test_resume_false_does_not_bypass_the_existing_folder_check(interrupted_run, capsys):
    assert train(interrupted_run, notes(interrupted_run, "notes.txt", 0), "--resume_from_checkpoint", "false") == 2
    assert "already holds files" in error_line(capsys)


def test_a_missing_checkpoint_path_is_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert train(tmp_path, notes(tmp_path, "notes.txt", 0), "--resume_from_checkpoint", "run/checkpoint-9") == 2
    assert "no such checkpoint folder" in error_line(capsys)


def test_the_help_says_the_path_is_optional():
    from scratchformers_light import arguments

    text = arguments.render_task_help("clm")
    assert "[--resume_from_checkpoint [RESUME_FROM_CHECKPOINT]]" in text
    assert "last checkpoint-N" in " ".join(text.split())
