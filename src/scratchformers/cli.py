"""The `scratchformers` console command."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    """Entry point: `scratchformers demo [--max-steps N] [--output-dir DIR]`."""
    parser = argparse.ArgumentParser(prog="scratchformers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train a tokenizer and a small GPT on shipped prose, save, reload, generate")
    demo.add_argument("--output-dir", default="outputs/demo")
    demo.add_argument("--max-steps", type=int, default=600)
    demo.add_argument("--config", default=None, help="a GPT config JSON (default: configs/gpt-tiny.json)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        run_demo(output_dir=args.output_dir, max_steps=args.max_steps, config=args.config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
