"""Tokens per second of `scratchformers serve` with 1 and N concurrent chat requests, with and without
`--continuous-batching`, asked with the official `openai` client (greedy, non-streamed).

Not a test (it takes minutes on a small CPU). It builds a random-weight Llama-style ScratchGPT chat checkpoint of the
given shape (a BPE tokenizer trained on the shipped prose, a chat template; the output rows of special tokens are
zeroed so answers run to max_tokens), or serves --checkpoint. Example:

    PYTHONPATH=src python scripts/serve_throughput.py --hidden 256 --layers 4 --max-tokens 64
    PYTHONPATH=src python scripts/serve_throughput.py --checkpoint outputs/my-chat --no-continuous-batching

Tokens/s = completion tokens the server reports (`usage`), summed over the requests of a round, / the round's wall
time (first request sent to last answer); the median of --rounds rounds, after one warm-up request.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

QUESTIONS = ["Open the file", "Where is the module?", "Say something", "Import it", "Which name?", "Bind it",
             "Read the line", "Close it", "What is a package?", "Load the data", "Print it", "Why?", "Go on",
             "Find the name", "Show the path", "Stop"]
TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def build_checkpoint(folder: Path, hidden: int, layers: int, heads: int, kv_heads: int, vocab: int) -> Path:
    """A random Llama-style ScratchGPT with a chat tokenizer, saved to ``folder``."""
    import torch

    from scratchformers import ScratchGPTConfig, ScratchGPTForCausalLM
    from scratchformers.data import DATA_DIR
    from scratchformers.tokenization import train_tokenizer

    tokenizer = train_tokenizer([DATA_DIR / "prose" / "train.txt"], kind="bpe", vocab_size=min(vocab, 4096))
    tokenizer.chat_template = TEMPLATE
    torch.manual_seed(0)
    config = ScratchGPTConfig(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv_heads, intermediate_size=int(hidden * 8 / 3) // 64 * 64 or 64,
        max_position_embeddings=2048, position_embedding_type="rotary", norm_type="rmsnorm", ffn_type="gated",
        activation="silu", attention_bias=False, ffn_bias=False, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = ScratchGPTForCausalLM(config)
    with torch.no_grad():  # never a special token (answers run to max_tokens), nor an id the tokenizer lacks
        head = model.get_output_embeddings().weight
        head[len(tokenizer):] = 0.0
        head[[i for i in tokenizer.all_special_ids if i is not None]] = 0.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    print(f"checkpoint: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, width {hidden}, "
          f"{layers} layers, {heads} heads ({kv_heads} key/value), vocab {vocab}", flush=True)
    return folder


def measure(checkpoint: Path, flags: list[str], concurrency: list[int], max_tokens: int, rounds: int,
            log: Path, threads: int | None = None) -> dict[int, float]:
    """Start the server with ``flags``; for each N in ``concurrency``, the median tokens/s of N concurrent
    requests. Stops the server (Ctrl-C) afterwards."""
    from scratchformers.served import ServerProcess, ask, free_port, scratchformers_serve_command

    port = free_port()
    # torch's threads in the server's processes (the server reads OMP_NUM_THREADS)
    env = {"OMP_NUM_THREADS": str(threads)} if threads is not None else {}
    server = ServerProcess(scratchformers_serve_command(checkpoint, port, flags), port, log, env)
    try:
        try:
            print(f"  started in {server.wait_until_ready(timeout=1800):.1f} s", flush=True)
        except RuntimeError as err:
            raise SystemExit(str(err)) from None
        client = server.openai_client(timeout=1800)

        def completion_tokens(question: str) -> int:
            return ask(client, checkpoint, question, max_tokens).usage.completion_tokens

        completion_tokens("warm up")
        results = {}
        for n in concurrency:
            speeds = []
            for _ in range(rounds):
                begin = time.perf_counter()
                with ThreadPoolExecutor(n) as pool:
                    tokens = sum(pool.map(completion_tokens, (QUESTIONS * n)[:n]))
                speeds.append(tokens / (time.perf_counter() - begin))
            results[n] = statistics.median(speeds)
            print(f"  {n} concurrent: {results[n]:.1f} tokens/s ({', '.join(f'{s:.1f}' for s in speeds)})", flush=True)
        return results
    finally:
        server.stop(grace=60)


def main(argv: list[str] | None = None) -> None:
    """Print tokens/s per setting and concurrency, with the machine's load average before and after."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="serve this folder instead of a random model")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="OMP_NUM_THREADS for the server (default: torch's, one per core)")
    parser.add_argument("--continuous-batching", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure --continuous-batching (needs a model with paged-attention support)")
    parser.add_argument("--cb-flags", default="--cb-num-blocks 128 --cb-block-size 16 --cb-max-batch-tokens 256",
                        help="continuous batching's paged cache on a CPU (without them it is sized from free memory)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="serve-throughput-"))
    checkpoint = args.checkpoint or build_checkpoint(work / "model", args.hidden, args.layers, args.heads,
                                                     args.kv_heads, args.vocab)
    settings = {"generate()": []}
    if args.continuous_batching:
        settings["continuous batching"] = ["--continuous-batching", *args.cb_flags.split()]
    print(f"load average before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs; max_tokens {args.max_tokens}; "
          f"torch threads: {args.threads or 'default'}", flush=True)
    table = {}
    for name, flags in settings.items():
        print(name, flush=True)
        table[name] = measure(checkpoint, flags, args.concurrency, args.max_tokens, args.rounds,
                              work / f"server-{len(table)}.log", args.threads)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print("| server | " + " | ".join(f"{n} concurrent (tokens/s)" for n in args.concurrency) + " |")
    print("|---|" + "---|" * len(args.concurrency))
    for name, results in table.items():
        print(f"| {name} | " + " | ".join(f"{results[n]:.1f}" for n in args.concurrency) + " |")


if __name__ == "__main__":
    main()
