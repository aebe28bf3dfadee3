"""The `scratchformers` console command: dispatch to the scripts, generate, evaluate, attention, push, convert
(serve: tests/deploy/test_serve.py)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys

import pytest
import torch
from journey_helpers import png_size, tiny_checkpoint
from transformers import AutoModelForCausalLM, AutoTokenizer

from scratchformers.data import DATA_DIR
from scratchformers_cli import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("cli"))


def test_console_entry_point_lists_every_command():
    done = subprocess.run([sys.executable, "-m", "scratchformers_cli", "--help"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    for command in ("demo", "train", "generate", "chat", "evaluate", "attention", "push", "convert", "serve"):
        assert command in done.stdout


def test_train_passes_the_rest_to_the_script(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "clm", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--train_file" in out and "--learning_rate" in out and "--config" in out
    with pytest.raises(SystemExit) as exit_:
        main(["train", "summarization"])
    assert exit_.value.code == 2


def test_greedy_generate_prints_what_generate_returns(checkpoint, capsys):
    assert main(["generate", str(checkpoint), "--prompt", "The module", "--max-new-tokens", "6", "--greedy"]) == 0
    printed = capsys.readouterr().out.strip()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    expected = model.generate(**tokenizer("The module", return_tensors="pt"), max_new_tokens=6, do_sample=False,
                              pad_token_id=tokenizer.pad_token_id)
    assert printed == tokenizer.decode(expected[0], skip_special_tokens=True)


def test_evaluate_reports_perplexity_of_an_untrained_model_near_the_vocab_size(checkpoint, capsys):
    file = DATA_DIR / "prose" / "validation.txt"
    assert main(["evaluate", str(checkpoint), "--file", str(file), "--block-size", "32", "--batch-size", "64"]) == 0
    result = json.loads(capsys.readouterr().out)
    vocab = AutoTokenizer.from_pretrained(checkpoint).__len__()
    assert result["perplexity"] == pytest.approx(math.exp(result["loss"]))
    assert vocab / 2 < result["perplexity"] < 2 * vocab  # near-uniform predictions at N(0, 0.02) init
    assert result["tokens"] == result["blocks"] * 31


def test_evaluate_matches_a_direct_loss_computation(checkpoint, tmp_path):
    from scratchformers.examples.evaluate import perplexity

    text = tmp_path / "t.txt"
    text.write_text("The import statement finds a module and binds it to a name in the local namespace.\n" * 4)
    result = perplexity(checkpoint, text, block_size=16, batch_size=2)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    ids = tokenizer(text.read_text().splitlines())["input_ids"]
    flat = torch.tensor([i for row in ids for i in [*row, tokenizer.eos_token_id]])  # each line ends in <|endoftext|>
    blocks = flat[: len(flat) // 16 * 16].view(-1, 16)
    with torch.no_grad():
        loss = model(input_ids=blocks, labels=blocks).loss.item()
    assert result["perplexity"] == pytest.approx(math.exp(loss), rel=1e-4)


def test_attention_command_writes_a_png(checkpoint, tmp_path, capsys):
    out = tmp_path / "att.png"
    assert main(["attention", str(checkpoint), "--text", "A module is a file.", "--output", str(out)]) == 0
    assert png_size(out)[0] > 100 and str(out) in capsys.readouterr().out


def test_push_without_credentials_exits_nonzero_with_a_reason(checkpoint, monkeypatch, capsys):
    import huggingface_hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert main(["push", str(checkpoint), "--repo-id", "someone/tiny"]) == 1
    assert "no Hugging Face token" in capsys.readouterr().err
    assert main(["push", str(checkpoint), "--check"]) == 0
    assert "upload-complete" in capsys.readouterr().out


def test_errors_are_one_line_not_tracebacks(tmp_path, capsys):
    assert main(["generate", str(tmp_path), "--prompt", "x"]) == 2
    assert "no config.json" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("scratchformers.convert") is not None, reason="convert is installed")
def test_convert_hook_explains_when_the_converter_is_missing(capsys):
    assert main(["convert", "--help"]) == 2
    assert "scratchformers.convert" in capsys.readouterr().err


# --- Ctrl-C ---------------------------------------------------------------------------------------------------------


def test_ctrl_c_is_one_line_and_status_130(monkeypatch, capsys):
    import scratchformers.cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(scratchformers.cli, "run", interrupted)
    assert main(["evaluate", "somewhere"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["interrupted (Ctrl-C)"]
    with pytest.raises(KeyboardInterrupt):  # --debug shows the traceback, as for every other error
        main(["--debug", "evaluate", "somewhere"])


def test_sigint_during_a_command_ends_in_one_line_with_status_130():
    """A real Ctrl-C (SIGINT) while a command runs, in the console command's own process."""
    import signal
    import time

    code = (
        "import sys, time, scratchformers.cli, scratchformers_cli\n"
        "def run(args):\n"
        "    print('READY', flush=True)\n"
        "    time.sleep(60)\n"
        "scratchformers.cli.run = run\n"
        "sys.exit(scratchformers_cli.main(['evaluate', 'somewhere']))\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "READY"
        time.sleep(0.2)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130
    assert err.strip().splitlines() == ["interrupted (Ctrl-C)"], err
