"""`scratchformers serve`, the light part: `transformers serve`'s flags read from its own definitions (the annotated
parameters of `transformers.cli.serve.Serve`), and the checks made before anything heavy is imported — a transformers
without a server, a missing `[serve]` extra, a folder that is no causal LM with a tokenizer, a bad flag — each one
`error:` line. The server itself runs in `scratchformers.serve`.

Imports only the standard library; `build_parser` (so `check` and `serve --help`) imports `transformers.cli.serve`
when called, for the flags: transformers' light CLI module (5.25's imports no torch; 5.13's does).
"""

from __future__ import annotations

import argparse
import enum
import importlib.util
import inspect
import json
import os
import types
import typing
from collections.abc import Sequence
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
    """Parse `serve`'s flags and refuse what cannot be served, before anything heavy is imported: ServeError (one
    `error:` line) for a transformers without a server, a bad flag, a missing `[serve]` extra, a folder that is no
    causal LM with a tokenizer. `--help` prints the flags and exits (SystemExit 0), as argparse does."""
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
