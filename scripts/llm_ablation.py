#!/usr/bin/env python
"""From GPT-2 to Llama, one change at a time: validation perplexity on the shipped prose at equal parameters and budget.

Six decoder configurations, each adding one change to the one before (docs/llm.md):
  GPT-2 baseline → + rotary positions → + RMSNorm → + SwiGLU → + grouped-query attention → Llama (no biases).
Every configuration has the baseline's parameter count within ±5 % (the feed-forward `intermediate_size` is chosen
to make up for what a change adds or removes), and trains with the same seed(s), data order, steps, batch and
learning-rate schedule (AdamW, linear warm-up, cosine decay). Reported: validation perplexity exp(mean token NLL) over
the whole validation file, mean over the seeds. Results go to docs/llm/ablation.json (and a Markdown table).

    python scripts/llm_ablation.py                 # the recorded run (≈ 12 min on 2 shared CPU cores)
    python scripts/llm_ablation.py --quick         # smoke test (seconds)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import torch  # noqa: E402
import transformers  # noqa: E402

from scratchformers import ScratchGPTConfig, ScratchGPTForCausalLM  # noqa: E402
from scratchformers.ablation import (  # noqa: E402
    PARAM_TOLERANCE,
    SIZES,
    build_config,
    configurations,
    matched_intermediate_size,
    parameter_count,
)
from scratchformers.tokenization import train_tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

def token_stream(tokenizer, path: Path) -> torch.Tensor:
    """The whole file as one stream of token ids (lines joined by newlines)."""
    return torch.tensor(tokenizer(path.read_text(encoding="utf-8"))["input_ids"], dtype=torch.long)


def lr_at(step: int, size: dict) -> float:
    """Linear warm-up to `lr`, then cosine decay to 10 % of it (the same schedule for every configuration)."""
    if step < size["warmup"]:
        return size["lr"] * (step + 1) / size["warmup"]
    progress = (step - size["warmup"]) / max(1, size["steps"] - size["warmup"])
    return size["lr"] * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def validation_perplexity(model, stream: torch.Tensor, length: int) -> float:
    """exp(mean NLL) of every next-token prediction in consecutive windows of `length` tokens over the stream."""
    model.eval()
    usable = (stream.numel() - 1) // length * length
    windows = stream[: usable + 1]
    total, count = 0.0, 0
    inputs = windows[:-1].view(-1, length)
    targets = windows[1:].view(-1, length)
    for start in range(0, inputs.shape[0], 32):
        logits = model(input_ids=inputs[start : start + 32]).logits
        nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets[start : start + 32].flatten(),
                                                reduction="sum")
        total += nll.item()
        count += targets[start : start + 32].numel()
    model.train()
    return math.exp(total / count)


def train_one(config: ScratchGPTConfig, size: dict, seed: int, train: torch.Tensor, validation: torch.Tensor) -> dict:
    """Train from seed `seed` (init and data order) for size['steps'] steps; return perplexity and timings."""
    torch.manual_seed(seed)
    model = ScratchGPTForCausalLM(config)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=size["lr"], betas=(0.9, 0.95), weight_decay=0.1)
    data = torch.Generator().manual_seed(1000 + seed)  # the same windows for every configuration
    length, batch = size["length"], size["batch"]
    started = time.perf_counter()
    for step in range(size["steps"]):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, size)
        starts = torch.randint(0, train.numel() - length - 1, (batch,), generator=data)
        ids = torch.stack([train[s : s + length] for s in starts])
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    seconds = time.perf_counter() - started
    return {"seed": seed, "final_train_loss": loss.item(), "train_seconds": seconds,
            "validation_perplexity": validation_perplexity(model, validation, length)}


def markdown_table(results: list[dict]) -> str:
    baseline = results[0]["validation_perplexity"]
    lines = ["| configuration | parameters | intermediate_size | validation perplexity (mean) | per seed | vs baseline |",
             "|---|---|---|---|---|---|"]
    for r in results:
        per_seed = ", ".join(f"{run['validation_perplexity']:.2f}" for run in r["runs"])
        change = 100 * (r["validation_perplexity"] / baseline - 1)
        lines.append(f"| {r['name']} | {r['parameters']:,} | {r['intermediate_size']} | "
                     f"{r['validation_perplexity']:.2f} | {per_seed} | {change:+.1f} % |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny models, a few steps: a smoke test")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON results (default docs/llm/ablation.json; with --quick only printed unless given)")
    p.add_argument("--data-dir", type=Path, default=ROOT / "data" / "prose")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the cores are shared)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    size = SIZES["quick" if args.quick else "full"]
    out = args.out if args.out is not None else (None if args.quick else ROOT / "docs" / "llm" / "ablation.json")
    train_file, validation_file = args.data_dir / "train.txt", args.data_dir / "validation.txt"
    for path in (train_file, validation_file):
        if not path.is_file():
            print(f"error: {path} not found (--data-dir must hold train.txt and validation.txt)", file=sys.stderr)
            raise SystemExit(2)
    started = time.perf_counter()
    tokenizer = train_tokenizer(train_file, "bpe", size["vocab"])
    train, validation = token_stream(tokenizer, train_file), token_stream(tokenizer, validation_file)
    size = {**size, "vocab": len(tokenizer)}

    configs = configurations(size)
    baseline_options = configs[0][1]
    baseline_intermediate = 4 * size["width"]
    target = parameter_count(build_config(size, baseline_options, baseline_intermediate))
    results = []
    for name, options in configs:
        if name == configs[0][0]:
            intermediate, count = baseline_intermediate, target
        else:
            intermediate, count = matched_intermediate_size(size, options, target)
        config = build_config(size, options, intermediate)
        runs = [train_one(config, size, seed, train, validation) for seed in size["seeds"]]
        result = {
            "name": name, "options": {k: v for k, v in options.items()}, "intermediate_size": intermediate,
            "parameters": count, "parameter_ratio": count / target,
            "validation_perplexity": sum(r["validation_perplexity"] for r in runs) / len(runs), "runs": runs,
        }
        results.append(result)
        print(f"{name:24s} params {count:,} (×{count / target:.3f})  I={intermediate}  "
              f"val ppl {result['validation_perplexity']:.2f}  "
              f"({sum(r['train_seconds'] for r in runs):.0f} s)", flush=True)
    command = "python scripts/llm_ablation.py " + " ".join(argv if argv is not None else sys.argv[1:])
    record = {
        "command": command.strip(),
        "data": str(args.data_dir.relative_to(ROOT)) if args.data_dir.is_relative_to(ROOT) else str(args.data_dir),
        "tokenizer": f"byte-level BPE, {size['vocab']} entries, trained on train.txt",
        "train_tokens": train.numel(), "validation_tokens": validation.numel(),
        "budget": {k: size[k] for k in ("steps", "batch", "length", "lr", "warmup")} | {
            "schedule": "AdamW (0.9, 0.95), weight decay 0.1, linear warm-up then cosine to 10 %, grad clip 1.0",
            "seeds": list(size["seeds"])},
        "shape": {k: size[k] for k in ("width", "layers", "heads")},
        "parameter_tolerance": PARAM_TOLERANCE,
        "target_parameters": target,
        "results": results,
        "minutes": (time.perf_counter() - started) / 60,
        "cpu_minutes": time.process_time() / 60,  # this process's CPU time: the budget is 15 CPU minutes
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}, "
                   f"load average {os.getloadavg()[0]:.1f}; torch {torch.__version__}, transformers "
                   f"{transformers.__version__}",
        "table": None,
    }
    record["table"] = markdown_table(results)
    bad = [r["name"] for r in results if abs(r["parameter_ratio"] - 1) > PARAM_TOLERANCE]
    if bad:
        raise RuntimeError(f"parameter count outside ±{PARAM_TOLERANCE:.0%} of the baseline: {bad}")
    print(record["table"])
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {out}")
    return record


if __name__ == "__main__":
    transformers.logging.set_verbosity_error()  # the command's own output only (not in main: tests import it)
    main()
