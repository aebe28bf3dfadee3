"""Push a checkpoint folder (weights, config with auto_map, code, tokenizer, model card) to the Hugging Face Hub.

The folder is checked first (scratchformers.hub.check_upload_complete); without a token (--token, $HF_TOKEN or
`hf auth login`), in offline mode or with the Hub unreachable, the push stops before creating anything.

    scratchformers push outputs/demo-gpt/checkpoint --repo-id your-name/scratch-gpt-demo
    python scripts/push_to_hub.py outputs/demo-gpt/checkpoint --repo-id your-name/scratch-gpt-demo --public
    python scripts/push_to_hub.py outputs/demo-gpt/checkpoint --check   # only list what is missing
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from scratchformers_light.arguments import push_parser

from ..hub import HubPushError, check_upload_complete, push_checkpoint


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The push command's flags (defined in ``arguments.push_parser``, so ``push --help`` needs no model import)."""
    return push_parser(prog)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Check, then push; prints the repository URL. Exit status 1 (and a one-line reason) when nothing was pushed."""
    args = build_parser(prog).parse_args(argv)
    if not os.path.isdir(args.folder):  # a user mistake, not an incomplete checkpoint: one error line, status 2
        what = "is a file" if os.path.exists(args.folder) else "does not exist"
        print(f"error: {args.folder!r} {what}; give the checkpoint folder save_pretrained wrote", file=sys.stderr)
        return 2
    missing = check_upload_complete(args.folder)
    if args.check or missing:
        for item in missing:
            print(f"missing: {item}", file=sys.stderr)
        print(f"{args.folder}: {'upload-complete' if not missing else 'NOT upload-complete'}")
        return 1 if missing else 0
    if not args.repo_id:
        print("error: --repo-id is required to push (e.g. --repo-id your-name/my-model)", file=sys.stderr)
        return 2
    try:
        url = push_checkpoint(
            args.folder, args.repo_id, token=args.token, private=not args.public, commit_message=args.commit_message
        )
    except (HubPushError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"pushed {args.folder} to {url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
