"""Time greedy decoding of a small random GPT: dynamic cache, static cache, static cache + compiled decoding step.

Not a test (torch.compile with inductor is slow to start on a small CPU). Example:
    PYTHONPATH=src python scripts/static_cache_decode.py --backend inductor --new-tokens 64
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import CompileConfig

from scratchformers import ScratchGPTConfig, ScratchGPTForCausalLM


def timed(fn, repeats: int) -> tuple[torch.Tensor, float]:
    """Run `fn` once to warm up (compilation happens there), then return its output and the best of `repeats` runs."""
    out, best = fn(), float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def main(argv: list[str] | None = None) -> None:
    """Print seconds per generate() call for each cache setup and whether all give the same tokens."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="eager", help="torch.compile backend: eager, aot_eager, inductor")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    config = ScratchGPTConfig(vocab_size=512, hidden_size=args.hidden, num_hidden_layers=args.layers,
                              num_attention_heads=4, intermediate_size=4 * args.hidden, max_position_embeddings=256)
    model = ScratchGPTForCausalLM(config).eval()
    x = torch.randint(3, 512, (4, 16))
    kwargs = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False)
    compile_config = CompileConfig(fullgraph=True, backend=args.backend, mode=None)
    compile_config._compile_all_devices = True  # transformers compiles only on accelerators unless told otherwise
    runs = {
        "dynamic": lambda: model.generate(x, **kwargs),
        "static": lambda: model.generate(x, cache_implementation="static", **kwargs),
        f"static+compile({args.backend})": lambda: model.generate(
            x, cache_implementation="static", compile_config=compile_config, **kwargs
        ),
    }
    reference = None
    for name, run in runs.items():
        start = time.perf_counter()
        out, seconds = timed(run, args.repeats)
        first = time.perf_counter() - start - seconds * args.repeats
        reference = out if reference is None else reference
        print(f"{name:28s} {seconds * 1000:8.1f} ms/call  first call {first:6.2f} s  same tokens: "
              f"{torch.equal(out, reference)}")


if __name__ == "__main__":
    main()
