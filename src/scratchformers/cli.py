"""The `scratchformers` console command: demo, train, generate, evaluate, attention plots, push, convert.

    scratchformers demo                                    # tokenizer + small GPT, end to end, offline
    scratchformers train clm --train_file my.txt --output_dir outputs/mine --max_steps 500
    scratchformers generate outputs/mine --prompt "Once upon a time"
    scratchformers evaluate outputs/mine --file my-val.txt
    scratchformers attention outputs/mine --text "Any sentence" --output attention.png
    scratchformers push outputs/mine --repo-id your-name/my-gpt
    scratchformers translate --model outputs/transformer-en-de "Open file" "Cancel"
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Sequence

from .examples import SCRIPTS


def _parser() -> argparse.ArgumentParser:
    """All subcommands and their flags (training flags belong to the scripts: `train clm --help`)."""
    parser = argparse.ArgumentParser(
        prog="scratchformers", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="train, evaluate, save, reload, generate and plot, offline, in minutes")
    demo.add_argument("--family", choices=("gpt", "bert", "translation"), default="gpt")
    demo.add_argument("--output-dir", default="outputs/demo", help="where the checkpoint, plots and results go")
    demo.add_argument("--max-steps", type=int, default=400, help="optimizer steps (400 ≈ a few minutes on 2 cores)")
    demo.add_argument("--config", default=None, help="a model config JSON (default: the family's tiny config)")
    demo.add_argument("--seed", type=int, default=0)

    train = commands.add_parser(
        "train", help="run a training script: clm | mlm | translation | classification (then the script's flags)",
        add_help=False,
    )
    train.add_argument("task", choices=tuple(SCRIPTS), help="which script; `train clm --help` lists its flags")
    train.add_argument("script_args", nargs=argparse.REMAINDER)

    generate = commands.add_parser("generate", help="continue a prompt with a causal LM (or fill [MASK] with a BERT)")
    generate.add_argument("checkpoint")
    generate.add_argument("--prompt", required=True, action="append", help="repeat for several prompts")
    generate.add_argument("--max-new-tokens", type=int, default=None, help="default: the checkpoint's, else 50")
    generate.add_argument("--greedy", action="store_true", help="greedy decoding instead of sampling")
    generate.add_argument("--temperature", type=float, default=None, help="default: the checkpoint's, else 0.8")
    generate.add_argument("--top-k", type=int, default=None, help="default: the checkpoint's, else 40")
    generate.add_argument("--top-p", type=float, default=None)
    generate.add_argument("--num-beams", type=int, default=None)
    generate.add_argument("--seed", type=int, default=0)

    evaluate = commands.add_parser("evaluate", help="perplexity (causal LM, text file) or accuracy (classifier, CSV)")
    evaluate.add_argument("checkpoint")
    evaluate.add_argument("--file", default=None, help="default: data/prose/validation.txt or the classification CSV")
    evaluate.add_argument("--block-size", type=int, default=128)
    evaluate.add_argument("--batch-size", type=int, default=16)

    attention = commands.add_parser("attention", help="plot a layer × head attention grid for any sentence")
    attention.add_argument("checkpoint")
    attention.add_argument("--text", required=True, help="the (source) sentence")
    attention.add_argument("--target", default=None, help="the target sentence (encoder-decoder models)")
    attention.add_argument("--kind", choices=("self", "encoder", "decoder", "cross"), default="self")
    attention.add_argument("--output", default="attention.png")

    tr = commands.add_parser("translate", help="translate texts with a saved seq2seq model (beam search)")
    tr.add_argument("texts", nargs="*", help="texts to translate; read from stdin, one a line, when none are given")
    tr.add_argument("--model", required=True, help="a folder saved by save_pretrained (model + tokenizer)")
    tr.add_argument("--tokenizer", default=None, help="a tokenizer folder (default: the model folder)")
    tr.add_argument("--num-beams", type=int, default=None, help="default: the checkpoint's, else 4")
    tr.add_argument("--max-new-tokens", type=int, default=None, help="default: the checkpoint's, else 128")
    tr.add_argument("--batch-size", type=int, default=16)
    tr.add_argument("--trust-remote-code", action="store_true")

    push = commands.add_parser("push", help="push a checkpoint folder to the Hugging Face Hub", add_help=False)
    push.add_argument("push_args", nargs=argparse.REMAINDER)

    convert = commands.add_parser("convert", help="convert weights from other implementations", add_help=False)
    convert.add_argument("convert_args", nargs=argparse.REMAINDER)
    return parser


def _config(checkpoint: str) -> dict:
    """The checkpoint's config.json (ValueError naming the folder if there is none)."""
    path = os.path.join(checkpoint, "config.json")
    if not os.path.isfile(path):
        raise ValueError(f"{checkpoint!r} is not a checkpoint folder (no config.json)")
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _generate(args: argparse.Namespace) -> int:
    """Print a continuation per prompt; a tqdm bar counts generated tokens. [MASK] prompts go to fill-mask."""
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, StoppingCriteriaList, pipeline

    import scratchformers  # noqa: F401

    config = _config(args.checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint, trust_remote_code=True)
    if config.get("is_encoder_decoder"):
        if importlib.util.find_spec("scratchformers.translate") is None:
            print("error: this is an encoder-decoder checkpoint; translation needs scratchformers.translate",
                  file=sys.stderr)
            return 2
        from transformers import AutoModelForSeq2SeqLM

        from .translate import translate

        model = AutoModelForSeq2SeqLM.from_pretrained(args.checkpoint, trust_remote_code=True).eval()
        for source, target in zip(args.prompt, translate(args.prompt, model, tokenizer, num_beams=args.num_beams,
                                                          max_new_tokens=args.max_new_tokens)):
            print(f"{source}\n→ {target}")
        return 0
    if tokenizer.mask_token and any(tokenizer.mask_token in p for p in args.prompt):
        fill = pipeline("fill-mask", model=args.checkpoint, tokenizer=tokenizer, trust_remote_code=True)
        for prompt in args.prompt:
            for guess in fill(prompt):
                print(f"{guess['score']:.3f}  {guess['sequence']}")
        return 0

    class Progress(StoppingCriteria):
        """Advances a tqdm bar by one per generated token; never stops generation itself."""

        def __init__(self, bar: tqdm):
            self.bar = bar

        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
            self.bar.update(1)
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    from .translate import generate_command_settings

    model = AutoModelForCausalLM.from_pretrained(args.checkpoint, trust_remote_code=True).eval()
    for prompt in args.prompt:
        torch.manual_seed(args.seed)
        inputs = tokenizer(prompt, return_tensors="pt")
        settings = generate_command_settings(model, args.max_new_tokens, args.greedy, args.temperature, args.top_k,
                                             args.top_p, args.num_beams)  # the checkpoint's generation_config first
        with tqdm(total=settings.get("max_new_tokens"), desc="Generating", unit="tok", leave=False) as bar:
            output = model.generate(
                **inputs,
                **settings,
                pad_token_id=tokenizer.pad_token_id,
                stopping_criteria=StoppingCriteriaList([Progress(bar)]),
            )
        print(tokenizer.decode(output[0], skip_special_tokens=True))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    """Print perplexity (causal LM) or accuracy (sequence classifier) as JSON."""
    from .data import resolve_data_dir
    from .examples import evaluate

    architectures = _config(args.checkpoint).get("architectures") or [""]
    if architectures[0].endswith("ForSequenceClassification"):
        file = args.file or str(resolve_data_dir() / "classification" / "validation.csv")
        result = evaluate.accuracy(args.checkpoint, file, batch_size=args.batch_size)
    elif architectures[0].endswith("ForCausalLM"):
        file = args.file or str(resolve_data_dir() / "prose" / "validation.txt")
        result = evaluate.perplexity(args.checkpoint, file, block_size=args.block_size, batch_size=args.batch_size)
    else:
        print(f"error: evaluate supports causal LMs and sequence classifiers, not {architectures[0] or '?'}",
              file=sys.stderr)
        return 2
    print(json.dumps({"checkpoint": args.checkpoint, "file": file, **result}, indent=2))
    return 0


def _attention(args: argparse.Namespace) -> int:
    """Save the attention grid of ``--text`` for the checkpoint's model."""
    import transformers

    import scratchformers  # noqa: F401

    from . import viz

    config = _config(args.checkpoint)
    auto_map = config.get("auto_map", {})
    name = next((n for n in auto_map if n.startswith("AutoModelFor")), "AutoModel")
    model = getattr(transformers, name).from_pretrained(
        args.checkpoint, trust_remote_code=True, attn_implementation="eager"
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(args.checkpoint, trust_remote_code=True)
    path = viz.plot_attention(model, tokenizer, args.text, args.output, target_text=args.target, kind=args.kind)
    print(f"saved {path}")
    return 0


def _dispatch_passthrough(command: str, rest: list[str]) -> int:
    """`push` → scratchformers.examples.push_to_hub; `convert` → scratchformers.convert (if this install has it)."""
    if command == "push":
        from .examples.push_to_hub import main as push_main

        return push_main(rest, prog="scratchformers push")
    if importlib.util.find_spec("scratchformers.convert") is None:
        print("error: `convert` needs scratchformers.convert, which this install does not have", file=sys.stderr)
        return 2
    from . import convert

    result = convert.main(rest)
    return result if isinstance(result, int) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `scratchformers` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"] and len(argv) >= 2 and argv[1] in SCRIPTS:  # everything after the task is the script's
        from .examples import load_script

        result = load_script(argv[1])(argv[2:])
        return result if isinstance(result, int) else 0
    if argv[:1] in (["push"], ["convert"]):  # their flags belong to their own parsers
        return _dispatch_passthrough(argv[0], argv[1:])
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import run_demo

            run_demo(output_dir=args.output_dir, max_steps=args.max_steps, family=args.family, config=args.config,
                     seed=args.seed)
            return 0
        if args.command == "generate":
            return _generate(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "attention":
            return _attention(args)
        if args.command == "translate":
            return _translate_command(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _translate_command(args: argparse.Namespace) -> int:
    """Load model + tokenizer, translate the given texts (or stdin lines), print one translation a line."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from .translate import translate

    texts = args.texts or [line.rstrip("\n") for line in sys.stdin]
    model = AutoModelForSeq2SeqLM.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or args.model, trust_remote_code=args.trust_remote_code)
    for line in translate(
        texts, model, tokenizer, batch_size=args.batch_size, num_beams=args.num_beams, max_new_tokens=args.max_new_tokens
    ):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
