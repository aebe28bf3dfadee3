"""Measuring models: median timings taken in turn, FLOPs per training token, a KV cache's bytes, the CPU allocator's
peak of live tensors; and the Markdown reports they go into (tables, hand-written notes kept across re-runs). Library
code the benchmark scripts (scripts/benchmark.py, gpu_benchmark.py, benchmark_real_sizes.py) and their tests share;
not needed by a checkpoint's remote code."""

from __future__ import annotations

import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

#: The repository root, when the package runs from a checkout (`git_commit` asks git there).
ROOT = Path(__file__).resolve().parents[2]
#: Issue 23's speed target: ours / HF ≥ 1.15× (tokens/s); `ratio` marks a row below it.
TARGET = 1.15


def elapsed_seconds(fn: Callable[[], None]) -> float:
    """Wall-clock seconds `fn()` takes (`time.perf_counter`)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(fns: dict[str, Callable[[], None]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each callable, run in turn (a, b, a, b, …) so load from other processes hits both alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(elapsed_seconds(fn))
    return {name: statistics.median(ts) for name, ts in times.items()}


def matmul_flops(n: int, repeats: int) -> float:
    """FLOP/s of an n×n fp32 matmul (2n³ FLOPs): the ceiling MFU is measured against."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    t = interleaved({"mm": lambda: torch.mm(a, b)}, repeats, warmup=2)["mm"]
    return 2 * n**3 / t


def training_flops_per_token(model: torch.nn.Module, config, length: int) -> float:
    """6·N (N = parameters in matmuls: every Linear/Conv1D, the output layer included, embeddings excluded) plus
    attention's 12·L·T·C (QKᵀ and AV forward, ×3 for backward) — the usual estimate (Kaplan et al. 2020)."""
    n = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D":
            n += module.weight.numel()
    attention_layers = config.num_hidden_layers
    if getattr(config, "is_encoder_decoder", False):  # encoder self + decoder self + cross attention (S = T)
        attention_layers = config.encoder_layers + 2 * config.decoder_layers
    return 6 * n + 12 * attention_layers * length * config.hidden_size


def cache_bytes(cache) -> int:
    """Bytes the key/value tensors of a cache occupy: every distinct storage behind each layer's keys and values (our
    `GrowingLayer` hands out views of its buffers; those buffers count, spare room included)."""
    storages = {}
    for layer in cache.layers:
        tensors = [layer.keys, layer.values, getattr(layer, "key_buffer", None), getattr(layer, "value_buffer", None)]
        for t in tensors:
            if isinstance(t, torch.Tensor):
                storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(storages.values())


def allocated_peak_mib(step: Callable[[], None]) -> float:
    """Peak of the bytes torch's CPU allocator holds during `step()` above what it held before, in MiB: the running
    sum of the profiler's allocation (+) and free (−) records in their order. Live tensors only — unlike the resident
    set, which also keeps what glibc has not handed back to the system — and sizes, not timings: deterministic."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    records = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    held = peak = 0
    for e in sorted(records, key=lambda e: e.start_ns()):
        held += e.nbytes()
        peak = max(peak, held)
    return peak / 2**20


def memory_bandwidth(megabytes: int = 512, repeats: int = 5) -> float:
    """Bytes/s this machine reads from memory: a float32 tensor of ``megabytes`` MB (far larger than any cache) summed
    once per repeat, median time. The ceiling for decoding at batch 1, which reads every weight once per token."""
    x = torch.ones(megabytes * 2**20 // 4)
    t = interleaved({"sum": lambda: x.sum()}, repeats, warmup=1)["sum"]
    return x.numel() * 4 / t


def decode_bytes_per_step(model: torch.nn.Module, batch: int, context: int) -> int:
    """Bytes one cached decoding step must read: every parameter once (a tied matrix once; the input embedding only
    reads B rows, so an untied input embedding is not counted) plus each sequence's key/value cache,
    2·L·T·H_kv·D elements. The memory-bandwidth limit is tokens/s ≤ B · bandwidth / this."""
    config = model.config
    embedding = model.get_input_embeddings().weight
    output = model.get_output_embeddings().weight if model.get_output_embeddings() is not None else None
    seen, n = set(), 0
    for p in model.parameters():
        if p.data_ptr() in seen or (p is embedding and (output is None or output.data_ptr() != p.data_ptr())):
            continue
        seen.add(p.data_ptr())
        n += p.numel() * p.element_size()
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv = 2 * config.num_hidden_layers * context * kv_heads * head_dim * embedding.element_size()
    return n + batch * kv



def train_step_fn(model: torch.nn.Module, batch: dict, fused: bool = True) -> Callable[[], None]:
    """One training step as a callable: zero the gradients, `model(**batch).loss.backward()`, an AdamW step (lr 1e-4).
    `fused=True` is the Trainer's default optimizer since torch 2.8 (`optim="adamw_torch_fused"`): one kernel per
    parameter group, and no temporary of all the parameters' size (the foreach version's `sqrt` of every second
    moment at once, 4 bytes a parameter: at 1 B parameters it decides whether a step fits in memory).
    Puts the model in training mode."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused or None)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model(**batch).loss.backward()
        optimizer.step()

    return step


def greedy_decode_fn(model: torch.nn.Module, ids: torch.Tensor, new_tokens: int) -> Callable[[], float]:
    """Cached greedy decoding as `generate()` does it, with only the decode steps timed: prefill the context `ids`
    (B, T) once (untimed), then per step feed the argmax token (B, 1) with the cache. Encoder-decoder: `ids` is the
    source, encoded once; the decoder starts from `decoder_start_token_id`. The callable returns the seconds of the
    `new_tokens` steps."""
    if model.config.is_encoder_decoder:
        return _seq2seq_greedy_decode_fn(model, ids, new_tokens)

    def run() -> float:
        with torch.no_grad():
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
            cache = out.past_key_values if out.past_key_values is not None else out.cache
            token = out.logits[:, -1].argmax(-1, keepdim=True)  # (B, 1)
            start = time.perf_counter()
            for _ in range(new_tokens):
                out = model(input_ids=token, cache=cache, use_cache=True, logits_to_keep=1)
                token = out.logits[:, -1].argmax(-1, keepdim=True)
            return time.perf_counter() - start

    return run


def _seq2seq_greedy_decode_fn(model: torch.nn.Module, source: torch.Tensor, new_tokens: int) -> Callable[[], float]:
    def run() -> float:
        with torch.no_grad():
            encoder_outputs = model.get_encoder()(input_ids=source)
            token = torch.full((source.shape[0], 1), model.config.decoder_start_token_id)
            out = model(encoder_outputs=encoder_outputs, decoder_input_ids=token, use_cache=True)
            cache = out.past_key_values if out.past_key_values is not None else out.cache
            token = out.logits[:, -1].argmax(-1, keepdim=True)
            start = time.perf_counter()
            for _ in range(new_tokens):
                out = model(encoder_outputs=encoder_outputs, decoder_input_ids=token, cache=cache, use_cache=True)
                token = out.logits[:, -1].argmax(-1, keepdim=True)
            return time.perf_counter() - start

    return run


class StepClock:
    """A logits processor that only notes the time it is called: `generate()` calls it once per new token, right after
    that token's forward. The seconds between the first call (after the prefill) and the last are the decoding steps
    2…N alone — no prefill, no compilation of the first step — of whatever `generate()` setup is timed."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.stamps.append(time.perf_counter())
        return scores

    def seconds_per_step(self) -> float:
        """Mean seconds of a decoding step after the first; ValueError when fewer than two steps were taken."""
        if len(self.stamps) < 2:
            raise ValueError(f"need at least 2 decoding steps to time one, got {len(self.stamps)}")
        return (self.stamps[-1] - self.stamps[0]) / (len(self.stamps) - 1)


def generate_decode_fn(model: torch.nn.Module, ids: torch.Tensor, new_tokens: int,
                       **settings: Any) -> Callable[[], float]:
    """`model.generate(ids, do_sample=False, max_new_tokens=new_tokens, **settings)` for `ids` (B, T) with no padding,
    timed by a `StepClock`: the callable returns the mean seconds of one decoding step (steps 2…N; N = `new_tokens`
    ≥ 2), as a user of `generate()` gets them — the static cache and compiled step of
    `fast_decoding.generate_settings`, or the default cache. `min_new_tokens` pins N (no early end of sequence)."""
    if new_tokens < 2:
        raise ValueError(f"new_tokens must be at least 2 (steps 2…N are timed), got {new_tokens}")
    mask = torch.ones_like(ids)

    def run() -> float:
        clock = StepClock()
        with torch.no_grad():
            model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=new_tokens,
                           min_new_tokens=new_tokens, logits_processor=[clock], pad_token_id=0, **settings)
        return clock.seconds_per_step()

    return run


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    """The checkout's short commit hash, "unknown" outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def ratio(ours: float, hf: float, higher_is_better: bool = True, target: float = TARGET) -> str:
    """"1.23×" with a mark when below `target` ("(below 1.15×)") or below parity ("(**slower**)"): ours / HF for a
    rate (`higher_is_better`), HF / ours for a time or a size."""
    r = ours / hf if higher_is_better else hf / ours
    mark = "" if r >= target else (f" (below {target:.2f}×)" if r >= 1.0 else " (**slower**)")
    return f"{r:.2f}×{mark}"

# ---------------------------------------------------------------------------------------------------------- reports

#: The markers around a report's hand-written analysis (`kept_notes`).
NOTES_BEGIN, NOTES_END = "<!-- notes:begin -->", "<!-- notes:end -->"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table: the header row, its rule, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def kept_notes(path: Path) -> str:
    """The hand-written analysis between the notes markers of an existing report survives a re-run."""
    if path.is_file():
        text = path.read_text()
        if NOTES_BEGIN in text and NOTES_END in text:
            return text[text.index(NOTES_BEGIN) : text.index(NOTES_END) + len(NOTES_END)]
    return f"{NOTES_BEGIN}\n(analysis goes here)\n{NOTES_END}"


def write_report(report: str, out: Path | None) -> str:
    """Write the Markdown report to `out` (creating its folder), or print it when `out` is None; return it."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report)
        print(f"wrote {out}")
    else:
        print(report)
    return report
