"""`scratchformers serve CHECKPOINT`: transformers' own OpenAI-compatible server (the server of `transformers serve`)
on our checkpoints — POST `/v1/chat/completions` and `/v1/completions` (streamed or not), GET `/v1/models` and
`/health` — with its flags (`--host`, `--port`, `--device`, `--dtype`, `--continuous-batching`, …), read from its own
definitions (`scratchformers_light.serve`, which also makes the checks that need no torch).

Why a command of our own: transformers' server loads a checkpoint with `getattr(transformers,
config.architectures[0]).from_pretrained(...)` (`transformers/cli/serving/model_manager.py`, `_load_model`), which
finds only transformers' own classes: `transformers serve CHECKPOINT --trust-remote-code` stops with "module
transformers has no attribute ScratchGPTForCausalLM". Here the server runs unchanged but for one class: its model
loader (`ModelLoader`; `ModelManager` in releases that load models in the server's own process) is a subclass,
`ScratchModelLoader`, whose `_load_model` first sets our model classes as attributes of the `transformers` module
that lookup reads, in the process that loads the model, then runs transformers' `_load_model`. No file of
transformers changes, and the substitution lasts while the command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import gc
import logging
import sys
import types
from collections.abc import Iterator, Sequence
from typing import Any

from scratchformers_light.serve import PROG, ServeError, check, server_parameters

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
        """transformers' model loader, loading scratchformers checkpoints too (`expose_model_classes`).

        `compile_off_cuda` (set from `--compile` by `serve` before the server builds its loader; copied onto each
        instance, which is what reaches the model's process): transformers' `--compile` decodes with a static cache
        and compiles the decoding step by itself only on CUDA; with this the loaded model's generation config carries
        `fast_decoding.compile_config`, so the step is compiled on a CPU too."""

        compile_off_cuda = False

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.compile_off_cuda = type(self).compile_off_cuda  # an instance attribute: pickled with the loader

        def _load_model(self, model_id: str, *args, **kwargs):
            """transformers' `_load_model`, after `expose_model_classes()` on the `transformers` module it reads."""
            _thread_lock_for_progress_bars()
            expose_model_classes(base._load_model.__globals__.get("transformers"))
            model = super()._load_model(model_id, *args, **kwargs)
            if getattr(self, "compile_off_cuda", False) and model.device.type != "cuda":
                from .fast_decoding import compile_config

                model.generation_config.compile_config = compile_config(model.device.type)
            return model

    ScratchModelLoader.__qualname__ = "ScratchModelLoader"  # where pickle looks for it: this module's attribute
    return ScratchModelLoader


def __getattr__(name: str) -> Any:
    """`ScratchModelLoader`, built on first use (transformers' serving code, and torch, are imported only then)."""
    if name == "ScratchModelLoader":
        globals()[name] = _make_loader_class()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@contextlib.contextmanager
def our_loader(compile_off_cuda: bool = False) -> Iterator[type]:
    """While inside, transformers' server builds a `ScratchModelLoader` where it builds its own loader (it imports the
    class from `transformers.cli.serving.model_manager` as it starts); put back on the way out. `compile_off_cuda`:
    the loader's (`--compile`: compile the decoding step on a CPU too)."""
    from transformers.cli.serving import model_manager

    name, original = loader_base()
    loader = sys.modules[__name__].ScratchModelLoader
    loader.compile_off_cuda = compile_off_cuda
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
        with our_loader(compile_off_cuda=bool(getattr(args, "compile", False))):
            Serve(force_model=args.checkpoint, **settings)
    except RuntimeError as err:  # e.g. "The model's process stopped while loading the model."
        raise ServeError(f"the server stopped: {' '.join(str(err).split())}") from err
    except SystemExit as done:  # with several API servers (--api-server-count) Ctrl-C exits through sys.exit(0)
        if done.code not in (0, None):
            raise
    finally:
        logging.getLogger("uvicorn.error").removeFilter(quiet)
        # transformers' server freezes the garbage collector once it is built (`gc.freeze()`, serving/utils.py), so
        # nothing alive then is freed at exit; with a CUDA build of torch that includes triton's nanobind objects,
        # and nanobind prints hundreds of "leaked" lines after our one line. Unfrozen, the exit frees them.
        gc.unfreeze()
    print(f"{PROG}: stopped", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`scratchformers serve [FLAGS] CHECKPOINT`: `check`, then `serve`; returns the exit status."""
    return serve(check(sys.argv[1:] if argv is None else argv))
