"""The fine-tuning recipes of docs/finetune.md, measured on the real SmolLM2-135M-Instruct: convert the GGUF, score
the base model, fine-tune it with each recipe (`scratchformers train sft`, full and LoRA), score each result, and
print the table.

Task: naming the language of a sentence in one word ("Which language is this sentence in? <text>" → "German"), from
the shipped language-ID corpus (`scratchformers.data.instruction_chats(tasks=["language-id"])`; train, validation
and test come from the corpus's disjoint splits). Each model answers the held-out test questions greedily; two
scores, each with sacrebleu's 95 % bootstrap interval and a paired bootstrap test against the base model
(`scratchformers.metrics.significance`):

- exact match: the answer is the language's name and nothing else (what the instruction set teaches);
- named language: the first language name the answer mentions is the right one ("This sentence is in German." counts),
  which separates knowing the language from answering in the asked format.

Every stage is skipped when its output exists (the converted model, each trained folder, each model's answers), so a
run that stopped goes on where it stopped and the table is re-made in seconds; delete a folder to redo its stage.
Training runs in a child process, whose wall time and peak resident memory (ru_maxrss) are recorded.

    python scripts/finetune_recipes.py --output_dir outputs/finetune    # everything (≈ 45 min on 2 busy cores)
    python scripts/finetune_recipes.py --output_dir outputs/finetune --recipes full-sft
    python scripts/finetune_recipes.py --model outputs/my-chat --output_dir /tmp/ft  # an existing checkpoint, no GGUF
"""

from __future__ import annotations

import argparse
import json
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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="outputs/finetune")
    parser.add_argument("--gguf", default=str(GGUF), help="the SmolLM2 GGUF to convert (scripts/fetch_smollm2_gguf.py)")
    parser.add_argument("--model", help="fine-tune this checkpoint folder instead of converting --gguf")
    parser.add_argument("--recipes", default=",".join(RECIPES), help=f"comma-separated, of: {', '.join(RECIPES)}")
    parser.add_argument("--max_steps", type=int, default=8)
    parser.add_argument("--train", type=int, default=64, help="training chats (8 steps of 8: one pass)")
    parser.add_argument("--validation", type=int, default=64, help="validation chats (loss before/after)")
    parser.add_argument("--test", type=int, default=200, help="held-out test chats answered by every model")
    parser.add_argument("--max_new_tokens", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=16, help="generation batch")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (OMP_NUM_THREADS of each child)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    args = parser.parse_args(argv)
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {', '.join(unknown)}; allowed: {', '.join(RECIPES)}")
    for name in ("max_steps", "train", "validation", "test", "threads", "max_new_tokens", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.model is None and not Path(args.gguf).is_file():
        parser.error(f"--gguf {args.gguf} does not exist: run scripts/fetch_smollm2_gguf.py or pass --model")

    import torch

    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = Path(args.model) if args.model else out / "base"
    if not (base / "config.json").is_file():
        print(f"converting {args.gguf} → {base}", flush=True)
        subprocess.run(console(["scratchformers", "convert", args.gguf, str(base)]), check=True)
    data = build_data(out, args.train, args.validation, args.test)

    runs = {}
    for recipe in recipes:
        folder = out / recipe
        record = folder / "run.json"
        if not record.is_file():
            command = sft_command(base, data, folder, recipe, args.max_steps)
            if folder.exists():  # a run that stopped before its record: replaced
                command.append("--overwrite_output_dir")
            print(f"training {recipe}: {' '.join(command)}", flush=True)
            measured = run_measured(command, out / f"{recipe}.log")
            results = json.loads((folder / "all_results.json").read_text())
            measured.update(steps=args.max_steps, trainable_parameters=int(results["trainable_parameters"]),
                            train_runtime_s=results["train_runtime"], command=command,
                            eval_loss_before=results.get("eval_loss_before"), eval_loss=results.get("eval_loss"))
            record.write_text(json.dumps(measured, indent=2))
        runs[recipe] = json.loads(record.read_text())

    from scratchformers.sft import read_chats

    gold = [chat[-1]["content"] for chat in read_chats(data["test"])]
    answers = {}
    for name, folder in [("base", base), *((r, out / r) for r in recipes)]:
        path = out / f"answers-{name}.json"
        if not path.is_file():
            print(f"answering {len(gold)} test questions with {name}", flush=True)
            start = time.perf_counter()
            hyps = answer_questions(folder, data["test"], args.max_new_tokens, args.batch_size)
            path.write_text(json.dumps({"answers": hyps, "wall_s": time.perf_counter() - start}, ensure_ascii=False))
        answers[name] = json.loads(path.read_text())["answers"]
        if len(answers[name]) != len(gold):
            raise RuntimeError(f"{path} holds {len(answers[name])} answers for {len(gold)} test questions: delete it")
    table = score(answers, gold, args.bootstrap)
    text = markdown_table(table, runs)
    (out / "results.json").write_text(json.dumps({"table": table, "runs": runs}, indent=2, ensure_ascii=False))
    (out / "table.md").write_text(text + "\n")
    print(text)
    print("examples:", [(g, {n: a[i] for n, a in answers.items()}) for i, g in enumerate(gold[:3])])
    return {"table": table, "runs": runs}


if __name__ == "__main__":
    sys.exit(main() and 0)
