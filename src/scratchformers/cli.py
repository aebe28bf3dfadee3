"""The `scratchformers` console command."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    """Entry point: `scratchformers demo [--max-steps N] [--output-dir DIR]`,
    `scratchformers translate --model DIR [TEXT ...]` (texts from stdin, one a line, when none are given)."""
    parser = argparse.ArgumentParser(prog="scratchformers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train a tokenizer and a small GPT on shipped prose, save, reload, generate")
    demo.add_argument("--output-dir", default="outputs/demo")
    demo.add_argument("--max-steps", type=int, default=600)
    demo.add_argument("--config", default=None, help="a GPT config JSON (default: configs/gpt-tiny.json)")
    tr = commands.add_parser("translate", help="translate texts with a saved seq2seq model (beam search)")
    tr.add_argument("texts", nargs="*", help="texts to translate; read from stdin, one a line, when none are given")
    tr.add_argument("--model", required=True, help="a folder saved by save_pretrained (model + tokenizer)")
    tr.add_argument("--tokenizer", default=None, help="a tokenizer folder (default: the model folder)")
    tr.add_argument("--num-beams", type=int, default=4)
    tr.add_argument("--max-new-tokens", type=int, default=128)
    tr.add_argument("--batch-size", type=int, default=16)
    tr.add_argument("--trust-remote-code", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "translate":
        return _translate_command(args)
    if args.command == "demo":
        from .demo import run_demo

        run_demo(output_dir=args.output_dir, max_steps=args.max_steps, config=args.config)
    return 0


def _translate_command(args: argparse.Namespace) -> int:
    """Load model + tokenizer, translate the given texts (or stdin lines), print one translation a line."""
    import sys

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
