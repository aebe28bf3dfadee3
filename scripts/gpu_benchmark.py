"""bf16 training MFU and attention backends on an accelerator: GPT-2 small vs scratch_gpt, same weights, one run.

Issue 7 asks, where a GPU is lent, for bf16 training MFU of gpt2-small (target ≥ 45 %) and flash attention through
the attention interface. This script measures, interleaved (HF, ours, HF, ours, …) with medians:

- training step tokens/s under `torch.autocast(bfloat16)` (forward + backward + AdamW, fused on CUDA), and MFU =
  tokens/s × (6·N + 12·L·T·C) / the bf16 matmul FLOP/s this device reaches in the same run;
- for each attention backend available here: "sdpa" (flash/memory-efficient kernels on CUDA), "eager", and
  "flash_attention_2" when the `flash_attn` package is installed;
- cached greedy decoding tokens/s with our default cache and with a static cache compiled by generate();
- issue 14's parallelism claim on the accelerator: float32 training tokens/s against sequence length for the LSTM
  seq2seq, LSTM + Bahdanau and the Transformer encoder-decoder at equal parameters (scripts/parallelism.py's models,
  formulas and interleaved timing; longer lengths than its CPU run).

    python scripts/gpu_benchmark.py                        # GPU: gpt2-small, writes benchmarks/RESULTS-gpu.md
    python scripts/gpu_benchmark.py --device cpu --quick   # the same code on a tiny model on CPU (a smoke test)
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch
import transformers

from scratchformers.convert import from_hf
from scratchformers.measure import ROOT, git_commit, table, training_flops_per_token, write_report
from scratchformers.parallelism import FULL_SETTINGS, MODELS, QUICK_SETTINGS, build_models, measure

SIZES = {
    "gpt2-small": dict(vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_positions=1024),
    "quick": dict(vocab_size=256, n_embd=64, n_layer=2, n_head=4, n_positions=128),
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def interleaved_on(fns: dict, device: torch.device, repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds of each callable, run in turn, with the device synchronised around each call."""
    for _ in range(warmup):
        for fn in fns.values():
            timed(fn, device)
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn, device))
    return {name: statistics.median(ts) for name, ts in times.items()}


def bf16_matmul_flops(device: torch.device, n: int, repeats: int) -> float:
    """FLOP/s of an n×n bf16 matmul (2n³ FLOPs) on `device`: the ceiling MFU is measured against."""
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    return 2 * n**3 / interleaved_on({"mm": lambda: a @ b}, device, repeats)["mm"]


def available_attention(device: torch.device) -> list[str]:
    """The backends worth measuring here: sdpa and eager everywhere; flash_attention_2 on CUDA with flash_attn."""
    found = ["sdpa", "eager"]
    if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        found.append("flash_attention_2")
    return found


def make_pair(size: dict, attn: str, device: torch.device):
    torch.manual_seed(0)
    config = transformers.GPT2Config(**size, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    hf = transformers.GPT2LMHeadModel._from_config(config, attn_implementation=attn)
    return hf.to(device), from_hf(hf, attn_implementation=attn).to(device)


def bf16_train_step(model, batch: dict, device: torch.device):
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()

    return step


def bench_training(size, attn, device, batch, length, repeats, peak) -> dict:
    hf, ours = make_pair(size, attn, device)
    ids = torch.randint(0, size["vocab_size"], (batch, length), device=device)
    data = {"input_ids": ids, "labels": ids}
    t = interleaved_on({"hf": bf16_train_step(hf, data, device), "ours": bf16_train_step(ours, data, device)},
                       device, repeats)
    flops = training_flops_per_token(hf, hf.config, length)
    return {k: {"tok_s": batch * length / t[k], "mfu": batch * length / t[k] * flops / peak} for k in t}


def bench_generate(size, device, context: int, new_tokens: int, repeats: int) -> dict:
    """generate() tokens/s (prefill included): ours with its default cache, ours and HF with a compiled static cache."""
    hf, ours = make_pair(size, "sdpa", device)
    hf.eval(), ours.eval()
    ids = torch.randint(0, size["vocab_size"], (1, context), device=device)
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    compiled = dict(cache_implementation="static", **kwargs)
    runs = {
        "hf dynamic": lambda: hf.generate(ids, **kwargs),
        "ours default": lambda: ours.generate(ids, **kwargs),
        "hf static+compile": lambda: hf.generate(ids, **compiled),
        "ours static+compile": lambda: ours.generate(ids, **compiled),
    }
    if device.type != "cuda":  # generate() compiles the static-cache step by itself on CUDA only
        runs = {k: v for k, v in runs.items() if "compile" not in k}
    with torch.no_grad():
        t = interleaved_on(runs, device, repeats)
    return {k: new_tokens / v for k, v in t.items()}


def bench_parallelism(device: torch.device, lengths: list[int], batch: int, repeats: int, quick: bool) -> list[list[str]]:
    """Training tokens/s (float32, forward + backward + AdamW) against S = T = length for the three seq2seq models of
    scripts/parallelism.py, interleaved, medians; rows: length, each model's tok/s, each model's sequential steps."""
    s = QUICK_SETTINGS if quick else FULL_SETTINGS
    built = build_models(MODELS, s["d_model"], s["layers"], s["vocab_size"], max(lengths))
    models = {name: m.to(device) for name, m in built.items()}
    rows = measure(models, lengths, [torch.get_num_threads()], batch, repeats, 1, s["vocab_size"], device)
    by = {(r["model"], r["length"]): r for r in rows}
    return [[str(n)] + [f"{by[(m, n)]['tokens_per_second']['median']:.0f}" for m in MODELS]
            + [str(by[(m, n)]["sequential_steps"]) for m in MODELS] for n in lengths]


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="a tiny model and few repeats (a smoke test)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="Markdown file (default: benchmarks/RESULTS-gpu.md "
                                                                "on CUDA, print only otherwise)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    size = SIZES["quick" if args.quick else "gpt2-small"]
    batch, length = (2, 32) if args.quick else (8, 1024)
    repeats = args.repeats or (2 if args.quick else 10)
    out = args.out if args.out is not None else (ROOT / "benchmarks" / "RESULTS-gpu.md" if device.type == "cuda"
                                                 else None)
    peak = bf16_matmul_flops(device, 256 if args.quick else 8192, 3 if args.quick else 20)
    train_rows = []
    for attn in available_attention(device):
        r = bench_training(size, attn, device, batch, length, repeats, peak)
        train_rows.append([attn, f"{r['hf']['tok_s']:.0f}", f"{r['ours']['tok_s']:.0f}",
                           f"{r['ours']['tok_s'] / r['hf']['tok_s']:.2f}×", f"{100 * r['hf']['mfu']:.3g} %",
                           f"{100 * r['ours']['mfu']:.3g} %"])
        print("train", train_rows[-1], flush=True)
    contexts = [16] if args.quick else [128, 1024]
    decode_rows = []
    for context in contexts:
        g = bench_generate(size, device, context, 8 if args.quick else 128, repeats)
        decode_rows.append([str(context)] + [f"{g.get(k, float('nan')):.1f}" for k in
                                             ("hf dynamic", "ours default", "hf static+compile", "ours static+compile")])
        print("generate", decode_rows[-1], flush=True)
    seq_lengths = [8, 16] if args.quick else [64, 128, 256, 512, 1024]
    seq_batch = 2 if args.quick else 32
    parallel_rows = bench_parallelism(device, seq_lengths, seq_batch, repeats, args.quick)
    for row in parallel_rows:
        print("seq2seq", row, flush=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    report = f"""# bf16 training and decoding on {name}: GPT-2 vs scratch_gpt

Generated by `python scripts/gpu_benchmark.py {' '.join(argv if argv is not None else sys.argv[1:])}` on
{datetime.date.today().isoformat()}; torch {torch.__version__}, transformers {transformers.__version__}, commit
{git_commit()}. Size: {size}, batch {batch} × {length} tokens, dropout 0, median of {repeats} interleaved repeats.
bf16 matmul ceiling measured in this run: {peak / 1e12:.2f} TFLOP/s. Target: ours ≥ 45 % MFU.

## Training step under bf16 autocast (forward + backward + AdamW)

{table(["attention", "HF tok/s", "ours tok/s", "ours / HF", "HF MFU", "ours MFU"], train_rows)}

## generate() tokens/s, batch 1, greedy (prefill included)

{table(["context", "HF dynamic", "ours default (GrowingCache)", "HF static + compile", "ours static + compile"],
       decode_rows)}

## Seq2seq training tokens/s against sequence length (float32, batch {seq_batch}, S = T)

The parallelism claim of issue 14 on this device (models, formulas and timing of `scripts/parallelism.py`, equal
parameters ±20 %; tokens/s counts source + target). Sequential steps per sequence: L_enc·S + L_dec·T for the
recurrent models, N_enc + N_dec for the Transformer.

{table(["S = T", *(f"{m} tok/s" for m in MODELS), *(f"{m} seq. steps" for m in MODELS)], parallel_rows)}
"""
    return write_report(report, out)


if __name__ == "__main__":
    main()
