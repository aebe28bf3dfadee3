"""An OpenAI-compatible server in a subprocess, seen as its users see it: started on a free loopback port, waited for
on `GET /health`, asked with the official `openai` client, stopped with Ctrl-C; and the answer it must give, which is
`model.generate()` (greedy) on the same chat template.

Shared by `tests/deploy/test_serve.py` (our `scratchformers serve`), `scripts/serve_throughput.py` and
`scripts/vllm_compare.py` (`vllm serve --model-impl transformers`), so every server is started, asked and stopped
the same way. Needs the `[serve]` extra (`openai`) only where a client is built.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A loopback port nobody listens on now (the OS picks it; another process could take it before the server
    binds, which a test on a shared machine accepts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scratchformers_serve_command(checkpoint: str | Path, port: int, flags: Sequence[str] = ()) -> list[str]:
    """`scratchformers serve CHECKPOINT --host 127.0.0.1 --port PORT FLAGS…`, run by this Python."""
    return [sys.executable, "-m", "scratchformers_cli", "serve", str(checkpoint), "--host", "127.0.0.1", "--port",
            str(port), *flags]


class ServerProcess:
    """A server subprocess in a process group of its own (so SIGINT reaches it and the processes it starts, as a
    terminal's Ctrl-C does), its stdout and stderr in one log file.

    Args:
        command: the command line; it must listen on 127.0.0.1:``port``.
        port: where it listens (`free_port()`).
        log: the file its output goes to.
        env: variables added to this process's environment (e.g. ``OMP_NUM_THREADS``).
    """

    def __init__(self, command: Sequence[str], port: int, log: Path, env: dict[str, str] | None = None):
        self.port, self.log = port, Path(log)
        environment = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT, env=environment,
                                            start_new_session=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def openai_client(self, timeout: float = 120.0) -> Any:
        """The official `openai` client on this server (no retries: a failure shows at once)."""
        import openai

        return openai.OpenAI(base_url=self.base_url, api_key="unused", max_retries=0, timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_until_ready(self, timeout: float) -> float:
        """Seconds until `GET /health` answers 200. RuntimeError (with the log) when the process ends first or
        ``timeout`` seconds pass."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}) before answering:\n{self.output()}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
                    if response.status == 200:
                        return time.monotonic() - start
            time.sleep(0.25)
        raise RuntimeError(f"the server did not answer within {timeout:.0f} s:\n{self.output()}")

    def group_alive(self) -> bool:
        """Whether any process of the server's group is still running."""
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self, grace: float = 30.0) -> None:
        """Ctrl-C to the group, then SIGKILL to whatever of it is left after ``grace`` seconds."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace)
        deadline = time.monotonic() + 10
        while self.group_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def greedy_reference(checkpoint: str | Path, **load: Any) -> Callable[..., str]:
    """What a server must answer for ``checkpoint``: a function ``answer(max_new_tokens, messages=None, prompt=None)``
    giving `generate()`'s greedy continuation of the chat template on ``messages`` (or of the plain ``prompt``),
    decoded without special tokens, as the servers decode. ``load`` goes to `from_pretrained`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(checkpoint, **load).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)

    def answer(max_new_tokens: int, messages: list[dict] | None = None, prompt: str | None = None) -> str:
        if messages is not None:
            inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True,
                                                   return_tensors="pt")
        else:
            inputs = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        return tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

    return answer


def ask(client: Any, model: str | Path, question: str, max_tokens: int, **kwargs: Any) -> Any:
    """One greedy chat completion of a single user turn (`temperature=0`) from the served ``model``."""
    return client.chat.completions.create(model=str(model), messages=[{"role": "user", "content": question}],
                                          max_tokens=max_tokens, temperature=0, **kwargs)
