"""Train a tokenizer on local files and save it for ``AutoTokenizer.from_pretrained``.

    python scripts/train_tokenizer.py --files data/prose/train.txt --kind bpe --vocab_size 8000 --output_dir tok-gpt
    python scripts/train_tokenizer.py --files data/translation/en-de/train.jsonl --kind seq2seq_bpe \\
        --vocab_size 8000 --output_dir tok-en-de
"""

import argparse

from scratchformers.tokenization import TOKENIZER_KINDS, train_tokenizer


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, train the tokenizer and save it to ``--output_dir``."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--files", nargs="+", required=True, help="text files (one text per line) or translation .jsonl"
    )
    parser.add_argument("--kind", choices=TOKENIZER_KINDS, required=True, help="tokenizer family")
    parser.add_argument("--vocab_size", type=int, required=True, help="vocabulary size, special tokens included")
    parser.add_argument("--output_dir", required=True, help="folder to save the tokenizer in")
    parser.add_argument("--min_frequency", type=int, default=2, help="minimum pair frequency to merge (BPE/WordPiece)")
    parser.add_argument("--model_max_length", type=int, default=1024, help="longest sequence the model accepts")
    args = parser.parse_args(argv)
    tokenizer = train_tokenizer(
        args.files,
        args.kind,
        args.vocab_size,
        save_dir=args.output_dir,
        min_frequency=args.min_frequency,
        model_max_length=args.model_max_length,
    )
    print(f"saved a {args.kind} tokenizer with {len(tokenizer)} tokens to {args.output_dir}")


if __name__ == "__main__":
    main()
