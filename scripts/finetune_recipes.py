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
import subprocess
import sys
import time
from pathlib import Path

from scratchformers.finetune_recipes import (
    GGUF,
    RECIPES,
    answer_questions,
    build_data,
    console,
    markdown_table,
    run_measured,
    score,
    sft_command,
)


def main(argv: list[str] | None = None) -> dict:
    """Run every stage not done yet (convert, train each recipe, answer), then score, print and save the table;
    returns {"table": …, "runs": …} (also written to --output_dir/results.json)."""
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
