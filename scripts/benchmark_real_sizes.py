"""Our decoder against transformers' own class at real LLM sizes, in one run: training and decoding, with the
machine's matmul and memory-bandwidth ceilings measured in the same run.

Shapes: SmolLM2-135M (its real weights when the GGUF is cached: scripts/fetch_smollm2_gguf.py; else random),
Qwen2.5-0.5B and Llama-3.2-1B (random weights in their published shapes; Llama-3.2's rope scaling left out, it does
not change the cost). Each pair holds the same weights (ours made with `scratchformers.convert.from_hf`), gets the same
inputs, and is timed interleaved (HF, ours, HF, ours, …), median of --repeats, sdpa attention, float32.

- Training (forward + backward + AdamW, --train-lengths: T for batch 1, BxT for batch B): tokens/s, MFU and the
  peak of live tensors (`measure.allocated_peak_mib`, one step each after the timed ones, so the AdamW moments are
  included; ours uses its chunked loss and lean backward, HF its full logits and autograd). Only for shapes
  whose two models with AdamW state fit in half the machine's memory (16 bytes per parameter each).
- Decoding (cached greedy steps after a prefill, like for like: both with the dynamic cache): tokens/s at batch 1
  and 8 after a 16-token prompt, and batch 1 after a 1,024-token prompt.

Formulas (one for every row): MFU = tokens/s × FLOPs per token / matmul ceiling, FLOPs per token = 6·N + 12·L·T·C
(`measure.training_flops_per_token`); bandwidth utilisation = (tokens/s ÷ B) × bytes read per step / bandwidth
ceiling, bytes per step = every weight once (a tied matrix once) + B × the KV cache, 2·L·T·H_kv·D·4
(`measure.decode_bytes_per_step`); matmul ceiling = fp32 1024² matmul FLOP/s, bandwidth ceiling = the read rate of a
512 MB tensor (`measure.matmul_flops`, `measure.memory_bandwidth`), both with the run's thread count.

    python scripts/benchmark_real_sizes.py --threads 2 --out benchmarks/REAL_SIZES.md     # ≈ 30 min on 2 cores
    python scripts/benchmark_real_sizes.py --quick                                       # smoke test, tiny shapes
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import torch
import transformers

from scratchformers.convert import from_hf
from scratchformers.measure import (
    allocated_peak_mib,
    decode_bytes_per_step,
    interleaved,
    kept_notes,
    matmul_flops,
    memory_bandwidth,
    table,
    training_flops_per_token,
    write_report,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import cpu_name, git_commit, greedy_decode_fn, ratio, train_step_fn  # noqa: E402

MEMORY_TARGET = 1 / 0.6  # issue 23: peak training memory ≤ 0.6× HF's (HF / ours ≥ 1.67×)
SMOLLM2_GGUF = Path.home() / ".cache" / "scratchformers" / "SmolLM2-135M-Instruct.Q4_1.gguf"
SHAPES = {  # the published config.json of each model, the fields that set its cost
    "SmolLM2-135M": (transformers.LlamaForCausalLM, transformers.LlamaConfig, dict(
        vocab_size=49152, hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
        intermediate_size=1536, max_position_embeddings=8192, rope_theta=100000.0, tie_word_embeddings=True)),
    "Qwen2.5-0.5B": (transformers.Qwen2ForCausalLM, transformers.Qwen2Config, dict(
        vocab_size=151936, hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
        intermediate_size=4864, max_position_embeddings=32768, rope_theta=1000000.0, tie_word_embeddings=True)),
    "Llama-3.2-1B": (transformers.LlamaForCausalLM, transformers.LlamaConfig, dict(
        vocab_size=128256, hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
        intermediate_size=8192, head_dim=64, max_position_embeddings=131072, rope_theta=500000.0,
        tie_word_embeddings=True)),
}
QUICK_SHAPE = dict(vocab_size=4096, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                   intermediate_size=128, max_position_embeddings=2048, tie_word_embeddings=True)


def make_pair(name: str, quick: bool) -> tuple[torch.nn.Module, torch.nn.Module, str]:
    """(HF model, ours with the same weights, where the weights came from), both in eval mode, sdpa."""
    hf_class, config_class, shape = SHAPES[name]
    torch.manual_seed(0)
    if name == "SmolLM2-135M" and SMOLLM2_GGUF.is_file() and not quick:
        hf = hf_class.from_pretrained(SMOLLM2_GGUF.parent, gguf_file=SMOLLM2_GGUF.name, attn_implementation="sdpa",
                                      dtype=torch.float32)
        source = "real weights (GGUF Q4_1, de-quantized)"
    else:
        hf = hf_class._from_config(config_class(**(QUICK_SHAPE if quick else shape)), attn_implementation="sdpa")
        source = "random weights"
    return hf.eval(), from_hf(hf).eval(), source


def fits_training(model: torch.nn.Module) -> bool:
    """Whether two such models with AdamW state (weights, gradients, two moments: 16 bytes a parameter) fit in half
    of the memory available now."""
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return 2 * 16 * sum(p.numel() for p in model.parameters()) < available / 2


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, one repeat: a smoke test")
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated, of {', '.join(SHAPES)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-lengths", default="512,2048,4x1024",
                        help="comma-separated sequence lengths, each T (batch 1) or BxT (batch B)")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to write (default: print only)")
    args = parser.parse_args(argv)
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        parser.error(f"unknown shape(s) {', '.join(unknown)}; choose from {', '.join(SHAPES)}")
    try:
        lengths = [tuple(int(n) for n in ("1x" + item if "x" not in item else item).split("x"))
                   for item in args.train_lengths.split(",")]
    except ValueError:
        parser.error(f"--train-lengths takes T or BxT items (e.g. 512,4x1024), got {args.train_lengths!r}")
    repeats = 1 if args.quick else args.repeats
    new_tokens = 4 if args.quick else args.new_tokens
    if args.quick:
        lengths = [(1, 32)]
    torch.set_num_threads(args.threads)
    load_before, started = os.getloadavg(), time.perf_counter()
    flops = matmul_flops(256 if args.quick else 1024, repeats=3 if args.quick else 10)
    bandwidth = memory_bandwidth(64 if args.quick else 512, repeats=3 if args.quick else 5)
    print(f"ceilings: {flops / 1e9:.1f} GFLOP/s, {bandwidth / 1e9:.1f} GB/s", flush=True)
    train_rows, decode_rows, skipped = [], [], []
    for name in shapes:
        hf, ours, source = make_pair(name, args.quick)
        params = sum(p.numel() for p in hf.parameters())
        label = f"{name} ({params / 1e6:.0f} M, {source})"
        if fits_training(hf):
            for batch_size, length in lengths:
                batch = {"input_ids": torch.randint(3, hf.config.vocab_size, (batch_size, length))}
                batch["labels"] = batch["input_ids"].clone()
                steps = {"hf": train_step_fn(hf, batch), "ours": train_step_fn(ours, batch)}
                t = interleaved(steps, repeats)
                peak = {k: allocated_peak_mib(step) for k, step in steps.items()}
                per_token = training_flops_per_token(hf, hf.config, length)
                tok = {k: batch_size * length / t[k] for k in t}
                train_rows.append([label, f"{batch_size} × {length:,}", f"{tok['hf']:.0f}", f"{tok['ours']:.0f}",
                                   ratio(tok["ours"], tok["hf"]), f"{100 * tok['hf'] * per_token / flops:.1f} %",
                                   f"{100 * tok['ours'] * per_token / flops:.1f} %", f"{peak['hf']:,.0f}",
                                   f"{peak['ours']:,.0f}", ratio(peak["ours"], peak["hf"], higher_is_better=False, target=MEMORY_TARGET)])
                print("train", train_rows[-1], flush=True)
            hf.eval(), ours.eval()
        else:
            skipped.append(f"{label}: training not measured (2 models × 16 bytes × {params / 1e6:.0f} M parameters "
                           "exceed half the available memory)")
        for batch_size, context in ((1, 16), (8, 16), (1, 1024)):
            context = min(context, 64) if args.quick else context
            ids = torch.randint(3, hf.config.vocab_size, (batch_size, context))
            runs = {"hf": greedy_decode_fn(hf, ids, new_tokens), "ours": greedy_decode_fn(ours, ids, new_tokens)}
            for run in runs.values():
                run()  # warm-up
            seconds = {k: sorted(run() for _ in range(repeats))[repeats // 2] for k, run in runs.items()}
            tok = {k: batch_size * new_tokens / s for k, s in seconds.items()}
            step_bytes = decode_bytes_per_step(ours, batch_size, context + new_tokens // 2)
            use = {k: tok[k] / batch_size * step_bytes / bandwidth for k in tok}
            decode_rows.append([label, batch_size, context, f"{tok['hf']:.1f}", f"{tok['ours']:.1f}",
                                ratio(tok["ours"], tok["hf"]), f"{100 * use['hf']:.0f} %", f"{100 * use['ours']:.0f} %",
                                f"{batch_size * bandwidth / step_bytes:.1f}"])
            print("decode", decode_rows[-1], flush=True)
        del hf, ours
    elapsed = time.perf_counter() - started
    command = "python scripts/benchmark_real_sizes.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = f"""# Real sizes: scratchformers vs transformers' own classes

Generated by `{command.strip()}` on {datetime.date.today().isoformat()} in {elapsed / 60:.1f} min; formulas in the
script's docstring.

- Machine: {cpu_name()}, {os.cpu_count()} logical CPUs, torch threads = {torch.get_num_threads()}; load average
  before/after {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}. Python {platform.python_version()}, torch
  {torch.__version__}, transformers {transformers.__version__}, scratchformers {git_commit()}.
- Ceilings measured in this run: matmul {flops / 1e9:.1f} GFLOP/s (fp32), memory read {bandwidth / 1e9:.1f} GB/s.
- Ratios: ours / HF for tokens/s, HF / ours for memory; > 1 means ours is better.

## Training step (forward + backward + AdamW), sdpa, float32

{table(["model", "batch × tokens", "HF tok/s", "ours tok/s", "ratio", "HF MFU", "ours MFU", "HF peak MiB", "ours peak MiB",
        "memory ratio"], train_rows) if train_rows else "(none fitted)"}

## Cached greedy decoding, {new_tokens} new tokens, dynamic cache, sdpa, float32

{table(["model", "batch", "prompt", "HF tok/s", "ours tok/s", "ratio", "HF of bandwidth limit",
        "ours of bandwidth limit", "limit tok/s"], decode_rows)}

{chr(10).join("- " + s for s in skipped)}

{kept_notes(args.out) if args.out is not None else ""}
"""
    return write_report(report, args.out)


if __name__ == "__main__":
    main()
