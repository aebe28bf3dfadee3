"""Benchmark our models against transformers' native implementation of the same architecture and size.

Both models hold the same weights (ours is made with `scratchformers.convert.from_hf`), get the same inputs and are
timed in one run, interleaved (HF, ours, HF, ours, …), and the median of the repeats is reported:

- training step tokens/s (forward + backward + AdamW step) and model FLOPs utilisation (MFU) against the matmul
  FLOP/s this machine reaches in the same run — for GPT also on a fine-tuning batch whose prompt half is unscored;
- cached greedy decoding tokens/s at several context lengths (the decode steps after the prefill);
- peak memory of training steps (growth of the peak resident set, each model in its own subprocess);
- the same at a real vocabulary (49,152, SmolLM2's) and 1,024+ tokens, ours with the full logits and with the chunked
  loss (`scratchformers.losses.chunked_cross_entropy`) against HF (`--only-loss-memory` runs just this table);
- how forward time grows with sequence length 128…2048;
each for the "eager" and "sdpa" attention backends where it applies.

    python scripts/benchmark.py                 # full run (≈ 10 min on 2 CPU cores) → benchmarks/RESULTS.md
    python scripts/benchmark.py --quick         # smoke test (tiny sizes, seconds), prints the tables
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import transformers

from scratchformers.convert import from_hf, supported_conversions
from scratchformers.measure import (  # noqa: F401  (the memory children read these through this module)
    TARGET,
    allocated_peak_mib,
    cache_bytes,
    cpu_name,
    git_commit,
    greedy_decode_fn,
    interleaved,
    kept_notes,
    matmul_flops,
    ratio,
    table,
    train_step_fn,
    training_flops_per_token,
    write_report,
)

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------------ model specs


@dataclass
class Family:
    """One architecture pair: how to build the HF model at a size, and how to make a training batch for it."""

    name: str
    hf_class: type
    make_config: Callable[[dict], transformers.PreTrainedConfig]
    make_batch: Callable[[transformers.PreTrainedConfig, int, int], dict]
    generates: bool
    sizes: dict = field(default_factory=dict)  # "quick" | "full" -> shape kwargs
    seq2seq: bool = False  # encoder-decoder: source ids to the encoder, the decoder reads (and predicts) the target
    prompt_masked: bool = False  # also time a fine-tuning batch whose prompt half is unscored


def _gpt2_config(s: dict) -> transformers.GPT2Config:
    return transformers.GPT2Config(vocab_size=s["vocab"], n_embd=s["width"], n_layer=s["layers"], n_head=s["heads"],
                                   n_inner=4 * s["width"], n_positions=s["max_len"], bos_token_id=1, eos_token_id=2,
                                   pad_token_id=0)


def _bert_config(s: dict) -> transformers.BertConfig:
    return transformers.BertConfig(vocab_size=s["vocab"], hidden_size=s["width"], num_hidden_layers=s["layers"],
                                   num_attention_heads=s["heads"], intermediate_size=4 * s["width"],
                                   max_position_embeddings=s["max_len"])


def _bart_config(s: dict) -> transformers.BartConfig:
    """BART at the shared size: `layers` encoder and `layers` decoder layers (twice the layers of the others)."""
    return transformers.BartConfig(vocab_size=s["vocab"], d_model=s["width"], encoder_layers=s["layers"],
                                   decoder_layers=s["layers"], encoder_attention_heads=s["heads"],
                                   decoder_attention_heads=s["heads"], encoder_ffn_dim=4 * s["width"],
                                   decoder_ffn_dim=4 * s["width"], max_position_embeddings=s["max_len"])


def _llama_config(s: dict, num_key_value_heads: int | None = None) -> transformers.LlamaConfig:
    """Llama at the shared size: RMSNorm, SwiGLU with intermediate ≈ 8/3 · width (rounded to 64: the parameter
    count of a 4·width GELU MLP), rotary positions, grouped-query attention with H/2 key/value heads, no biases."""
    return transformers.LlamaConfig(
        vocab_size=s["vocab"], hidden_size=s["width"], num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
        num_key_value_heads=num_key_value_heads or max(1, s["heads"] // 2),
        intermediate_size=64 * round(8 * s["width"] / 3 / 64), max_position_embeddings=s["max_len"],
        bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)


def _seq2seq_batch(config, batch: int, length: int) -> dict:
    """`length` source and `length` target tokens; labels are shifted into decoder inputs by both models."""
    ids = torch.randint(3, config.vocab_size, (batch, length))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "labels": torch.randint(3, config.vocab_size, (batch, length))}


def _clm_batch(config, batch: int, length: int) -> dict:
    ids = torch.randint(3, config.vocab_size, (batch, length))
    return {"input_ids": ids, "labels": ids.clone()}


def _prompt_masked_batch(config, batch: int, length: int) -> dict:
    """Fine-tuning on (prompt, answer) pairs: the first half of each row is the prompt, its labels −100."""
    ids = torch.randint(3, config.vocab_size, (batch, length))
    labels = ids.clone()
    labels[:, : length // 2] = -100
    return {"input_ids": ids, "labels": labels}


def _mlm_batch(config, batch: int, length: int) -> dict:
    ids = torch.randint(3, config.vocab_size, (batch, length))
    labels = torch.full_like(ids, -100)
    chosen = torch.rand(ids.shape) < 0.15  # BERT's 15 % of positions are predicted
    labels[chosen] = ids[chosen]
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


SIZES = {
    "quick": dict(vocab=512, width=64, layers=2, heads=4, max_len=256),
    "full": dict(vocab=8192, width=256, layers=4, heads=4, max_len=2048),
}
FAMILIES = [
    Family("GPT-2 ↔ scratch_gpt", transformers.GPT2LMHeadModel, _gpt2_config, _clm_batch, True, prompt_masked=True),
    Family("Llama ↔ scratch_gpt (llama-style)", transformers.LlamaForCausalLM, _llama_config, _clm_batch, True),
    Family("BERT ↔ scratch_bert", transformers.BertForMaskedLM, _bert_config, _mlm_batch, False),
    Family("BART ↔ scratch_transformer", transformers.BartForConditionalGeneration, _bart_config, _seq2seq_batch, True,
           seq2seq=True),
]


# ------------------------------------------------------------------------------------------------------ measuring


def make_pair(family: Family, size: dict, attn: str):
    torch.manual_seed(0)
    hf = family.hf_class._from_config(family.make_config(size), attn_implementation=attn)
    return hf, from_hf(hf)


def bench_training(family, size, attn, batch, length, repeats, flops) -> dict:
    hf, ours = make_pair(family, size, attn)
    data = family.make_batch(hf.config, batch, length)
    t = interleaved({"hf": train_step_fn(hf, data), "ours": train_step_fn(ours, data)}, repeats)
    per_token = {"hf": training_flops_per_token(hf, hf.config, length),
                 "ours": training_flops_per_token(ours, hf.config, length)}
    tokens = batch * length
    return {k: {"tok_s": tokens / t[k], "mfu": tokens / t[k] * per_token[k] / flops} for k in t}


def bench_decoding(family, size, attn, context: int, new_tokens: int, repeats: int) -> dict:
    hf, ours = make_pair(family, size, attn)
    hf.eval(), ours.eval()
    ids = torch.randint(3, hf.config.vocab_size, (1, context))
    runs = {"hf": greedy_decode_fn(hf, ids, new_tokens), "ours": greedy_decode_fn(ours, ids, new_tokens)}
    for run in runs.values():
        run()  # warm-up
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for k, run in runs.items():
            times[k].append(run())
    return {k: new_tokens / statistics.median(ts) for k, ts in times.items()}


def bench_scaling(family, size, attn, length: int, repeats: int) -> dict:
    hf, ours = make_pair(family, size, attn)
    ids = torch.randint(3, hf.config.vocab_size, (1, length))
    hf.eval(), ours.eval()

    def fwd(model):
        def run():
            with torch.no_grad():
                model(input_ids=ids, decoder_input_ids=ids) if family.seq2seq else model(input_ids=ids)
        return run

    t = interleaved({"hf": fwd(hf), "ours": fwd(ours)}, repeats)
    return {k: t[k] * 1e3 for k in t}  # ms per forward


def bench_kv_cache(size: dict, context: int) -> list[dict]:
    """The KV cache after a prefill of `context` tokens, for num_key_value_heads = H, H/2, …, 1 (Llama, HF and ours
    with the same weights). Grouped-query attention should shrink it by exactly H_kv / H; a RuntimeError says if not."""
    H = size["heads"]
    results = []
    kv_heads = sorted({max(1, H // 2**i) for i in range(H.bit_length())}, reverse=True)  # H, H/2, …, 1
    for kv in kv_heads:
        torch.manual_seed(0)
        hf = transformers.LlamaForCausalLM._from_config(_llama_config(size, kv)).eval()
        ours = from_hf(hf).eval()
        ids = torch.randint(3, size["vocab"], (1, context))
        with torch.no_grad():
            sizes = {}
            for name, model in (("hf", hf), ("ours", ours)):
                out = model(input_ids=ids, use_cache=True)
                sizes[name] = cache_bytes(out.past_key_values if getattr(out, "past_key_values", None) is not None
                                          else out.cache)
        # 2 (K and V) · layers · tokens · H_kv · D · 4 bytes (fp32)
        expected = 2 * size["layers"] * context * kv * (size["width"] // H) * 4
        results.append({"kv_heads": kv, "hf": sizes["hf"], "ours": sizes["ours"], "expected": expected})
    full = results[0]
    for r in results:
        for side in ("hf", "ours"):
            measured = r[side] / full[side]
            if measured != r["kv_heads"] / H:
                raise RuntimeError(f"{side} KV cache with {r['kv_heads']} of {H} key/value heads is {measured:.4f} "
                                   f"of the full one, expected {r['kv_heads'] / H}")
        r["ratio"] = r["ours"] / full["ours"]
    return results


MEMORY_CHILD = """
import gc, json, sys, torch
sys.path.insert(0, {scripts!r})
import benchmark as b
torch.set_num_threads({threads})
torch.manual_seed(0)
family = b.FAMILIES[{family}]
hf, ours = b.make_pair(family, {size!r}, {attn!r})
model = hf if {which!r} == "hf" else ours
del hf, ours
gc.collect()
data = family.make_batch(model.config, {batch}, {length})
step = b.train_step_fn(model, data)
baseline = b.rss_mib("VmRSS")
b.reset_peak_rss()
for _ in range(2):
    step()
print(json.dumps({{"peak_growth_mib": b.rss_mib("VmHWM") - baseline}}))
"""


def rss_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MiB, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def reset_peak_rss() -> None:
    """Linux: writing 5 to /proc/self/clear_refs resets VmHWM to the current RSS, so the peak of what follows is
    measured rather than the peak of building two models."""
    Path("/proc/self/clear_refs").write_text("5")


def bench_memory(family_index: int, size: dict, attn: str, batch: int, length: int) -> dict:
    """Peak resident set during two training steps minus the resident set just before them (weights built before;
    grads, AdamW state and activations measured), each model alone in a fresh process. Linux only."""
    result = {}
    for which in ("hf", "ours"):
        code = MEMORY_CHILD.format(scripts=str(ROOT / "scripts"), family=family_index, size=size, attn=attn,
                                   which=which, batch=batch, length=length, threads=torch.get_num_threads())
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        result[which] = json.loads(out.stdout.strip().splitlines()[-1])["peak_growth_mib"]
    return result


REAL_VOCAB = 49152  # SmolLM2's vocabulary: where the output layer and its loss dominate a small LLM's training memory
LOSS_MEMORY_CHILD = """
import gc, json, sys, torch
sys.path.insert(0, {scripts!r})
import benchmark as b
torch.set_num_threads({threads})
torch.manual_seed(0)
family = b.FAMILIES[{family}]
hf, ours = b.make_pair(family, {size!r}, "sdpa")
model = hf if {which!r} == "hf" else ours
del hf, ours
gc.collect()
data = family.make_batch(model.config, {batch}, {length})
if {which!r} != "hf":  # ours: the logits of the whole batch (today's path) or the chunked loss without them
    data["skip_logits"] = {which!r} == "chunked"
step = b.train_step_fn(model, data)
baseline = b.rss_mib("VmRSS")
b.reset_peak_rss()
for _ in range(2):
    step()
growth = b.rss_mib("VmHWM") - baseline
print(json.dumps({{"peak_growth_mib": growth, "allocated_peak_mib": b.allocated_peak_mib(step)}}))
"""


def bench_chunked_loss_memory(family_index: int, size: dict, batch: int, length: int, vocab: int = REAL_VOCAB) -> dict:
    """Peak training memory of the HF model, ours with the full (B, T, V) logits (`skip_logits=False`) and ours with
    the chunked loss (`skip_logits=True`, what training at this size does by default), at `size` with a real
    vocabulary (`vocab`), each in a fresh process: {which: (peak RSS of 2 steps minus RSS before them, as `bench_memory`;
    the allocator's peak of live tensors during a third step, `allocated_peak_mib`)} in MiB. Linux only."""
    size = {**size, "vocab": vocab, "max_len": max(size["max_len"], length)}
    result = {}
    for which in ("hf", "full", "chunked"):
        code = LOSS_MEMORY_CHILD.format(scripts=str(ROOT / "scripts"), family=family_index, size=size, which=which,
                                        batch=batch, length=length, threads=torch.get_num_threads())
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        measured = json.loads(out.stdout.strip().splitlines()[-1])
        result[which] = (measured["peak_growth_mib"], measured["allocated_peak_mib"])
    result["logits_mib"] = batch * length * vocab * 4 / 2**20  # one float32 (B, T, V) tensor
    return result


def loss_memory_rows(size: dict, quick: bool, vocab: int = REAL_VOCAB) -> list[list[str]]:
    """The rows of the chunked-loss memory table (Llama pair): 1 × 1,024 tokens with --quick, else 4 × 1,024 and
    2 × 2,048 (the same 4,096 positions: 768 MiB of float32 logits each)."""
    index = next(i for i, f in enumerate(FAMILIES) if f.hf_class is transformers.LlamaForCausalLM)
    rows = []
    for batch, length in ([(1, 1024)] if quick else [(4, 1024), (2, 2048)]):
        m = bench_chunked_loss_memory(index, size, batch, length, vocab)
        (hf, hf_live), (full, full_live), (chunked, chunked_live) = m["hf"], m["full"], m["chunked"]
        rows.append([f"{batch} × {length:,}", f"{m['logits_mib']:.0f}", f"{hf:.0f} / {hf_live:.0f}",
                     f"{full:.0f} / {full_live:.0f}", f"{chunked:.0f} / {chunked_live:.0f}",
                     ratio(chunked, hf, higher_is_better=False, target=1 / 0.6) + " / "
                     + ratio(chunked_live, hf_live, higher_is_better=False, target=1 / 0.6),
                     f"{full / chunked:.2f}× / {full_live / chunked_live:.2f}×"])
        print("loss memory", rows[-1], flush=True)
    return rows


def loss_memory_table(rows: list[list[str]], size: dict, vocab: int = REAL_VOCAB) -> str:
    header = ["batch × tokens", "fp32 logits MiB", "HF MiB", "ours, full logits MiB", "ours, chunked loss MiB",
              "HF / ours chunked (target ≥ 1.67×)", "full / chunked"]
    return (f"Llama pair at width {size['width']}, {size['layers']} layers, vocabulary {vocab:,}, sdpa, fp32, "
            "AdamW, each in its own process. Each cell: peak RSS during 2 steps minus RSS before them / peak of live "
            "tensors during a 3rd step (torch's allocator, from the profiler's records), MiB. Target: ours ≤ 0.6× "
            f"HF's.\n\n{table(header, rows)}" if rows else "(skipped)")


# ------------------------------------------------------------------------------------------------------ report


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few repeats: a smoke test")
    parser.add_argument("--out", type=Path, default=None,
                        help="Markdown file to write (default: benchmarks/RESULTS.md, or print only with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement (median reported)")
    parser.add_argument("--families", default="all", help="comma-separated prefixes, e.g. 'GPT,BERT' (default all)")
    parser.add_argument("--no-memory", action="store_true", help="skip the subprocess peak-memory measurements")
    parser.add_argument("--only-loss-memory", action="store_true",
                        help="measure only the peak training memory with/without the chunked loss at a 49,152 "
                             "vocabulary (Linux) and print that table")
    parser.add_argument("--loss-memory-vocab", type=int, default=REAL_VOCAB,
                        help=f"the vocabulary of that table (default {REAL_VOCAB:,}, SmolLM2's)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on shared cores, 2 threads measure contention, not models)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    quick = args.quick
    out = args.out if args.out is not None else (None if quick else ROOT / "benchmarks" / "RESULTS.md")
    repeats = args.repeats or (2 if quick else 5)
    size = SIZES["quick" if quick else "full"]
    batch, length = (2, 32) if quick else (8, 128)
    contexts = [16] if quick else [32, 512, 1024]
    new_tokens = 8 if quick else 32
    lengths = [32, 64] if quick else [128, 256, 512, 1024, 2048]
    attns = ["eager", "sdpa"]
    families = [f for f in FAMILIES if f.hf_class.__name__ in supported_conversions()]
    if args.families != "all":
        wanted = [w.strip().lower() for w in args.families.split(",")]
        families = [f for f in families if any(f.name.lower().startswith(w) for w in wanted)]
    if args.only_loss_memory:
        report = "## Peak training memory with the chunked loss\n\n" + loss_memory_table(
            loss_memory_rows(size, quick, args.loss_memory_vocab), size, args.loss_memory_vocab)
        print(report)
        return report
    load_before = os.getloadavg()
    started = time.perf_counter()

    flops = matmul_flops(256 if quick else 1024, repeats=3 if quick else 10)
    train_rows, decode_rows, memory_rows, scaling_rows, below = [], [], [], [], []
    for family in families:
        variants = [family]
        if family.prompt_masked:  # GPT-2: also a fine-tuning batch whose prompts are not scored
            variants.append(replace(family, name=family.name + " (prompt masked, 50 %)", make_batch=_prompt_masked_batch))
        for attn, variant in ((a, v) for v in variants for a in attns):
            r = bench_training(variant, size, attn, batch, length, repeats, flops)
            train_rows.append([variant.name, attn, f"{r['hf']['tok_s']:.0f}", f"{r['ours']['tok_s']:.0f}",
                               ratio(r["ours"]["tok_s"], r["hf"]["tok_s"]), f"{100 * r['hf']['mfu']:.1f} %",
                               f"{100 * r['ours']['mfu']:.1f} %"])
            print("train", train_rows[-1], flush=True)
            if family.generates and variant is family:
                for context in contexts:
                    d = bench_decoding(family, size, attn, context, new_tokens, 2 * repeats)  # cheap, and noisy
                    decode_rows.append([family.name, attn, context, f"{d['hf']:.1f}", f"{d['ours']:.1f}",
                                        ratio(d["ours"], d["hf"])])
                    print("decode", decode_rows[-1], flush=True)
        if not args.no_memory and Path("/proc/self/clear_refs").exists():
            m = bench_memory(FAMILIES.index(family), size, "sdpa", batch, length)
            measurable = min(m.values()) >= 1.0  # tiny models may fit in memory the allocator already holds
            memory_rows.append([family.name, "sdpa", f"{m['hf']:.0f}", f"{m['ours']:.0f}",
                                ratio(m["ours"], m["hf"], higher_is_better=False) if measurable else "n/a"])
            print("memory", memory_rows[-1], flush=True)
        for attn in attns:
            for n in lengths:
                if n > size["max_len"]:
                    continue
                s = bench_scaling(family, size, attn, n, max(2, repeats - 3))
                scaling_rows.append([family.name, attn, n, f"{s['hf']:.1f}", f"{s['ours']:.1f}",
                                     ratio(s["ours"], s["hf"], higher_is_better=False)])
                print("scaling", scaling_rows[-1], flush=True)
    loss_rows = []
    if (not args.no_memory and Path("/proc/self/clear_refs").exists()
            and any(f.hf_class is transformers.LlamaForCausalLM for f in families)):
        loss_rows = loss_memory_rows(size, quick, args.loss_memory_vocab)
    kv_context = 64 if quick else 1024
    kv_rows = []
    if any(f.hf_class is transformers.LlamaForCausalLM for f in families):
        for r in bench_kv_cache(size, kv_context):
            kv_rows.append([r["kv_heads"], size["heads"], f"{r['hf']:,}", f"{r['ours']:,}", f"{r['expected']:,}",
                            f"{r['ratio']:.3f}", f"{r['kv_heads'] / size['heads']:.3f}"])
            print("kv cache", kv_rows[-1], flush=True)
    for rows, what in ((train_rows, "training"), (decode_rows, "decoding"), (scaling_rows, "forward")):
        below += [f"{what}: {' / '.join(str(c) for c in row[:3])} → {row[-1] if what != 'training' else row[4]}"
                  for row in rows if "below" in (row[4] if what == "training" else row[-1])
                  or "slower" in (row[4] if what == "training" else row[-1])]

    elapsed = time.perf_counter() - started
    command = "python scripts/benchmark.py " + " ".join(argv if argv is not None else sys.argv[1:])
    shape = size
    report = f"""# Benchmarks: scratchformers vs transformers' native models

Generated by `{command.strip()}` on {datetime.date.today().isoformat()} in {elapsed / 60:.1f} min.

- Machine: {cpu_name()}, {os.cpu_count()} logical CPUs, torch threads = {torch.get_num_threads()};
  load average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} (the cores are shared with other
  developers' processes, so every number is the median of {repeats} interleaved repeats: HF, ours, HF, ours, …).
  No GPU was used (none is available to this task).
- Versions: Python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__},
  scratchformers commit {git_commit()}.
- Size (both models, same weights via `from_hf`): vocab {shape['vocab']}, width {shape['width']}, {shape['layers']}
  layers, {shape['heads']} heads, feed-forward {4 * shape['width']}, dropout 0.1 (HF defaults), fp32. The Llama pair:
  the same width, layers and heads, {max(1, shape['heads'] // 2)} key/value heads, SwiGLU intermediate
  {64 * round(8 * shape['width'] / 3 / 64)}, RMSNorm, rotary, no biases, no dropout, untied output layer.
- Matmul ceiling measured in this run: {flops / 1e9:.1f} GFLOP/s (fp32 square matmul). MFU = tokens/s × FLOPs per
  token (6·N + 12·L·T·C) / that ceiling.
- Ratios are ours / HF for throughput and HF / ours for time and memory: > 1 means we are better. Target ≥ {TARGET}×.

## Training step (forward + backward + AdamW), batch {batch} × {length} tokens

{table(["pair", "attention", "HF tok/s", "ours tok/s", "ratio", "HF MFU", "ours MFU"], train_rows)}

## Cached greedy decoding, batch 1, {new_tokens} new tokens, median of {2 * repeats} (decode steps only: model forward + argmax per token)

{table(["pair", "attention", "context", "HF tok/s", "ours tok/s", "ratio"], decode_rows) if decode_rows else "(no decoder family measured)"}

## Peak memory of training steps (peak RSS during 2 steps minus RSS before them, MiB; separate processes)

{table(["pair", "attention", "HF MiB", "ours MiB", "ratio (HF/ours)"], memory_rows) if memory_rows else "(skipped)"}

## Peak training memory with the chunked loss, at a real vocabulary

{loss_memory_table(loss_rows, size, args.loss_memory_vocab)}

## KV cache size with grouped-query attention (Llama pair, prefill of {kv_context} tokens, fp32 bytes)

{table(["num_key_value_heads", "num_attention_heads", "HF bytes", "ours bytes", "2·L·T·H_kv·D·4", "ours / ours at H_kv = H", "H_kv / H"], kv_rows) if kv_rows else "(no Llama pair measured)"}

## Forward time vs sequence length (batch 1, no grad, ms per forward)

{table(["pair", "attention", "tokens", "HF ms", "ours ms", "ratio (HF/ours)"], scaling_rows)}

## Below the {TARGET}× target in this run

{chr(10).join("- " + b for b in below) if below else "- nothing"}

## Analysis

{kept_notes(out) if out is not None else ""}
"""
    return write_report(report, out)


if __name__ == "__main__":
    main()
