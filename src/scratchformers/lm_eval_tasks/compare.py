"""Score one of our causal-LM checkpoints with lm-evaluation-harness, and transformers' own class with the same
weights, on the same tasks; print both and their differences.

The checkpoint (a `ScratchGPTForCausalLM` folder with its tokenizer, e.g. `scratchformers demo`'s
`outputs/demo-gpt/checkpoint`) is converted with `scratchformers convert` (GPT-2 style → `GPT2LMHeadModel`,
Llama style → `LlamaForCausalLM`, …) into `--hf-dir` (default: a temporary folder). Both are then loaded by lm-eval
exactly as a user's command line loads them, `--model hf` with `pretrained=FOLDER,trust_remote_code=True`, and
evaluated on the task files shipped in `scratchformers.lm_eval_tasks` (`--tasks scratchformers`: held-out prose
perplexity and language identification).

    python scripts/lm_eval_compare.py outputs/demo-gpt/checkpoint
    python scripts/lm_eval_compare.py CHECKPOINT --tasks scratch_language_id --limit 50 --json scores.json

Needs the `eval` extra (lm-eval); importing this module imports lm_eval.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the task data is local; nothing is fetched
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import lm_eval  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from scratchformers.convert import main as convert  # noqa: E402
from scratchformers.lm_eval_tasks import TAG, TASK_DIR  # noqa: E402


def task_manager() -> TaskManager:
    """lm-eval's task registry with our task folder only (indexing lm-eval's thousands of built-in tasks takes
    seconds and is not needed here; the command line `--include_path` adds ours to them instead)."""
    return TaskManager(include_path=str(TASK_DIR), include_defaults=False)


def evaluate(
    checkpoint: str | os.PathLike,
    tasks: Sequence[str] = (TAG,),
    limit: int | float | None = None,
    batch_size: int = 8,
    device: str = "cpu",
    manager: TaskManager | None = None,
) -> dict[str, dict[str, Any]]:
    """`lm_eval.simple_evaluate` with the `hf` model on `checkpoint`, as
    `lm_eval --model hf --model_args pretrained=CHECKPOINT,trust_remote_code=True` runs it (in the dtype the
    checkpoint was saved in); returns the `results` part: ``{task: {"metric,filter": value, ...}}``."""
    output = lm_eval.simple_evaluate(
        model="hf",
        model_args={"pretrained": str(checkpoint), "trust_remote_code": True},
        tasks=list(tasks),
        task_manager=manager or task_manager(),
        limit=limit,
        batch_size=batch_size,
        device=device,
    )
    return output["results"]


def scores(results: dict[str, dict[str, Any]]) -> dict[tuple[str, str], float]:
    """``{(task, metric): value}`` for every numeric metric of lm-eval's ``results`` (standard errors included;
    names, aliases and sample counts left out)."""
    return {
        (task, metric.split(",")[0]): float(value)
        for task, metrics in results.items()
        for metric, value in metrics.items()
        if "," in metric and isinstance(value, (int, float))
    }


def compare(ours: dict[str, dict[str, Any]], theirs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (task, metric) present in either result: both values, the absolute and relative difference."""
    a, b = scores(ours), scores(theirs)
    rows = []
    for task, metric in sorted(set(a) | set(b)):
        x, y = a.get((task, metric), math.nan), b.get((task, metric), math.nan)
        diff = abs(x - y)
        rows.append({"task": task, "metric": metric, "ours": x, "hf": y, "abs_diff": diff,
                     "rel_diff": diff / abs(y) if y else diff})
    return rows


def table(rows: Sequence[dict[str, Any]], hf_name: str = "transformers") -> str:
    """A Markdown table of `compare`'s rows."""
    lines = [f"| task | metric | ours | {hf_name} | abs diff | rel diff |", "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r['task']} | {r['metric']} | {r['ours']:.6g} | {r['hf']:.6g} | {r['abs_diff']:.3g} | "
              f"{r['rel_diff']:.2g} |" for r in rows]
    return "\n".join(lines)


def hf_twin(checkpoint: str | os.PathLike, out_dir: str | os.PathLike) -> str:
    """Convert `checkpoint` to transformers' native class with `scratchformers convert` (weights unchanged,
    tokenizer copied) into `out_dir`; returns the class name written."""
    convert([str(checkpoint), str(out_dir), "--overwrite"])
    return json.loads((Path(out_dir) / "config.json").read_text())["architectures"][0]


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Evaluate CHECKPOINT and its transformers twin, print the table; returns its rows."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a folder saved by ScratchGPTForCausalLM.save_pretrained, with a tokenizer")
    parser.add_argument("--tasks", default=TAG, help=f"comma-separated tasks or tags (default: {TAG}, both tasks)")
    parser.add_argument("--limit", type=float, default=None, help="examples per task (a fraction if < 1)")
    parser.add_argument("--batch-size", "--batch_size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--hf-dir", "--hf_dir", default=None, help="where to write the converted twin "
                        "(default: a temporary folder, removed afterwards)")
    parser.add_argument("--json", default=None, help="also write the rows (and both raw results) to this file")
    args = parser.parse_args(argv)
    limit = None if args.limit is None else (int(args.limit) if args.limit >= 1 else args.limit)
    tasks = args.tasks.split(",")
    manager = task_manager()
    with tempfile.TemporaryDirectory(prefix="lm-eval-twin-") as scratch:
        hf_dir = args.hf_dir or os.path.join(scratch, "hf")
        hf_name = hf_twin(args.checkpoint, hf_dir)
        ours = evaluate(args.checkpoint, tasks, limit, args.batch_size, args.device, manager)
        theirs = evaluate(hf_dir, tasks, limit, args.batch_size, args.device, manager)
    rows = compare(ours, theirs)
    print(table(rows, hf_name))
    if args.json:
        Path(args.json).write_text(json.dumps({"checkpoint": str(args.checkpoint), "hf_class": hf_name,
                                               "limit": limit, "rows": rows, "ours": ours, "hf": theirs}, indent=1))
    return rows
