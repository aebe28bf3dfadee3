"""The fine-tuning recipes of docs/finetune.md and what measures them (scripts/finetune_recipes.py runs the whole
measurement): the language-ID instruction set, each recipe's `scratchformers train sft` command line, a child run's
wall time and peak memory, the models' greedy answers, and the two scores with bootstrap intervals and paired tests
against the base model (exact match; the first language the answer names). Library code the script and its tests
share.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

GGUF = Path.home() / ".cache" / "scratchformers" / "SmolLM2-135M-Instruct.Q4_1.gguf"
TASK = "language-id"
# flags every recipe shares: short chats, a fixed number of optimizer steps, no intermediate checkpoints
COMMON_FLAGS = ["--per_device_train_batch_size", "8", "--max_seq_length", "128", "--logging_steps", "1",
                "--save_strategy", "no", "--do_train", "--do_eval", "--max_eval_samples", "32",
                "--per_device_eval_batch_size", "16", "--seed", "0", "--report_to", "none", "--disable_tqdm", "true"]
#: recipe name → its own `train sft` flags (learning rates: the usual orders for full fine-tuning and for LoRA)
RECIPES = {
    "full-sft": ["--learning_rate", "3e-5"],
    "lora-sft": ["--lora_r", "8", "--lora_alpha", "16", "--learning_rate", "1e-3"],
}


def named_language(answer: str) -> str:
    """The first language name of ``scratchformers.data.LANGUAGE_NAMES`` that ``answer`` mentions as a word
    (case-insensitive), or "" when it names none: "This sentence is in German." → "German"."""
    from scratchformers.data import LANGUAGE_NAMES

    found = [(m.start(), name) for name in LANGUAGE_NAMES.values()
             for m in [re.search(rf"\b{name}\b", answer, flags=re.IGNORECASE)] if m]
    return min(found)[1] if found else ""


def build_data(out: Path, train: int, validation: int, test: int, seed: int = 0) -> dict[str, Path]:
    """``train/validation/test.jsonl`` of the language-ID chats under ``out/data`` (deterministic for a seed; the
    splits come from the corpus's disjoint splits)."""
    from scratchformers.data import build_instruction_set

    limits = {"train": train, "validation": validation, "test": test}
    return build_instruction_set(out / "data", seed=seed, max_per_task=limits, tasks=[TASK])


def sft_command(model: str | Path, data: dict[str, Path], output_dir: Path, recipe: str, max_steps: int) -> list[str]:
    """The `scratchformers train sft` command line of ``recipe`` (``RECIPES``). ValueError for an unknown recipe."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; allowed: {', '.join(RECIPES)}")
    return ["scratchformers", "train", "sft", "--model_name_or_path", str(model), "--train_file", str(data["train"]),
            "--validation_file", str(data["validation"]), "--output_dir", str(output_dir), "--max_steps",
            str(max_steps), *COMMON_FLAGS, *RECIPES[recipe]]


def console(command: list[str]) -> list[str]:
    """A ``scratchformers ...`` command line run by this Python (``-m scratchformers_cli``), wherever its venv is."""
    return [sys.executable, "-m", "scratchformers_cli", *command[1:]] if command[0] == "scratchformers" else command


def run_measured(command: list[str], log: Path) -> dict[str, float]:
    """Run ``command`` (its output to ``log``); its wall time in seconds and the child's peak resident memory in MiB
    (``os.wait4``'s ru_maxrss, kilobytes on Linux). RuntimeError naming the log when it fails."""
    start = time.perf_counter()
    with log.open("w") as fh:
        child = subprocess.Popen(console(command), stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed; see {log}")
    return {"wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024}


def answer_questions(checkpoint: Path, test_file: Path, max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy answers of the model in ``checkpoint`` (a model folder or a LoRA adapter) to each test chat."""
    import torch
    from transformers import AutoTokenizer

    from scratchformers.sft import ensure_chat_template, generate_answers, load_causal_lm, read_chats

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    model = load_causal_lm(checkpoint)
    ensure_chat_template(tokenizer, model)
    return generate_answers(model, tokenizer, read_chats(test_file), max_new_tokens, batch_size)


def score(answers: dict[str, list[str]], gold: list[str], n_samples: int = 1000) -> dict[str, dict]:
    """Per model (the first is the baseline): exact match and named-language accuracy (0–100) with 95 % bootstrap
    intervals, and each later model's paired bootstrap test against the first."""
    from scratchformers.metrics.significance import paired_bootstrap_test, scores_with_confidence

    views = {"exact_match": lambda a: a, "named_language": named_language}
    base_name = next(iter(answers))
    table = {}
    for name, hyps in answers.items():
        row = {}
        for metric, view in views.items():
            seen = [view(a) for a in hyps]
            row[metric] = scores_with_confidence(seen, gold, n_samples, metrics=["exact_match"])["exact_match"]
            if name != base_name:
                row[metric]["vs_base"] = paired_bootstrap_test([view(a) for a in answers[base_name]], seen, gold,
                                                               n_samples, metrics=["exact_match"])["exact_match"]
        table[name] = row
    return table


def markdown_table(table: dict[str, dict], runs: dict[str, dict]) -> str:
    """The recipe table of docs/finetune.md from ``score``'s table and each recipe's ``run.json``."""
    lines = ["| recipe | steps | wall time | peak memory | trainable parameters | exact match % (95 % CI) | "
             "named language % (95 % CI) |", "|---|---|---|---|---|---|---|"]
    for name, row in table.items():
        run = runs.get(name, {})
        cells = []
        for metric in ("exact_match", "named_language"):
            m = row[metric]
            cell = f"{m['score']:.1f} ({m['low']:.1f}–{m['high']:.1f})"
            if "vs_base" in m:
                cell += f", Δ {m['vs_base']['delta']:+.1f}, p = {m['vs_base']['p_value']:.3f}"
            cells.append(cell)
        if run:
            lines.append(f"| {name} | {run['steps']} | {run['wall_s'] / 60:.1f} min | {run['peak_rss_mib']:,.0f} MiB | "
                         f"{run['trainable_parameters']:,} | {cells[0]} | {cells[1]} |")
        else:
            lines.append(f"| {name} (no training) | – | – | – | – | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)
