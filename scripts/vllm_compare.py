"""Greedy chat answers of an inference server on one of our checkpoints against our own `generate()`.

vLLM runs custom models through its "transformers backend" (`--model-impl transformers`, with `--trust-remote-code`
for the code our checkpoints carry in `auto_map`); docs/llm.md lists what that backend asks of a model and which
points the CPU tests check. This script is the check they cannot do: a real `vllm serve` on a real checkpoint, asked
with the official `openai` client, its answers compared with `generate()` on the same chat template (greedy).

    # on a GPU machine with vLLM installed (vLLM needs a GPU):
    python scripts/vllm_compare.py CHECKPOINT --server vllm --dtype float32
    # the same comparison against our own server, on a CPU (how tests/deploy/test_serve.py checks this script):
    python scripts/vllm_compare.py CHECKPOINT --server scratchformers

Prints one line per question (equal, or the two texts and the first character where they part) and a summary;
exit status 0 when every answer is `generate()`'s text, 1 when any differs, 2 on a usage mistake (e.g. vLLM not
installed), before anything loads. A float32 run should agree exactly on a short answer; in bf16/fp16 vLLM's kernels
round differently from ours, and greedy paths may part after a near-tie, which the first-difference column shows.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

QUESTIONS = ["What is the capital of France?", "Name three colours.", "Translate 'good morning' into German.",
             "Write one sentence about the sea.", "What is 2 + 3?", "Say hello."]


def server_command(server: str, checkpoint: Path, port: int, dtype: str, max_model_len: int) -> list[str]:
    """The command line that serves ``checkpoint`` on 127.0.0.1:``port`` under the served-model name
    ``str(checkpoint)``."""
    from scratchformers.served import scratchformers_serve_command

    if server == "scratchformers":
        return scratchformers_serve_command(checkpoint, port, ["--dtype", dtype])
    vllm = shutil.which("vllm")
    launcher = [vllm] if vllm else [sys.executable, "-m", "vllm.entrypoints.cli.main"]
    return [*launcher, "serve", str(checkpoint), "--model-impl", "transformers", "--trust-remote-code", "--dtype",
            dtype, "--host", "127.0.0.1", "--port", str(port), "--max-model-len", str(max_model_len),
            "--served-model-name", str(checkpoint)]


def first_difference(a: str, b: str) -> int | None:
    """The index of the first character where ``a`` and ``b`` differ (the shorter length if one is a prefix of the
    other), or None when they are equal."""
    if a == b:
        return None
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def compare(checkpoint: Path, server: str, dtype: str, max_tokens: int, questions: list[str], timeout: float,
            log: Path) -> list[tuple[str, str, str]]:
    """(question, served answer, generate()'s answer) for each question; starts and stops the server."""
    from scratchformers.served import ServerProcess, ask, free_port, greedy_reference

    reference = greedy_reference(checkpoint)
    port = free_port()
    process = ServerProcess(server_command(server, checkpoint, port, dtype, max_model_len=2048), port, log)
    try:
        process.wait_until_ready(timeout)
        client = process.openai_client(timeout=timeout)
        return [(question, ask(client, checkpoint, question, max_tokens).choices[0].message.content or "",
                 reference(max_tokens, messages=[{"role": "user", "content": question}])) for question in questions]
    finally:
        process.stop()


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, compare, print; returns the exit status (0 all equal, 1 some differ)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a saved scratchformers causal LM with its tokenizer")
    parser.add_argument("--server", choices=["vllm", "scratchformers"], default="vllm")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the server to start")
    parser.add_argument("--questions", type=Path, default=None, help="a text file, one question per line")
    args = parser.parse_args(argv)
    if not (args.checkpoint / "config.json").is_file():
        parser.error(f"{args.checkpoint} has no config.json: pass a saved checkpoint folder")
    if args.server == "vllm" and importlib.util.find_spec("vllm") is None:
        parser.error("vllm is not installed here (pip install vllm, on a machine with a GPU); "
                     "--server scratchformers compares our own server instead")
    if args.max_tokens < 1:
        parser.error(f"--max-tokens must be at least 1, not {args.max_tokens}")
    questions = (args.questions.read_text(encoding="utf-8").splitlines() if args.questions else QUESTIONS)
    log = Path(tempfile.mkdtemp(prefix="vllm-compare-")) / "server.log"
    rows = compare(args.checkpoint.resolve(), args.server, args.dtype, args.max_tokens,
                   [q for q in questions if q.strip()], args.timeout, log)
    same = 0
    for question, served, ours in rows:
        where = first_difference(served, ours)
        same += where is None
        print(f"{'equal' if where is None else f'differ at {where}'}: {question!r}")
        if where is not None:
            print(f"    {args.server}: {served!r}\n    generate(): {ours!r}")
    print(f"{same}/{len(rows)} answers equal to generate() ({args.server}, {args.dtype}, {args.max_tokens} tokens; "
          f"server log: {log})")
    return 0 if same == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
