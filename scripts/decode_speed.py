"""Greedy decoding speed of a real checkpoint, ours against transformers' class with the same weights, for each
decoding setup: the default dynamic cache, a static cache, a static cache with the decoding step compiled
(inductor), int8 weight-only weights (torchao) with the dynamic cache and compiled — batch 1, interleaved.

Each setup generates the same number of new tokens from one chat prompt; a stopping criterion stamps the time of
every token, so the rate is (N − 1) / (time of token N − time of token 1): decoding steps only, no prefill and no
compilation (each setup runs once, untimed, before the timed rounds: compiling happens there). Rounds interleave
the setups (A, B, C, …, C, B, A, …) and the median per setup is reported, with the weight bytes read per token, the
memory bandwidth measured here and the bound it sets (bandwidth / bytes per token). Example (SmolLM2-135M, the
checkpoints `scratchformers convert` writes from the cached GGUF, and back to transformers' LlamaForCausalLM):

    scratchformers convert ~/.cache/scratchformers/SmolLM2-135M-Instruct.Q4_1.gguf /tmp/smollm2
    scratchformers convert /tmp/smollm2 /tmp/smollm2-hf
    python scripts/decode_speed.py --ours /tmp/smollm2 --hf /tmp/smollm2-hf --threads 2

`--overhead` measures the per-token overhead instead, without a checkpoint: a model of SmolLM2-135M's shape (30
layers, 9 query / 3 key-value heads, rotary, RMSNorm, SwiGLU) with tiny widths, so that a decoding step is almost
all dispatch and Python, ours against LlamaForCausalLM with the same weights: the aten operations one cached step
calls (torch.profiler; a deterministic count) and its CPU time (process time, median).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria

import scratchformers  # noqa: F401  (registers our model classes)
from scratchformers.fast_decoding import generate_settings, quantization_config, torchao_available

SETUPS = ("dynamic", "static", "static+compile", "int8", "int8+compile")


class TokenClock(StoppingCriteria):
    """Stamps the time each new token is ready (generate() calls stopping criteria once per step); never stops."""

    def __init__(self):
        self.times: list[float] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        self.times.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def decode_run(model, inputs: dict, new_tokens: int, settings: dict) -> Callable[[], tuple[float, torch.Tensor]]:
    """A function running one greedy generate() and returning (decode tokens/s, the new tokens)."""
    def run() -> tuple[float, torch.Tensor]:
        clock = TokenClock()
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                 stopping_criteria=[clock], **settings)
        return (len(clock.times) - 1) / (clock.times[-1] - clock.times[0]), out[0, inputs["input_ids"].shape[1]:]
    return run


def weight_bytes(model) -> int:
    """Bytes of the distinct weights a decoding step reads (a tied output layer counted once; int8 tensors at their
    stored size: torchao's tensor subclasses report the int8 data and scales through `__tensor_flatten__`)."""
    seen, total = set(), 0
    for parameter in model.parameters():
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        if hasattr(parameter, "__tensor_flatten__"):
            names, _ = parameter.__tensor_flatten__()
            total += sum(getattr(parameter, n).numel() * getattr(parameter, n).element_size() for n in names)
        else:
            total += parameter.numel() * parameter.element_size()
    return total


def bandwidth_gb_s(megabytes: int = 512, repeats: int = 5) -> float:
    """Memory read bandwidth at this thread count: the best of `repeats` sums over a float32 buffer far larger than
    the caches (GB/s)."""
    buffer = torch.ones(megabytes * 2**20 // 4)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        buffer.sum()
        best = min(best, time.perf_counter() - start)
    return buffer.numel() * 4 / best / 1e9


def overhead_pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    """(ours, HF LlamaForCausalLM) of SmolLM2-135M's layout with tiny widths and the same weights (`from_hf`)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from scratchformers.convert import from_hf

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=256, hidden_size=72, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, intermediate_size=96, max_position_embeddings=512,
                         tie_word_embeddings=True)
    hf = LlamaForCausalLM(config).eval()
    return from_hf(hf).eval(), hf


def cached_step(model, context: int = 40) -> Callable[[], None]:
    """One cached decoding step as generate() calls it (1 new token, the 2-D mask, `logits_to_keep=1`), after a
    prefill of `context` tokens; the cache is cropped back after each step so every call sees the same length."""
    with torch.no_grad():
        cache = model(input_ids=torch.randint(3, 256, (1, context)), use_cache=True).past_key_values
    token, mask = torch.ones(1, 1, dtype=torch.long), torch.ones(1, context + 1, dtype=torch.long)

    def step() -> None:
        with torch.no_grad():
            model(input_ids=token, attention_mask=mask, past_key_values=cache, use_cache=True, logits_to_keep=1)
        cache.crop(-1)
    return step


def aten_calls(step: Callable[[], None]) -> tuple[int, int]:
    """(aten operations called from Python, all aten operations including those they call) in one `step`."""
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = [e for e in prof.events() if e.name.startswith("aten::") and e.name != "aten::crop"]
    top = [e for e in events if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
    return len(top), len(events)


def overhead(rounds: int, steps: int = 200) -> None:
    """Print the per-token overhead table (`--overhead`)."""
    torch.set_num_threads(1)
    steps_of = dict(zip(("ours", "HF"), (cached_step(m) for m in overhead_pair())))
    times = {name: [] for name in steps_of}
    for _ in range(rounds):
        for name, step in steps_of.items():
            start = time.process_time()
            for _ in range(steps):
                step()
            times[name].append((time.process_time() - start) / steps * 1000)
    print("| model | aten ops per step (called from Python / all) | CPU ms per step (median) |\n|---|---|---|")
    for name, step in steps_of.items():
        top, every = aten_calls(step)
        print(f"| {name} | {top} / {every} | {statistics.median(times[name]):.2f} |")


def main(argv: list[str] | None = None) -> None:
    """Print a Markdown table: model, setup, decode tokens/s (median), bound, same tokens as the dynamic cache."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ours", default=None, help="our checkpoint folder (scratch_gpt)")
    parser.add_argument("--overhead", action="store_true", help="per-token overhead of a SmolLM2-shaped tiny model "
                        "(no checkpoint): aten operations and CPU time per cached step, ours vs HF")
    parser.add_argument("--hf", default=None, help="transformers' checkpoint with the same weights (optional)")
    parser.add_argument("--setups", default=",".join(SETUPS), help=f"comma-separated, of {SETUPS}")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (median reported)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt", default="Explain why the sky is blue.")
    args = parser.parse_args(argv)
    if args.overhead:
        return overhead(args.rounds)
    if args.ours is None:
        parser.error("give --ours CHECKPOINT (or --overhead)")
    setups = args.setups.split(",")
    if unknown := [s for s in setups if s not in SETUPS]:
        parser.error(f"unknown setups {unknown}; allowed: {SETUPS}")
    if any(s.startswith("int8") for s in setups) and not torchao_available():
        parser.error('the int8 setups need torchao: pip install "scratchformers[quant]"')
    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.ours)
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": args.prompt}], add_generation_prompt=True,
                                           return_dict=True, return_tensors="pt")
    inputs = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
    runs, sizes = {}, {}
    for name, folder in (("ours", args.ours), ("HF", args.hf)):
        if folder is None:
            continue
        float_model, int8_model = AutoModelForCausalLM.from_pretrained(folder).eval(), None
        for setup in setups:
            model = float_model
            if setup.startswith("int8"):
                int8_model = int8_model or AutoModelForCausalLM.from_pretrained(
                    folder, quantization_config=quantization_config("int8-weight-only")).eval()
                model = int8_model
            settings = generate_settings(static_cache=setup != "int8" and setup != "dynamic",
                                         compile=setup.endswith("compile"))
            runs[name, setup] = decode_run(model, inputs, args.new_tokens, settings)
            sizes[name, setup] = weight_bytes(model)
    bandwidth = bandwidth_gb_s()
    started = time.perf_counter()
    tokens, first = {}, {}
    for key, run in runs.items():  # untimed: compiles the compiled setups
        start = time.perf_counter()
        _, tokens[key] = run()
        first[key] = time.perf_counter() - start
    rates = {key: [] for key in runs}
    for round_index in range(args.rounds):  # every other round in reverse order, so a drift in load favours no one
        for key in list(runs) if round_index % 2 == 0 else list(runs)[::-1]:
            rates[key].append(runs[key]()[0])
    minutes = (time.perf_counter() - started) / 60
    print(f"torch threads {args.threads}, {args.new_tokens} new tokens, prompt {inputs['input_ids'].shape[1]} tokens, "
          f"median of {args.rounds} interleaved rounds, {minutes:.1f} min; memory read bandwidth {bandwidth:.1f} GB/s")
    print("\n| model | setup | weights read per token (MB) | decode tok/s | bound: bandwidth / weights | first run (s) "
          "| same greedy tokens as its dynamic cache |")
    print("|---|---|---|---|---|---|---|")
    for (name, setup), rate in rates.items():
        reference = tokens.get((name, "dynamic"))
        same = "—" if reference is None or setup == "dynamic" else (
            "yes" if torch.equal(tokens[name, setup], reference)
            else f"{(tokens[name, setup] == reference).float().mean():.0%} of positions")
        bound = bandwidth * 1e9 / sizes[name, setup]
        print(f"| {name} | {setup} | {sizes[name, setup] / 1e6:.0f} | {statistics.median(rate):.1f} | {bound:.0f} "
              f"| {first[name, setup]:.0f} | {same} |")


if __name__ == "__main__":
    main()
