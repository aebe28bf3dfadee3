"""A normal run shows the user no warning that we cause (issue 15): each `train` task on tiny settings, as a user
types it (no `--use_cpu`, no `--dataloader_pin_memory`), raises no Python warning and logs no transformers/datasets
warning (`train sft`, with LoRA too: issue 20); and every checkpoint kind the package writes has config, generation
config and tokenizer agreeing on the
pad/bos/eos ids (else the Trainer re-aligns them and warns, and a reloaded model generates with other ids)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from journey_helpers import tiny_checkpoint, tiny_config_file
from transformers import AutoTokenizer, TrainingArguments

from scratchformers.data import DATA_DIR
from scratchformers.examples import common
from scratchformers_cli import main
from scratchformers_light import arguments

QUIET = ["--report_to", "none", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8",
         "--save_strategy", "no", "--disable_tqdm", "true", "--max_steps", "2"]
TINY_BERT = {"model_type": "scratch_bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 64, "max_position_embeddings": 64}
SPECIAL = ("pad_token_id", "bos_token_id", "eos_token_id")


def notes(folder: Path) -> Path:
    """The user's text: lines, and one long paragraph on a single line (more tokens than the tokenizer's
    model_max_length, 1,024: it is cut into blocks, nothing to warn about)."""
    lines = (DATA_DIR / "prose" / "train.txt").read_text().splitlines()[:80]
    path = folder / "notes.txt"
    path.write_text("\n".join([*lines, " ".join(lines)]) + "\n")
    return path


def task_argv(task: str, tmp_path: Path) -> list[str]:
    """`scratchformers train TASK ...` on the user's own small files with a tiny model."""
    out = ["--output_dir", str(tmp_path / f"my-{task}")]
    if task == "clm":
        return ["train", "clm", "--train_file", str(notes(tmp_path)), "--config", str(tiny_config_file(tmp_path)),
                "--vocab_size", "300", "--block_size", "16", *out, *QUIET]
    if task == "mlm":
        config = tmp_path / "bert-micro.json"
        config.write_text(json.dumps(TINY_BERT))
        return ["train", "mlm", "--train_file", str(notes(tmp_path)), "--config", str(config), "--vocab_size", "300",
                "--max_seq_length", "32", *out, *QUIET]
    if task == "classification":
        csv = tmp_path / "reviews.csv"
        csv.write_text("text,label\n" + "".join(f"{'great' if i % 2 else 'awful'} film number {i},{'pos' if i % 2 else 'neg'}\n"
                                                 for i in range(40)))
        return ["train", "classification", "--train_file", str(csv), "--config", str(tiny_config_file(tmp_path)),
                "--vocab_size", "300", "--max_seq_length", "16", *out, *QUIET]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join((DATA_DIR / "translation" / "en-de" / "train.jsonl").read_text().splitlines()[:60]))
    return ["train", "translation", "--train_file", str(pairs), "--do_train", "--do_eval", "--vocab_size", "300",
            "--generation_num_beams", "1", "--generation_max_length", "4",
            "--config_overrides", "hidden_size=32,num_attention_heads=2,intermediate_size=64,encoder_layers=1,"
                                  "decoder_layers=1", *out, *QUIET]  # fmt: skip


@contextlib.contextmanager
def warnings_shown() -> Iterator[list[str]]:
    """Collects what a user would see as a warning while the block runs: Python warnings (any category) and records of
    level WARNING or above from the transformers and datasets loggers."""
    shown: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: shown.append(f"{record.name}: {record.getMessage()}")
    loggers = [logging.getLogger(name) for name in ("transformers", "datasets", "scratchformers")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield shown
        shown.extend(f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught)
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def assert_special_tokens_agree(folder: Path) -> None:
    """config.json, generation_config.json (when there is one) and the saved tokenizer name the same pad/bos/eos
    ids (a None included: transformers 5.13 compares them exactly)."""
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    config = json.loads((folder / "config.json").read_text())
    generation = folder / "generation_config.json"
    generation = json.loads(generation.read_text()) if generation.is_file() else None
    for name in SPECIAL:
        assert config.get(name) == getattr(tokenizer, name), (folder.name, name, config.get(name))
        if generation is not None:
            value = generation.get(name)
            assert getattr(tokenizer, name) in (value if isinstance(value, list) else [value]), (folder.name, name)


@pytest.mark.parametrize("task", ["clm", "mlm", "classification", "translation"])
def test_a_tiny_training_run_warns_about_nothing_and_saves_agreeing_special_tokens(task, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = task_argv(task, tmp_path)
    with warnings_shown() as shown:
        assert main(argv) in (0, None)
    assert shown == []
    assert_special_tokens_agree(tmp_path / f"my-{task}")


def test_fine_tuning_a_checkpoint_into_a_classifier_keeps_the_special_tokens(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = tiny_checkpoint(tmp_path / "base")
    argv = task_argv("classification", tmp_path)
    argv[argv.index("--config"):argv.index("--config") + 2] = ["--model_name_or_path", str(base)]
    with warnings_shown() as shown:
        assert main(argv) in (0, None)
    assert [line for line in shown if "PAD/BOS/EOS" in line] == []
    assert_special_tokens_agree(tmp_path / "my-classification")


def short_chats(folder: Path) -> Path:
    """Twelve one-question chats with one-word answers: the user's JSON-lines file for `train sft`."""
    words = {"Hallo": "German", "Bonjour": "French", "Hola": "Spanish", "Ciao": "Italian"}
    rows = [{"messages": [{"role": "user", "content": f"Which language is {word}?"},
                          {"role": "assistant", "content": language}]}
            for _ in range(3) for word, language in words.items()]
    path = folder / "chats.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize("lora", [["--lora_r", "4"], ["--lora_r", "4", "--merge_lora"], []],
                         ids=["lora", "lora-merged", "full"])
def test_instruction_tuning_warns_about_nothing(tmp_path, monkeypatch, lora):
    """`train sft` on a `train clm`-style checkpoint (no chat template: ChatML tokens are added and the embeddings
    grow), with and without LoRA: no transformers note about mean resizing, no FutureWarning about peft's use of the
    deprecated `is_gradient_checkpointing` (transformers 5.25), no peft warning on save."""
    pytest.importorskip("peft")
    monkeypatch.chdir(tmp_path)
    base = tiny_checkpoint(tmp_path / "base")
    argv = ["train", "sft", "--model_name_or_path", str(base), "--train_file", str(short_chats(tmp_path)),
            "--max_seq_length", "64", "--output_dir", str(tmp_path / "my-chat"), *lora, *QUIET]
    with warnings_shown() as shown:
        assert main(argv) in (0, None)
    assert shown == []


def parsed_training_args(tmp_path: Path, *flags: str) -> TrainingArguments:
    parsed = common.parse_args((arguments.RunArguments, TrainingArguments), ["--output_dir", str(tmp_path), *flags])
    return parsed[-1]


@pytest.mark.parametrize("accelerator", [False, True])
def test_pinned_memory_is_on_only_with_an_accelerator(tmp_path, monkeypatch, accelerator):
    """torch's DataLoader warns on every loader when asked to pin without an accelerator; the scripts turn the
    Trainer's default off then, and keep it with one."""
    import torch

    monkeypatch.setattr(torch.accelerator, "is_available", lambda: accelerator)
    assert parsed_training_args(tmp_path).dataloader_pin_memory is accelerator
    assert parsed_training_args(tmp_path, "--use_cpu", "true").dataloader_pin_memory is False


@pytest.mark.parametrize("given, accelerator", [(["--dataloader_pin_memory", "true"], False),
                                                (["--no_dataloader_pin_memory"], True)])
def test_the_users_pin_memory_flag_wins(tmp_path, monkeypatch, given, accelerator):
    import torch

    monkeypatch.setattr(torch.accelerator, "is_available", lambda: accelerator)
    assert parsed_training_args(tmp_path, *given).dataloader_pin_memory is (not accelerator)


def test_generated_text_starts_on_its_own_line_when_stdout_and_stderr_are_one_log(tmp_path):
    """`scratchformers generate ... > log 2>&1`: the progress bar's last state (ended by a carriage return, not a
    newline) must not share a line with the generated text."""
    checkpoint = tiny_checkpoint(tmp_path / "ckpt")
    log = io.StringIO()  # one stream for both, not a terminal
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        assert main(["generate", str(checkpoint), "--prompt", "The module", "--max-new-tokens", "5"]) == 0
    lines = log.getvalue().split("\n")  # (not splitlines(): it also splits at "\r")
    assert any(line.startswith("The module") for line in lines), lines
