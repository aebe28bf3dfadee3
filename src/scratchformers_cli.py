"""The `scratchformers` console command: demo, train, generate, chat, evaluate, attention, translate, push, convert,
serve, export.

    scratchformers demo                                    # tokenizer + small GPT, end to end, offline
    scratchformers train clm --train_file my.txt --output_dir outputs/mine --max_steps 500
    scratchformers generate outputs/mine --prompt "Once upon a time"
    scratchformers chat outputs/my-llama                   # the tokenizer's chat template; /reset, /exit
    scratchformers evaluate outputs/mine                   # the data it was validated on (or --file other.txt)
    scratchformers attention outputs/mine --text "Any sentence" --output attention.png
    scratchformers push outputs/mine --repo-id your-name/my-gpt
    scratchformers translate --model outputs/transformer-en-de "Open file" "Cancel"
    scratchformers serve outputs/my-chat --port 8000          # OpenAI-compatible server (transformers serve)
    scratchformers export outputs/mine outputs/mine-gguf --format gguf   # llama.cpp; or onnx, executorch

Flags accept both spellings (--max-steps and --max_steps). A mistake in the flags or files ends with one
`error:` line and exit status 2, Ctrl-C with one line and status 130; `scratchformers --debug COMMAND ...` shows the
full traceback instead.
"""

# This module is deliberately outside the `scratchformers` package: importing the package registers every model
# with transformers (torch and all), which takes seconds. `--help` and argument errors are answered from here, with
# the names and flags of `scratchformers_light` (standard library only); the package (scratchformers.cli) is imported
# only once a command really runs.

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from scratchformers_light import arguments, serve
from scratchformers_light.names import DEMO_FAMILIES, QUANTIZATION_METHODS

TASKS = tuple(arguments.TASKS)  # the training tasks
PASSTHROUGH = ("push", "convert", "serve")  # their flags belong to their own parsers
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError)
INTERRUPTED = 130  # the exit status of a command stopped by Ctrl-C (SIGINT): 128 + 2, as shells report it


def _option(parser: argparse.ArgumentParser, name: str, **kwargs) -> None:
    """Add ``--name-with-dashes`` and its ``--name_with_underscores`` twin (the training scripts' spelling)."""
    dashed = f"--{name.replace('_', '-')}"
    names = [dashed] if "-" not in name and "_" not in name else [dashed, f"--{name.replace('-', '_')}"]
    parser.add_argument(*names, dest=name.replace("-", "_"), **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """All subcommands and their flags (training flags belong to the scripts: `train clm --help`)."""
    parser = argparse.ArgumentParser(
        prog="scratchformers", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks instead of one error line")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="train, evaluate, save, reload, generate and plot, offline, in minutes")
    demo.add_argument("--family", choices=DEMO_FAMILIES, default="gpt")
    _option(demo, "output-dir", default=None,
            help="where the checkpoint, plots and results go (default: outputs/demo-FAMILY); must be new or empty")
    _option(demo, "overwrite", action="store_true", help="replace the contents of an existing --output-dir")
    _option(demo, "max-steps", type=int, default=400, help="optimizer steps (400 ≈ a few minutes on 2 cores)")
    _option(demo, "config", default=None, help="a model config JSON (default: the family's tiny config)")
    _option(demo, "seed", type=int, default=0)

    commands.add_parser(
        "train", help=f"run a training script: {' | '.join(TASKS)} (then the script's flags)", add_help=False
    )

    generate = commands.add_parser("generate", help="continue a prompt with a causal LM (or fill [MASK] with a BERT)")
    generate.add_argument("checkpoint")
    _option(generate, "prompt", required=True, action="append", help="repeat for several prompts")
    _option(generate, "max-new-tokens", type=int, default=None, help="default: the checkpoint's, else 50")
    _option(generate, "greedy", action="store_true", help="greedy decoding instead of sampling")
    _option(generate, "temperature", type=float, default=None, help="default: the checkpoint's, else 0.8")
    _option(generate, "top-k", type=int, default=None, help="default: the checkpoint's, else 40")
    _option(generate, "top-p", type=float, default=None)
    _option(generate, "num-beams", type=int, default=None)
    _option(generate, "seed", type=int, default=0)

    chat = commands.add_parser(
        "chat", help="chat with a causal LM (its tokenizer's chat template), replies streamed as they are generated",
        description="Chat with a causal LM. Reads your messages from stdin, one a line, and streams each reply; the "
        "whole conversation goes into the next prompt (rendered with the tokenizer's chat template). Type /reset "
        "to start over, /exit (or end of input) to stop. --prompt asks one question and exits.",
    )
    chat.add_argument("checkpoint")
    _option(chat, "prompt", default=None, help="one-shot: answer this message, print the answer and exit")
    _option(chat, "system", default=None, help="a system prompt at the head of the conversation")
    _option(chat, "chat-template", default=None, metavar="FILE",
            help="a Jinja chat template file to use instead of the tokenizer's (needed when it has none)")
    _option(chat, "max-new-tokens", type=int, default=None, help="per reply; default: the checkpoint's, else 50")
    _option(chat, "greedy", action="store_true", help="greedy decoding instead of sampling")
    _option(chat, "temperature", type=float, default=None, help="default: the checkpoint's, else 0.8")
    _option(chat, "top-k", type=int, default=None, help="default: the checkpoint's, else 40")
    _option(chat, "top-p", type=float, default=None)
    _option(chat, "seed", type=int, default=0)
    _option(chat, "no-stream", action="store_true", help="print each reply when it is complete, not token by token")
    _option(chat, "static-cache", action="store_true",
            help="decode with a fixed-size key/value cache (transformers' cache_implementation=\"static\")")
    _option(chat, "compile", action="store_true",
            help="static cache + each decoding step torch.compile'd to one graph (inductor); the first reply waits "
                 "for the compilation (tens of seconds on a CPU)")
    _option(chat, "column-major-weights", action="store_true",
            help="store each Linear weight transposed in memory (the same values): faster matrix-vector products "
                 "at batch 1 on a CPU (scratchformers.fast_decoding.column_major_weights)")
    _option(chat, "quantize", default=None, choices=QUANTIZATION_METHODS,
            help="store the Linear weights as int8 (torchao, pip install \"scratchformers[quant]\"); replies may "
                 "differ slightly from float32")

    evaluate = commands.add_parser("evaluate", help="perplexity (causal LM, text file) or accuracy (classifier, CSV)")
    evaluate.add_argument("checkpoint")
    _option(evaluate, "file", default=None,
            help="the data to score (default: what the checkpoint was validated on in training, from its "
                 "training_data.json)")
    _option(evaluate, "block-size", type=int, default=None,
            help="tokens per block for perplexity (default: the block size it was trained with)")
    _option(evaluate, "batch-size", type=int, default=16)

    attention = commands.add_parser("attention", help="plot a layer × head attention grid for any sentence")
    attention.add_argument("checkpoint")
    _option(attention, "text", required=True, help="the (source) sentence")
    _option(attention, "target", default=None, help="the target sentence (encoder-decoder models)")
    _option(attention, "kind", choices=("self", "encoder", "decoder", "cross"), default="self")
    _option(attention, "output", default="attention.png")

    tr = commands.add_parser("translate", help="translate texts with a saved seq2seq model (beam search)")
    tr.add_argument("texts", nargs="*", help="texts to translate; read from stdin, one a line, when none are given")
    _option(tr, "model", required=True, help="a folder saved by save_pretrained (model + tokenizer)")
    _option(tr, "tokenizer", default=None, help="a tokenizer folder (default: the model folder)")
    _option(tr, "num-beams", type=int, default=None, help="default: the checkpoint's, else 4")
    _option(tr, "max-new-tokens", type=int, default=None, help="default: the checkpoint's, else 128")
    _option(tr, "batch-size", type=int, default=16)
    _option(tr, "trust-remote-code", action="store_true")

    export = commands.add_parser(
        "export", help="write a causal LM for llama.cpp (GGUF), onnxruntime (ONNX) or ExecuTorch (.pte)",
        description="Export a decoder-only causal LM of ours (GPT-2, Llama, Qwen2, Mistral style) into OUTPUT (a "
        "folder): --format gguf writes <name>-<outtype>.gguf with the tokenizer and chat template in its metadata; "
        "--format onnx writes model.onnx (inputs input_ids, attention_mask, position_ids, past_key_values.N.key/value; "
        "outputs logits, present.N.key/value) with config and tokenizer; --format executorch writes model.pte (one "
        "token per call, static cache). Needs pip install \"scratchformers[export]\" (executorch: "
        "\"scratchformers[executorch]\").",
    )
    export.add_argument("checkpoint", help="a folder saved by save_pretrained (a LoRA adapter folder is merged first)")
    export.add_argument("output", help="folder to write into (created; must be new or empty unless --overwrite)")
    _option(export, "format", required=True, choices=("gguf", "onnx", "executorch"),
            help="gguf (llama.cpp, Ollama), onnx (onnxruntime), executorch (ExecuTorch's runtime, XNNPACK)")
    _option(export, "outtype", default=None, choices=("f32", "f16", "bf16", "q8_0"),
            help="GGUF weight type (default f16; 1-D tensors and norms stay f32); ONNX, ExecuTorch: f32 only")
    _option(export, "max-cache-len", type=int, default=None,
            help="ExecuTorch: positions of the static KV cache, prompt + answer (default 1024, at most the model's)")
    _option(export, "overwrite", action="store_true", help="replace the contents of an existing OUTPUT")

    commands.add_parser("push", help="push a checkpoint folder to the Hugging Face Hub", add_help=False)
    commands.add_parser("convert", help="convert weights from other implementations", add_help=False)
    commands.add_parser("serve", help="serve a causal LM with transformers' OpenAI-compatible server "
                        "(/v1/chat/completions, /v1/completions, /v1/models; `transformers serve`'s flags)",
                        add_help=False)
    return parser


TRAIN_HELP = f"""usage: scratchformers train {{{','.join(TASKS)}}} [FLAGS ...]

Run one of the training scripts (Hugging Face examples style) on your files:

    scratchformers train clm --train_file my.txt --output_dir outputs/my-gpt --max_steps 500
    scratchformers train classification --train_file my.csv --output_dir outputs/my-clf
    scratchformers train sft --train_file chats.jsonl --model_name_or_path outputs/my-gpt --output_dir outputs/my-chat
    scratchformers train dpo --train_file prefs.jsonl --model_name_or_path outputs/my-chat --output_dir outputs/my-dpo

Without --validation_file, a seeded part of --train_file is held out for validation. An existing, non-empty
--output_dir is refused unless you pass --overwrite_output_dir (replace it) or --resume_from_checkpoint (continue
from its last checkpoint; or give a checkpoint folder's path).
`scratchformers train TASK --help` lists every flag of that script (and of TrainingArguments).
"""


HELP_FLAGS = ("-h", "--help")
# Packages transformers' TrainingArguments imports when they are installed, though no flag needs them: peft (through
# trainer_utils) imports transformers' model registry, ~6 s. The help process hides them (it exits after printing).
OPTIONAL_HEAVY = ("peft",)


PACKAGE = Path(__file__).resolve().parent / "scratchformers"


def _light_help(argv: list[str]) -> bool:
    """Print the help of `train TASK --help`, `push --help` or `convert --help` without importing the package, a
    model or `datasets`. `train TASK --help` prints the committed, pre-rendered text when it was rendered under this
    Python's major.minor and the same transformers argument sources, whatever transformers' version number
    (``arguments.help_key``; else the live parser answers: transformers and torch, about 2 s); the others are built
    from the flag definitions, which their commands parse with. Returns whether it printed one."""
    if not any(a in HELP_FLAGS for a in argv[1:]):
        return False
    hidden = [name for name in OPTIONAL_HEAVY if name not in sys.modules]
    for name in hidden:  # (a None entry makes importlib.util.find_spec answer "not installed")
        sys.modules[name] = None
    try:
        return _print_light_help(argv)
    finally:  # a caller in the same process (a test, a notebook) can still import them afterwards
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def _print_light_help(argv: list[str]) -> bool:
    """``_light_help``'s printing, with the optional heavy packages hidden."""
    if argv[0] == "train" and len(argv) > 1 and argv[1] in TASKS:
        text = arguments.prerendered_help(f"train {argv[1]}")
        if text is not None:
            sys.stdout.write(text)
        else:
            arguments.task_parser(argv[1], prog=f"scratchformers train {argv[1]}").print_help()
        return True
    if argv[0] == "push":
        arguments.push_parser("scratchformers push").print_help()
        return True
    if argv[0] == "convert" and (PACKAGE / "convert.py").is_file():
        arguments.convert_parser("scratchformers convert").print_help()
        return True
    return False


def _user_error(err: Exception, debug: bool) -> int:
    """A user's mistake as one ``error:`` line on stderr and exit status 2 (re-raised with ``--debug``)."""
    if debug:
        raise err
    message = " ".join(str(err).split()) or type(err).__name__
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `scratchformers` command; returns the exit status (2 for a user mistake)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    command = argv[0] if argv else None
    try:
        helped = bool(command) and _light_help(argv)
    except USER_ERRORS as err:  # e.g. `train dpo --help` without trl, whose flags it is
        return _user_error(err, debug)
    if helped:
        raise SystemExit(0)  # as argparse's own --help does
    if command == "train":
        if len(argv) == 1 or argv[1] in ("-h", "--help"):
            print(TRAIN_HELP, end="")
            return 0
        if argv[1] not in TASKS:
            parser.error(f"unknown training task {argv[1]!r}; choose from {', '.join(TASKS)}")  # exit 2
        args = argparse.Namespace(command="train", task=argv[1], rest=argv[2:])
    elif command in PASSTHROUGH:
        args = argparse.Namespace(command=command, rest=argv[1:])
    else:
        args = parser.parse_args(argv)  # --help and flag mistakes are answered here, before any heavy import
    try:
        if command == "serve":  # its --help, flag mistakes, a missing [serve] extra or a wrong folder: answered light
            serve.check(argv[1:])
        from scratchformers.cli import run

        return run(args)
    except USER_ERRORS as err:
        return _user_error(err, debug)
    except KeyboardInterrupt:  # Ctrl-C: one line, and the shell's status for SIGINT (128 + 2), not a traceback
        if debug:
            raise
        fresh_line = "\n" if sys.stderr is not None and sys.stderr.isatty() else ""  # (after the terminal's ^C)
        print(f"{fresh_line}interrupted (Ctrl-C)", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
