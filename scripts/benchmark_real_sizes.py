"""Our decoder against transformers' own class at real LLM sizes, in one run: training and decoding, with the
machine's matmul and memory-bandwidth ceilings measured in the same run.

Shapes: SmolLM2-135M (its real weights when the GGUF is cached: scripts/fetch_smollm2_gguf.py; else random),
Qwen2.5-0.5B and Llama-3.2-1B (random weights in their published shapes; Llama-3.2's rope scaling left out, it does
not change the cost). Each pair holds the same weights (ours made with `scratchformers.convert.from_hf`) and gets the
same inputs; float32.

- Training (forward + backward + fused AdamW, the Trainer's default optimizer; sdpa; --train-lengths: T for batch 1,
  BxT for batch B): tokens/s, MFU and the peak of live tensors (`measure.allocated_peak_mib`, one step each after the
  timed ones, so the AdamW moments are included; ours uses its chunked loss and lean backward, HF its full logits and
  autograd). When both models with their AdamW state fit in half the available memory they are timed interleaved
  (HF, ours, HF, ours, …), median of --repeats; otherwise each side runs alone in a fresh process (this script with
  --train-child), HF's first, at --large-train-lengths (median of --large-repeats steps after a warm-up), each length
  only if `training_bytes` of the larger side (HF's: full logits) fits in 90 % of the available memory.
- Decoding (greedy `generate()`, --new-tokens, timed per step by `measure.StepClock`: steps 2…N, no prefill, no first
  step, no compilation): --decode rows MODE:BxP, batch B after a P-token prompt, MODE one of
  sdpa (dynamic cache, sdpa), eager (dynamic cache, the written-out attention), compiled (sdpa, static cache and
  the step compiled by inductor: `fast_decoding.generate_settings(static_cache=True, compile=True)`), column-major
  (sdpa, dynamic cache, `fast_decoding.column_major_weights`); each mode on both sides.

Formulas (one for every row): MFU = tokens/s × FLOPs per token / matmul ceiling, FLOPs per token = 6·N + 12·L·T·C
(`measure.training_flops_per_token`); bandwidth utilisation = (tokens/s ÷ B) × bytes read per step / bandwidth
ceiling, bytes per step = every weight once (a tied matrix once) + B × the KV cache, 2·L·T·H_kv·D·4 at T = P + N/2
(`measure.decode_bytes_per_step`); matmul ceiling = fp32 1024² matmul FLOP/s, bandwidth ceiling = the read rate of a
512 MB tensor (`measure.matmul_flops`, `measure.memory_bandwidth`), both with the run's thread count.

    python scripts/benchmark_real_sizes.py --threads 2 --out benchmarks/REAL_SIZES.md     # ≈ 45 min on 2 cores
    python scripts/benchmark_real_sizes.py --quick                                       # smoke test, tiny shapes
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
import transformers

from scratchformers.convert import from_hf
from scratchformers.fast_decoding import column_major_weights, generate_settings
from scratchformers.measure import (
    allocated_peak_mib,
    cpu_name,
    decode_bytes_per_step,
    generate_decode_fn,
    git_commit,
    interleaved,
    kept_notes,
    matmul_flops,
    memory_bandwidth,
    ratio,
    table,
    train_step_fn,
    training_flops_per_token,
    write_report,
)

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


def real_weights(name: str, quick: bool) -> bool:
    return name == "SmolLM2-135M" and SMOLLM2_GGUF.is_file() and not quick


def shape_only(name: str, quick: bool) -> torch.nn.Module:
    """HF's model of this shape on the meta device (no memory): its config, parameter count and Linear layers."""
    hf_class, config_class, shape = SHAPES[name]
    with torch.device("meta"):
        return hf_class._from_config(config_class(**(QUICK_SHAPE if quick else shape)))


def make_pair(name: str, quick: bool) -> tuple[torch.nn.Module, torch.nn.Module, str]:
    """(HF model, ours with the same weights, where the weights came from), both in eval mode, sdpa."""
    hf_class, config_class, shape = SHAPES[name]
    torch.manual_seed(0)
    if real_weights(name, quick):
        hf = hf_class.from_pretrained(SMOLLM2_GGUF.parent, gguf_file=SMOLLM2_GGUF.name, attn_implementation="sdpa",
                                      dtype=torch.float32)
        source = "real weights (GGUF Q4_1, de-quantized)"
    else:
        hf = hf_class._from_config(config_class(**(QUICK_SHAPE if quick else shape)), attn_implementation="sdpa")
        source = "random weights"
    return hf.eval(), from_hf(hf).eval(), source


def available_bytes() -> int:
    """Memory the system can hand out now without swapping: /proc/meminfo's MemAvailable (free pages plus the page
    cache it can drop), else the free pages."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def training_bytes(config, batch_size: int, length: int, parameters: int) -> int:
    """A generous estimate of one training step's peak, HF's side (the larger: full logits): 16 bytes a parameter
    (weights, gradients, AdamW's two moments) + the float32 logits three times (logits, log-softmax, their gradient)
    + per layer and token 12·C + 5·d_ff saved floats (the decoder layer's activations under autograd)."""
    tokens = batch_size * length
    activations = config.num_hidden_layers * tokens * (12 * config.hidden_size + 5 * config.intermediate_size)
    return 16 * parameters + 4 * (3 * tokens * config.vocab_size + activations)


def parse_lengths(text: str) -> list[tuple[int, int]]:
    """"512,4x1024" → [(1, 512), (4, 1024)]; ValueError on anything else."""
    return [tuple(int(n) for n in ("1x" + item if "x" not in item else item).split("x")) for item in text.split(",")]


def lm_batch(vocab_size: int, batch_size: int, length: int) -> dict:
    """Random ids (batch_size, length) past the special tokens, labelled with themselves (the model shifts them)."""
    ids = torch.randint(3, vocab_size, (batch_size, length))
    return {"input_ids": ids, "labels": ids.clone()}


def train_pair_rows(label, hf, ours, lengths, repeats, flops) -> list[list[str]]:
    """Both models in this process, timed interleaved."""
    rows = []
    for batch_size, length in lengths:
        batch = lm_batch(hf.config.vocab_size, batch_size, length)
        steps = {"hf": train_step_fn(hf, batch), "ours": train_step_fn(ours, batch)}
        t = interleaved(steps, repeats)
        peak = {k: allocated_peak_mib(step) for k, step in steps.items()}
        rows.append(train_row(label, hf.config, hf, batch_size, length,
                              {k: batch_size * length / t[k] for k in t}, peak, flops, "interleaved"))
        print("train", rows[-1], flush=True)
    hf.eval(), ours.eval()
    return rows


def train_row(label, config, model, batch_size, length, tok, peak, flops, how) -> list[str]:
    per_token = training_flops_per_token(model, config, length)
    return [label, f"{batch_size} × {length:,}", how, f"{tok['hf']:.0f}", f"{tok['ours']:.0f}",
            ratio(tok["ours"], tok["hf"]), f"{100 * tok['hf'] * per_token / flops:.1f} %",
            f"{100 * tok['ours'] * per_token / flops:.1f} %", f"{peak['hf']:,.0f}", f"{peak['ours']:,.0f}",
            ratio(peak["ours"], peak["hf"], higher_is_better=False, target=MEMORY_TARGET)]


def train_child(spec: str, threads: int, repeats: int, quick: bool) -> None:
    """--train-child NAME:SIDE:LENGTHS: one side's training rows alone in this process; prints one JSON line
    {"BxT": [tokens/s, peak MiB]}."""
    name, side, lengths = spec.split(":")
    torch.set_num_threads(threads)
    hf, ours, _ = make_pair(name, quick)
    model = hf if side == "hf" else ours
    del hf, ours
    gc.collect()
    results = {}
    for batch_size, length in parse_lengths(lengths):
        step = train_step_fn(model, lm_batch(model.config.vocab_size, batch_size, length))
        seconds = interleaved({side: step}, repeats)[side]  # one warm-up step, the median of the timed ones
        results[f"{batch_size}x{length}"] = [batch_size * length / seconds, allocated_peak_mib(step)]
        del step
        gc.collect()
    print(json.dumps(results), flush=True)


def train_alone_rows(name, label, hf, lengths, repeats, flops, threads, quick, skipped) -> list[list[str]]:
    """Each side in a fresh process of its own (HF's first), at the lengths whose estimate fits."""
    parameters = sum(p.numel() for p in hf.parameters())
    fitting = []
    for batch_size, length in lengths:
        need = training_bytes(hf.config, batch_size, length, parameters)
        if need < 0.9 * available_bytes():
            fitting.append((batch_size, length))
        else:
            skipped.append(f"{label}: training at {batch_size} × {length:,} not measured (needs about "
                           f"{need / 2**30:.1f} GiB: 16 bytes × {parameters / 1e6:.0f} M parameters + HF's logits and "
                           f"activations; {available_bytes() / 2**30:.1f} GiB available)")
    if not fitting:
        return []
    spec = ",".join(f"{b}x{t}" for b, t in fitting)
    results = {}
    for side in ("hf", "ours"):
        run = subprocess.run([sys.executable, __file__, "--train-child", f"{name}:{side}:{spec}",
                              "--threads", str(threads), "--repeats", str(repeats)] + ["--quick"] * quick,
                             capture_output=True, text=True)
        if run.returncode != 0:
            skipped.append(f"{label}: the {side} training process failed (exit {run.returncode}): "
                           f"{(run.stderr.strip().splitlines() or ['killed'])[-1]}")
            return []
        results[side] = json.loads(run.stdout.strip().splitlines()[-1])
    rows = []
    for batch_size, length in fitting:
        key = f"{batch_size}x{length}"
        tok = {side: results[side][key][0] for side in results}
        peak = {side: results[side][key][1] for side in results}
        rows.append(train_row(label, hf.config, hf, batch_size, length, tok, peak, flops, "alone"))
        print("train", rows[-1], flush=True)
    return rows


DECODE_MODES = {  # mode: (attention implementation, static cache + compiled step, column-major weights)
    "sdpa": ("sdpa", False, False),
    "eager": ("eager", False, False),
    "compiled": ("sdpa", True, False),
    "column-major": ("sdpa", False, True),
}


def parse_decode(text: str) -> list[tuple[str, int, int]]:
    """"sdpa:1x16,compiled:1x16" → [("sdpa", 1, 16), ("compiled", 1, 16)]; "" → no decoding rows; ValueError naming
    the modes."""
    rows = []
    for item in filter(None, text.split(",")):
        mode, _, shape = item.partition(":")
        if mode not in DECODE_MODES:
            raise ValueError(f"unknown decoding mode {mode!r}; choose from {', '.join(DECODE_MODES)}")
        batch_size, prompt = (int(n) for n in shape.split("x"))
        rows.append((mode, batch_size, prompt))
    return rows


def decode_rows(label, hf, ours, plan, new_tokens, repeats, bandwidth, quick, backend) -> list[list[str]]:
    rows = []
    for mode, batch_size, context in plan:
        context = min(context, 64) if quick else context
        attention, compiled, column_major = DECODE_MODES[mode]
        settings = generate_settings(static_cache=compiled, compile=compiled, backend=backend)
        for model in (hf, ours):
            model.set_attn_implementation(attention)
            column_major_weights(model, enable=column_major)
        ids = torch.randint(3, hf.config.vocab_size, (batch_size, context))
        runs = {"hf": generate_decode_fn(hf, ids, new_tokens, **settings),
                "ours": generate_decode_fn(ours, ids, new_tokens, **settings)}
        for run in runs.values():
            run()  # warm-up (and compilation)
        seconds = {k: sorted(run() for _ in range(repeats))[repeats // 2] for k, run in runs.items()}
        tok = {k: batch_size / s for k, s in seconds.items()}
        step_bytes = decode_bytes_per_step(ours, batch_size, context + new_tokens // 2)
        use = {k: tok[k] / batch_size * step_bytes / bandwidth for k in tok}
        rows.append([label, mode, batch_size, context, f"{tok['hf']:.1f}", f"{tok['ours']:.1f}",
                     ratio(tok["ours"], tok["hf"]), f"{100 * use['hf']:.0f} %", f"{100 * use['ours']:.0f} %",
                     f"{batch_size * bandwidth / step_bytes:.1f}"])
        print("decode", rows[-1], flush=True)
        if mode == "compiled":
            torch._dynamo.reset()  # the graphs hold this shape's static caches
    for model in (hf, ours):
        model.set_attn_implementation("sdpa")
        column_major_weights(model, enable=False)
    return rows


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, one repeat: a smoke test")
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated, of {', '.join(SHAPES)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-lengths", default="512,2048,4x1024",
                        help="comma-separated sequence lengths, each T (batch 1) or BxT (batch B)")
    parser.add_argument("--large-train-lengths", default="512,1024",
                        help="the same, for shapes whose two models do not fit at once (each side alone)")
    parser.add_argument("--large-repeats", type=int, default=1,
                        help="timed steps (after one warm-up) per length for those shapes (a step takes 30-100 s)")
    parser.add_argument("--train-alone", action="store_true",
                        help="train each side in a process of its own for every shape (default: only where the two "
                             "models do not fit at once)")
    parser.add_argument("--decode", default="sdpa:1x16,sdpa:8x16,sdpa:1x1024,eager:1x16,compiled:1x16,"
                                            "column-major:1x16,column-major:1x1024",
                        help=f"comma-separated MODE:BxP decoding rows, MODE of {', '.join(DECODE_MODES)} "
                             "(empty: none)")
    parser.add_argument("--compile-backend", default="inductor", choices=("inductor", "aot_eager", "eager"),
                        help="torch.compile's backend in the compiled mode (eager: dynamo's graph without code "
                             "generation, for smoke tests)")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to write (default: print only)")
    parser.add_argument("--train-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.train_child:
        return train_child(args.train_child, args.threads, args.repeats, args.quick)
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        parser.error(f"unknown shape(s) {', '.join(unknown)}; choose from {', '.join(SHAPES)}")
    try:
        lengths, large_lengths = parse_lengths(args.train_lengths), parse_lengths(args.large_train_lengths)
    except ValueError:
        parser.error("--train-lengths and --large-train-lengths take T or BxT items (e.g. 512,4x1024), got "
                     f"{args.train_lengths!r} and {args.large_train_lengths!r}")
    try:
        plan = parse_decode(args.decode)
    except ValueError as error:
        parser.error(f"--decode takes MODE:BxP items (e.g. sdpa:1x16): {error}")
    if args.new_tokens < 2:
        parser.error(f"--new-tokens must be at least 2 (steps 2…N are timed), got {args.new_tokens}")
    repeats = 1 if args.quick else args.repeats
    new_tokens = 4 if args.quick else args.new_tokens
    if args.quick:
        lengths = [(1, 32)]
    torch.set_num_threads(args.threads)
    load_before, started, commit = os.getloadavg(), time.perf_counter(), git_commit()  # the code measured
    flops = matmul_flops(256 if args.quick else 1024, repeats=3 if args.quick else 10)
    bandwidth = memory_bandwidth(64 if args.quick else 512, repeats=3 if args.quick else 5)
    print(f"ceilings: {flops / 1e9:.1f} GFLOP/s, {bandwidth / 1e9:.1f} GB/s", flush=True)
    train_rows, decoding, skipped = [], [], []
    labels, together = {}, {}
    for name in shapes:  # first every shape trained alone, while this process holds no model (their memory)
        shape = shape_only(name, args.quick)
        params = sum(p.numel() for p in shape.parameters())
        source = "real weights (GGUF Q4_1, de-quantized)" if real_weights(name, args.quick) else "random weights"
        labels[name] = f"{name} ({params / 1e6:.0f} M, {source})"
        together[name] = 2 * 16 * params < available_bytes() / 2 and not args.train_alone
        if not together[name]:
            alone_lengths = lengths if args.quick or args.train_alone else large_lengths
            alone_repeats = repeats if args.quick or args.train_alone else args.large_repeats
            train_rows += train_alone_rows(name, labels[name], shape, alone_lengths, alone_repeats, flops,
                                           args.threads, args.quick, skipped)
    for name in shapes:
        hf, ours, _ = make_pair(name, args.quick)
        if together[name]:
            train_rows += train_pair_rows(labels[name], hf, ours, lengths, repeats, flops)
        decoding += decode_rows(labels[name], hf, ours, plan, new_tokens, repeats, bandwidth, args.quick,
                                args.compile_backend)
        del hf, ours
        gc.collect()
    elapsed = time.perf_counter() - started
    command = "python scripts/benchmark_real_sizes.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = f"""# Real sizes: scratchformers vs transformers' own classes

Generated by `{command.strip()}` on {datetime.date.today().isoformat()} in {elapsed / 60:.1f} min; formulas in the
script's docstring.

- Machine: {cpu_name()}, {os.cpu_count()} logical CPUs, torch threads = {torch.get_num_threads()}; load average
  before/after {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}. Python {platform.python_version()}, torch
  {torch.__version__}, transformers {transformers.__version__}, scratchformers {commit}.
- Ceilings measured in this run: matmul {flops / 1e9:.1f} GFLOP/s (fp32), memory read {bandwidth / 1e9:.1f} GB/s.
- Ratios: ours / HF for tokens/s, HF / ours for memory; > 1 means ours is better.

## Training step (forward + backward + fused AdamW), sdpa, float32

"timed": interleaved = both models in one process, steps in turn; alone = each side in a process of its own.

{table(["model", "batch × tokens", "timed", "HF tok/s", "ours tok/s", "ratio", "HF MFU", "ours MFU", "HF peak MiB",
        "ours peak MiB", "memory ratio"], train_rows) if train_rows else "(none fitted)"}

## Greedy `generate()`, {new_tokens} new tokens, float32 (per step after the first)

Modes (each on both sides): sdpa = dynamic cache, sdpa attention; eager = dynamic cache, the written-out attention;
compiled = static cache, sdpa, each step one inductor graph (`generate_settings(static_cache=True, compile=True)`);
column-major = sdpa, dynamic cache, every Linear weight stored transposed (`column_major_weights`).

{table(["model", "mode", "batch", "prompt", "HF tok/s", "ours tok/s", "ratio", "HF of bandwidth limit",
        "ours of bandwidth limit", "limit tok/s"], decoding) if decoding else "(none asked for)"}

{chr(10).join("- " + s for s in skipped)}

{kept_notes(args.out) if args.out is not None else ""}
"""
    return write_report(report, args.out)


if __name__ == "__main__":
    main()
