"""Run transformers' own common model tests on our GPT, BERT and Transformer classes beside GPT-2, BERT and BART (and
our GPT with the modern options beside Llama), and list the tests that fail for ours but not for theirs.

The tests (`ModelTesterMixin` in transformers' `tests/test_modeling_common.py`) are not in the transformers wheel; its
source distribution carries them. Point `--tests-dir` at the `tests/` folder of the sdist (or a clone) of the
installed release, or let `--download` fetch the sdist with pip (from the package index only, never the Hub):

    python scripts/transformers_common_tests.py --download                 # the installed release's sdist
    python scripts/transformers_common_tests.py --tests-dir ~/transformers-5.25.0/tests -k "cache or sliding"
    python scripts/transformers_common_tests.py --tests-dir … --output common-tests.md

The sdist has neither `tests/generation/test_utils.py` nor `tests/exporters/`: their mixins are stubbed, so the
generation tests are not run here (tests/conformance/test_conformance.py checks generation on every family). Needs
`pip install parameterized` (transformers' test files import it). Tests run on the CPU unless a GPU is visible.
The pairs are in `scripts/transformers_common_pairs.py`.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: (ours, theirs): the test classes of `transformers_common_pairs.py` compared test by test.
PAIRS = [("TestScratchGPT", "TestGPT2"), ("TestScratchGPTRotary", "TestLlama"), ("TestScratchBert", "TestBert"),
         ("TestScratchTransformer", "TestBart")]
STUBS = {
    "exporters/test_export.py": '"""Stub: not in the sdist."""\n\n\nclass ExportTesterMixin:\n    pass\n',
    "generation/test_utils.py": '"""Stub: not in the sdist (no generation tests here)."""\n\n\n'
                                "class GenerationTesterMixin:\n    pass\n",
}


def download_tests(into: Path) -> Path:
    """The installed transformers release's sdist, fetched with pip; returns its tests/ folder."""
    import transformers

    version = transformers.__version__
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                    f"transformers=={version}", "-d", str(into)], check=True)
    archive = next(into.glob(f"transformers-{version}.tar.gz"))
    shutil.unpack_archive(archive, into)
    return into / f"transformers-{version}" / "tests"


def build_package(tests_dir: Path, into: Path) -> Path:
    """A package holding transformers' `test_modeling_common.py`, the stubbed mixins and our pairs."""
    package = into / "hf_common"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copy(tests_dir / "test_modeling_common.py", package / "test_modeling_common.py")
    for name, text in STUBS.items():
        (package / name).parent.mkdir(exist_ok=True)
        (package / name).parent.joinpath("__init__.py").touch()
        (package / name).write_text(text)
    shutil.copy(HERE / "transformers_common_pairs.py", package / "test_pairs.py")
    return package


def outcomes(junit: Path) -> dict[str, dict[str, tuple[str, str]]]:
    """test class → test name → (outcome, first line of the message), from pytest's JUnit XML."""
    found: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            element = case.find(kind)
            if element is not None:
                outcome = {"failure": "failed", "error": "failed", "skipped": "skipped"}[kind]
                message = (element.get("message") or element.text or "").strip().splitlines()[0][:300] \
                    if (element.get("message") or element.text) else ""
                break
        found[case.get("classname").rsplit(".", 1)[-1]][case.get("name")] = (outcome, message)
    return found


def report(results: dict[str, dict[str, tuple[str, str]]], pairs: list[tuple[str, str]]) -> str:
    """Markdown: per pair, the counts, then the tests failing for ours but not for theirs (passed or skipped there:
    a model without RoPE skips the RoPE tests), failing for both, and skipped for ours only."""
    lines = ["# transformers' common model tests: ours beside transformers' twin", ""]
    for ours, theirs in pairs:
        mine, twin = results.get(ours, {}), results.get(theirs, {})
        worse = sorted(name for name, (outcome, _) in mine.items()
                       if outcome == "failed" and twin.get(name, ("missing", ""))[0] != "failed")
        both = sorted(name for name, (outcome, _) in mine.items()
                      if outcome == "failed" and twin.get(name, ("", ""))[0] == "failed")
        counts = {side: {o: sum(1 for v in res.values() if v[0] == o) for o in ("passed", "failed", "skipped")}
                  for side, res in ((ours, mine), (theirs, twin))}
        lines += [f"## {ours} vs {theirs}", "", f"- {ours}: {counts[ours]}", f"- {theirs}: {counts[theirs]}", ""]
        lines += ["Fails for ours, not for theirs (their outcome in brackets):", ""]
        lines += [f"- `{name}` ({twin.get(name, ('missing', ''))[0]}): {mine[name][1]}" for name in worse] or ["- (none)"]
        lines += ["", "Fails for both:", ""]
        lines += [f"- `{name}`: {mine[name][1]}" for name in both] or ["- (none)"]
        skipped = sorted(name for name, (outcome, _) in mine.items()
                         if outcome == "skipped" and twin.get(name, ("", ""))[0] != "skipped")
        lines += ["", "Skipped for ours, run for theirs:", ""]
        lines += [f"- `{name}`: {mine[name][1]}" for name in skipped] or ["- (none)"]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--tests-dir", type=Path, help="transformers' tests/ folder (sdist or clone)")
    source.add_argument("--download", action="store_true", help="fetch the installed release's sdist with pip")
    parser.add_argument("-k", default=None, help="pytest -k expression selecting tests")
    parser.add_argument("--output", type=Path, default=None, help="write the markdown report here too")
    parser.add_argument("--pytest-args", default="", help="more pytest arguments, one string")
    parser.add_argument("--log", type=Path, default=Path("transformers-common-tests.log"),
                        help="where pytest's own output goes (default: %(default)s)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="sf-hf-common-") as work:
        work = Path(work)
        tests_dir = download_tests(work / "sdist") if args.download else args.tests_dir
        package = build_package(tests_dir, work)
        junit, log = work / "junit.xml", args.log.resolve()
        command = [sys.executable, "-m", "pytest", str(package / "test_pairs.py"), "-q", "-p", "no:cacheprovider",
                   "--rootdir", str(work), "-o", "addopts=", "--tb=line", f"--junitxml={junit}",
                   *(["-k", args.k] if args.k else []), *args.pytest_args.split()]
        with open(log, "w") as out:
            subprocess.run(command, cwd=work, stdout=out, stderr=subprocess.STDOUT)
        text = report(outcomes(junit), PAIRS)
    print(text)
    print(f"(pytest's output: {log})")
    if args.output:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
