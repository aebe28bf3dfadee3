"""`scratchformers serve CHECKPOINT`: transformers' own OpenAI-compatible server (the server of `transformers serve`)
on our checkpoints — POST `/v1/chat/completions` and `/v1/completions` (streamed or not), GET `/v1/models` and
`/health` — with its flags (`--host`, `--port`, `--device`, `--dtype`, `--continuous-batching`, …), read from its own
definitions: the annotated parameters of `transformers.cli.serve.Serve`.

Why a command of our own: transformers' server loads a checkpoint with `getattr(transformers,
config.architectures[0]).from_pretrained(...)` (`transformers/cli/serving/model_manager.py`, `_load_model`), which
finds only transformers' own classes: `transformers serve CHECKPOINT --trust-remote-code` stops with "module
transformers has no attribute ScratchGPTForCausalLM". Here the server runs unchanged but for one class: its model
loader (`ModelLoader`; `ModelManager` in releases that load models in the server's own process) is a subclass,
`ScratchModelLoader`, whose `_load_model` first sets our model classes as attributes of the `transformers` module
that lookup reads, in the process that loads the model, then runs transformers' `_load_model`. No file of
transformers changes, and the substitution lasts while the command runs.

The module is light to import (the standard library only): the `scratchformers` front end loads it by path to
answer `serve --help` and to refuse mistakes (flags, a missing `[serve]` extra, a folder that is no causal LM)
without importing torch; transformers' serving code and our models are imported only to serve.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import importlib.util
import inspect
import json
import logging
import os
import sys
import types
import typing
from collections.abc import Iterator, Sequence
from typing import Any

#: What transformers' server needs beyond transformers (its `is_serve_available()`): the `[serve]` extra.
SERVE_PACKAGES = ("fastapi", "uvicorn", "openai", "pydantic")
INSTALL_HINT = 'pip install "scratchformers[serve]"'
PROG = "scratchformers serve"

DESCRIPTION = """\
Serve a checkpoint with transformers' OpenAI-compatible server, the server of `transformers serve`, with its flags:
POST /v1/chat/completions (through the tokenizer's chat template) and /v1/completions, streamed or not; GET
/v1/models and /health. CHECKPOINT is a folder written by save_pretrained with its tokenizer (`train`, `train sft`,
`convert`): a ScratchGPTForCausalLM, or any causal LM transformers has. Requests name it as their `model`, exactly
as given here. Ctrl-C stops the server.

    scratchformers serve outputs/my-chat --port 8000
    curl localhost:8000/v1/chat/completions -H 'content-type: application/json' \\
        -d '{"model": "outputs/my-chat", "messages": [{"role": "user", "content": "Hi"}]}'
"""


class ServeError(ValueError):
    """A reason `serve` cannot start, told as one `error:` line (exit status 2)."""


def missing_packages() -> list[str]:
    """The packages of `SERVE_PACKAGES` this environment lacks."""
    return [name for name in SERVE_PACKAGES if importlib.util.find_spec(name) is None]


def no_server() -> str | None:
    """Why the installed transformers cannot serve (a sentence naming what is needed), or None when it can: decided
    by whether it has the server's command (`transformers.cli.serve`), never by its version number."""
    if importlib.util.find_spec("transformers") is None:
        return "serve needs transformers"
    if importlib.util.find_spec("transformers.cli") is None or importlib.util.find_spec("transformers.cli.serve") is None:
        return ("this transformers has no OpenAI-compatible server (no transformers.cli.serve, the `transformers serve` "
                "command); serve needs a transformers release that has one: pip install -U transformers")
    return None


# --------------------------------------------------------------------------------- flags: transformers' definitions


def server_parameters() -> list[tuple[str, Any, Any, Any]]:
    """(name, type, typer's Argument/Option info, default) of each parameter of transformers' `Serve` command, in its
    order, hidden ones left out; the type without `| None`. ServeError if it has no model argument (`force_model`)."""
    from transformers.cli.serve import Serve

    hints = typing.get_type_hints(Serve.__init__, include_extras=True)
    parameters = []
    for name, parameter in inspect.signature(Serve.__init__).parameters.items():
        if name == "self" or name not in hints:
            continue
        kind, info = hints[name], None
        if typing.get_origin(kind) is typing.Annotated:
            kind, info = typing.get_args(kind)[0], typing.get_args(kind)[1]
        if typing.get_origin(kind) in (typing.Union, types.UnionType):  # `int | None`: the int
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        if not getattr(info, "hidden", False):
            parameters.append((name, kind, info, parameter.default))
    if not any(name == "force_model" for name, *_ in parameters):
        raise ServeError("this transformers' `serve` command takes no model to preload (no FORCE_MODEL argument); "
                         "scratchformers serve needs one that does")
    return parameters


class _OneLineErrors(argparse.ArgumentParser):
    """An argparse parser whose mistakes raise ServeError (one `error:` line, exit status 2) instead of printing the
    whole usage first: transformers' server has two dozen flags."""

    def error(self, message: str) -> typing.NoReturn:
        raise ServeError(f"{message} (scratchformers serve --help lists the flags)")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The flags of `transformers serve`, built from its own definitions (`server_parameters()`: names, types,
    defaults, help): `--flag-name` (and a `--flag_name` twin, unlisted for switches), `--no-flag-name` for switches,
    an enum's values as choices. Its FORCE_MODEL argument is our required CHECKPOINT; `--model-timeout` (it unloads
    idle models other than that one, and a server started with a CHECKPOINT has none) is accepted but not listed."""
    parser = _OneLineErrors(prog=prog, usage=f"{prog} [-h] [FLAGS] CHECKPOINT", description=DESCRIPTION,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, kind, info, default in server_parameters():
        help_text = getattr(info, "help", None)
        if name == "force_model":
            parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint folder (save_pretrained, "
                                "with its tokenizer); requests name it as their `model`, as given here")
            continue
        dashed, twin = f"--{name.replace('_', '-')}", ([f"--{name}"] if "_" in name else [])
        if name == "model_timeout":
            help_text = argparse.SUPPRESS
        if kind is bool:
            parser.add_argument(dashed, dest=name, action=argparse.BooleanOptionalAction, default=default,
                                help=help_text)
            if twin:
                parser.add_argument(*twin, dest=name, action="store_true", help=argparse.SUPPRESS)
        elif isinstance(kind, type) and issubclass(kind, enum.Enum):  # its values; `serve` passes the member
            parser.add_argument(dashed, *twin, dest=name, choices=[member.value for member in kind],
                                default=kind(default).value, help=help_text)
        else:
            parser.add_argument(dashed, *twin, dest=name, type=kind if kind in (int, float) else str,
                                default=default, help=help_text)
    return parser


def checkpoint_problem(checkpoint: str) -> str | None:
    """What makes ``checkpoint`` unservable (a sentence), or None: it must be a folder with a config.json naming a
    decoder-only causal LM (…ForCausalLM), and a tokenizer."""
    if not os.path.isdir(checkpoint):
        return f"{checkpoint!r} is no folder here (serve takes a checkpoint folder written by save_pretrained)"
    config_path = os.path.join(checkpoint, "config.json")
    if not os.path.isfile(config_path):
        if os.path.isfile(os.path.join(checkpoint, "adapter_config.json")):
            return (f"{checkpoint!r} is a LoRA adapter; serve a plain checkpoint (`scratchformers train sft ... "
                    "--merge_lora` writes one)")
        return f"{checkpoint!r} is not a checkpoint folder (no config.json)"
    with open(config_path, encoding="utf-8") as fh:
        config = json.load(fh)
    architecture = (config.get("architectures") or [""])[0]
    if config.get("is_encoder_decoder") or not architecture.endswith("ForCausalLM"):
        return (f"serve needs a decoder-only causal language model (…ForCausalLM); {checkpoint} holds "
                f"{architecture or 'no architecture'}")
    if not any(os.path.isfile(os.path.join(checkpoint, name)) for name in ("tokenizer.json", "tokenizer_config.json")):
        return f"{checkpoint!r} has no tokenizer (save it beside the model: tokenizer.save_pretrained(folder))"
    return None


def check(argv: Sequence[str], prog: str = PROG) -> argparse.Namespace:
    """Parse `serve`'s flags and refuse what cannot be served, before anything heavy is imported (ServeError: a
    transformers without a server, a missing `[serve]` extra, a folder that is no causal LM with a tokenizer; argparse
    itself answers --help and flag mistakes)."""
    reason = no_server()
    if reason:
        raise ServeError(reason)
    args = build_parser(prog).parse_args(list(argv))
    missing = missing_packages()
    if missing:
        raise ServeError(f"serving needs {', '.join(missing)}, which this environment lacks: {INSTALL_HINT}")
    problem = checkpoint_problem(args.checkpoint)
    if problem:
        raise ServeError(problem)
    return args


# ------------------------------------------------------------------------------------ the loader transformers uses


def loader_base() -> tuple[str, type]:
    """The class of transformers' server that loads models (its `_load_model` does the `getattr(transformers,
    architecture)` lookup) and its name in `transformers.cli.serving.model_manager`: `ModelLoader` where models load in
    a process of their own, `ModelManager` where they load in the server's. Found by looking, not by version."""
    from transformers.cli.serving import model_manager

    for name in ("ModelLoader", "ModelManager"):
        candidate = getattr(model_manager, name, None)
        if isinstance(candidate, type) and callable(getattr(candidate, "_load_model", None)):
            return name, candidate
    raise ServeError("this transformers' server has no model loader to extend (neither ModelLoader nor ModelManager "
                     "in transformers.cli.serving.model_manager has a _load_model); serve needs one that does")


def expose_model_classes(namespace: types.ModuleType | None = None) -> list[str]:
    """Make `getattr(namespace, name)` find each scratchformers model class, in this process; returns the names set.
    ``namespace``: the `transformers` module object the server's lookup of `config.architectures[0]` reads (default:
    the one in sys.modules). Not always the same object: importing `transformers.processing_utils` runs
    transformers' `__init__` again and puts a new `transformers` module in sys.modules, so a module imported before
    (the server's model_manager) can hold another one than `import transformers` gives afterwards."""
    from transformers import PreTrainedModel

    import scratchformers

    namespace = sys.modules["transformers"] if namespace is None else namespace
    exposed = []
    for name in scratchformers.__all__:
        value = getattr(scratchformers, name)
        if isinstance(value, type) and issubclass(value, PreTrainedModel) and name not in vars(namespace):
            setattr(namespace, name, value)
            exposed.append(name)
    return exposed


def _thread_lock_for_progress_bars() -> None:
    """Give tqdm a thread lock before its first bar ("Loading weights"). Its default lock includes a multiprocessing
    lock, a named semaphore; the server stops the model's process with SIGTERM, which never releases it, and Python's
    resource tracker then warns of "leaked semaphore objects" as the server exits. No bar here crosses processes."""
    import threading

    from tqdm import tqdm

    if "_lock" not in vars(tqdm):
        tqdm.set_lock(threading.RLock())


def _make_loader_class() -> type:
    """`ScratchModelLoader`: transformers' model loader (`loader_base()`) whose `_load_model` exposes our classes
    first. Reached as this module's attribute (`__getattr__`), so the server can pickle an instance to the model's
    process, which imports this module (and so scratchformers, which registers our configs) to rebuild it."""
    _, base = loader_base()

    class ScratchModelLoader(base):
        """transformers' model loader, loading scratchformers checkpoints too (`expose_model_classes`)."""

        def _load_model(self, model_id: str, *args, **kwargs):
            """transformers' `_load_model`, after `expose_model_classes()` on the `transformers` module it reads."""
            _thread_lock_for_progress_bars()
            expose_model_classes(base._load_model.__globals__.get("transformers"))
            return super()._load_model(model_id, *args, **kwargs)

    ScratchModelLoader.__qualname__ = "ScratchModelLoader"  # where pickle looks for it: this module's attribute
    return ScratchModelLoader


def __getattr__(name: str) -> Any:
    """`ScratchModelLoader`, built on first use (transformers' serving code, and torch, are imported only then)."""
    if name == "ScratchModelLoader":
        globals()[name] = _make_loader_class()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@contextlib.contextmanager
def our_loader() -> Iterator[type]:
    """While inside, transformers' server builds a `ScratchModelLoader` where it builds its own loader (it imports the
    class from `transformers.cli.serving.model_manager` as it starts); put back on the way out."""
    from transformers.cli.serving import model_manager

    name, original = loader_base()
    loader = sys.modules[__name__].ScratchModelLoader
    setattr(model_manager, name, loader)
    try:
        yield loader
    finally:
        setattr(model_manager, name, original)


class _OneStopLine(logging.Filter):
    """Drops uvicorn's four shutdown lines ("Shutting down", …, "Finished server process [N]"): the command says
    "stopped" in one line instead. Every other line (start-up, requests, errors) passes."""

    SHUTDOWN = ("Shutting down", "Waiting for application shutdown", "Application shutdown complete",
                "Finished server process")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.SHUTDOWN)


# ------------------------------------------------------------------------------------------------------- the command


def serve(args: argparse.Namespace) -> int:
    """Run transformers' server (`transformers.cli.serve.Serve`) with ``args`` (from `check`) and our loader until it
    stops; returns 0 (after one line, "stopped"). Ctrl-C raises KeyboardInterrupt (uvicorn stops the server first,
    then raises the signal again; the front end turns it into one line and exit status 130); ServeError (one
    `error:` line) when the server cannot start, e.g. the model fails to load."""
    from transformers.cli.serve import Serve

    import scratchformers  # noqa: F401  (registers our configs: this process reads the config and tokenizer too)

    kinds = {name: kind for name, kind, *_ in server_parameters()}
    settings = {name: kinds[name](value) if isinstance(kinds[name], enum.EnumMeta) else value
                for name, value in vars(args).items() if name != "checkpoint"}
    quiet = _OneStopLine()
    logging.getLogger("uvicorn.error").addFilter(quiet)
    try:
        with our_loader():
            Serve(force_model=args.checkpoint, **settings)
    except RuntimeError as err:  # e.g. "The model's process stopped while loading the model."
        raise ServeError(f"the server stopped: {' '.join(str(err).split())}") from err
    finally:
        logging.getLogger("uvicorn.error").removeFilter(quiet)
    print(f"{PROG}: stopped", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`scratchformers serve [FLAGS] CHECKPOINT`: `check`, then `serve`; returns the exit status."""
    return serve(check(sys.argv[1:] if argv is None else argv))
