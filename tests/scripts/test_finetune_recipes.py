"""scripts/finetune_recipes.py (docs/finetune.md): the language-ID instruction set it builds, its scores, and the
whole measurement on a tiny checkpoint; on the real SmolLM2-135M-Instruct (when its GGUF is cached), `train sft`
full and LoRA for a few steps, then `chat` and `push --check` on what it saved."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from families import LLAMA_OPTIONS
from transformers import AutoModelForCausalLM, AutoTokenizer

from scratchformers import ScratchGPTConfig, ScratchGPTForCausalLM
from scratchformers.data import INSTRUCTION_TASKS, LANGUAGE_PROMPT, instruction_chats
from scratchformers.finetune_recipes import build_data, named_language, score, sft_command
from scratchformers.tokenization import train_tokenizer
from scratchformers_cli import main as cli

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "finetune_recipes.py"
SMOLLM2 = Path(os.environ.get("SF_SMOLLM2_GGUF",
                              Path.home() / ".cache" / "scratchformers" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
QUESTION = LANGUAGE_PROMPT.split("{")[0]


def prompts(path: Path) -> list[str]:
    return [json.loads(line)["messages"][0]["content"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_language_id_set_is_deterministic_and_its_test_split_is_held_out(tmp_path):
    first = build_data(tmp_path / "a", train=120, validation=20, test=40)
    again = build_data(tmp_path / "b", train=120, validation=20, test=40)
    for split, path in first.items():
        assert path.read_bytes() == again[split].read_bytes(), split
    train, test = set(prompts(first["train"])), set(prompts(first["test"]))
    assert len(train) == 120 and len(test) == 40 and not train & test
    assert all(p.startswith(QUESTION) for p in train | test)  # language ID only


def test_keeping_one_task_keeps_its_rows():
    both = instruction_chats(max_per_task={"train": 50})["train"]
    alone = instruction_chats(max_per_task={"train": 50}, tasks=["language-id"])["train"]
    assert len(alone) == 50 and all(row in both for row in alone)
    with pytest.raises(ValueError, match="tasks must be a non-empty list of " + ", ".join(INSTRUCTION_TASKS)):
        instruction_chats(tasks=["ner"])


@pytest.mark.parametrize("answer, name", [
    ("German", "German"), ("This sentence is in german.", "German"), ("Dutch, not German", "Dutch"),
    ("This sentence is in Python.", ""), ("Germany", ""),
])
def test_named_language_is_the_first_language_the_answer_names(answer, name):
    assert named_language(answer) == name


def test_scores_count_exact_and_named_answers_and_test_against_the_base():
    gold = ["German", "French", "Dutch", "Italian"] * 10
    base = ["This sentence is in German.", "It is Spanish.", "Dutch", "no idea"] * 10  # 1 exact, 2 named of 4
    tuned = ["German", "French", "Dutch", "Spanish"] * 10  # 3 exact, 3 named of 4
    table = score({"base": base, "tuned": tuned}, gold, n_samples=200)
    assert table["base"]["exact_match"]["score"] == 25.0 and table["base"]["named_language"]["score"] == 50.0
    assert table["tuned"]["exact_match"]["score"] == 75.0 and table["tuned"]["named_language"]["score"] == 75.0
    assert table["tuned"]["exact_match"]["vs_base"]["delta"] == 50.0
    assert table["tuned"]["exact_match"]["vs_base"]["significant"] is True
    assert "vs_base" not in table["base"]["exact_match"]
    with pytest.raises(ValueError, match="unknown recipe 'dpo'; allowed: full-sft, lora-sft"):
        sft_command("m", {}, Path("o"), "dpo", 1)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A 1-layer llama-style decoder with a small BPE tokenizer (no chat template: `train sft` adds ChatML)."""
    texts = [m["content"] for row in instruction_chats(max_per_task={"train": 200})["train"] for m in row["messages"]]
    corpus = tmp_path_factory.mktemp("corpus") / "texts.txt"
    corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")
    tokenizer = train_tokenizer([corpus], kind="bpe", vocab_size=400)
    torch.manual_seed(0)
    config = ScratchGPTConfig(
        **LLAMA_OPTIONS, vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, intermediate_size=64, max_position_embeddings=256, bos_token_id=0, eos_token_id=0,
        pad_token_id=1,
    )
    folder = tmp_path_factory.mktemp("tiny")
    ScratchGPTForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def run_script(*argv: str) -> str:
    """scripts/finetune_recipes.py with `argv`, as a user runs it; its stdout."""
    run = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def test_the_measurement_runs_end_to_end_and_resumes(tmp_path, tiny_checkpoint):
    argv = ["--model", str(tiny_checkpoint), "--output_dir", str(tmp_path), "--max_steps", "2", "--train", "16",
            "--validation", "8", "--test", "8", "--max_new_tokens", "3", "--bootstrap", "20", "--threads", "1"]
    run_script(*argv)
    result = json.loads((tmp_path / "results.json").read_text())
    assert set(result["table"]) == {"base", "full-sft", "lora-sft"}
    full, lora = result["runs"]["full-sft"], result["runs"]["lora-sft"]
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "full-sft")  # ChatML added: 2 more embedding rows
    assert full["trainable_parameters"] == sum(p.numel() for p in model.parameters())
    assert 0 < lora["trainable_parameters"] < full["trainable_parameters"]
    assert full["steps"] == 2 and full["wall_s"] > 0 and full["peak_rss_mib"] > 0
    table = (tmp_path / "table.md").read_text()
    assert "| full-sft | 2 |" in table and "| base (no training) |" in table
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/run.json")} | {
        p: p.stat().st_mtime_ns for p in tmp_path.glob("answers-*.json")}
    out = run_script(*argv)
    assert json.loads((tmp_path / "results.json").read_text()) == result  # (the bootstrap is seeded)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert "training full-sft" not in out and "answering" not in out


@pytest.mark.slow
@pytest.mark.skipif(not SMOLLM2.is_file(), reason=f"{SMOLLM2} is not cached: python scripts/fetch_smollm2_gguf.py "
                    "(or set SF_SMOLLM2_GGUF)")
def test_real_smollm2_fine_tunes_and_its_outputs_chat_and_are_upload_complete(tmp_path, capsys):
    """SmolLM2-135M-Instruct: a few steps of full SFT and of LoRA SFT lower the assistant loss on held-out chats;
    the outputs keep SmolLM2's own chat template, vocabulary and tied embeddings, chat, and pass `push --check`."""
    base = tmp_path / "smollm2"
    assert cli(["convert", str(SMOLLM2), str(base)]) == 0
    data = build_data(tmp_path, train=16, validation=8, test=8)
    flags = ["--max_steps", "3", "--per_device_train_batch_size", "4", "--max_eval_samples", "8"]
    template = AutoTokenizer.from_pretrained(base).chat_template
    for recipe in ("full-sft", "lora-sft"):
        out = tmp_path / recipe
        command = sft_command(base, data, out, recipe, 3)[1:] + flags  # (later flags win)
        assert cli(command) == 0, recipe
        metrics = json.loads((out / "all_results.json").read_text())
        assert metrics["eval_loss"] < metrics["eval_loss_before"] - 1.0, recipe  # (≈ 9 → ≈ 1 on the one-word answers)
        tokenizer = AutoTokenizer.from_pretrained(out)
        assert tokenizer.chat_template == template and len(tokenizer) == 49152  # no ChatML added: SmolLM2 has it
        capsys.readouterr()
        assert cli(["chat", str(out), "--greedy", "--max-new-tokens", "4", "--prompt",
                    "Which language is this sentence in? Datei nicht gefunden"]) == 0, recipe
        assert capsys.readouterr().out.strip()
        assert cli(["push", str(out), "--check"]) == 0, recipe
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "full-sft")
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # still tied after training
