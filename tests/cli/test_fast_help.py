"""Every `--help` of the console command answers without the heavy imports (issue 15): `scratchformers --help`,
`generate --help`, `push --help` and `convert --help` from the flag definitions, and `train TASK --help` from the
committed, pre-rendered text (when this Python's major.minor and transformers' argument sources are the ones it was
rendered with, whatever transformers' version number: issue 20).
The process imports neither torch nor transformers, no model, no `datasets` and not the `scratchformers` package
(which imports and registers every model); counted by module, never timed. The committed help must be what the live
parser prints: a test renders it live and fails when it is stale (`python scripts/render_cli_help.py` re-renders)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

import scratchformers_cli
from scratchformers.examples import load_script
from scratchformers_cli import TASKS
from scratchformers_light import arguments

HELP_IN_A_FRESH_PROCESS = """
import json, sys, scratchformers_cli
try:
    code = scratchformers_cli.main({argv!r})
except SystemExit as done:
    code = done.code
# (transformers 5.13's TrainingArguments itself imports image processors under transformers.models: not counted)
heavy = sorted(m for m in sys.modules if m == 'scratchformers' or m.startswith(('scratchformers.', 'datasets'))
               or '.modeling_' in m)
frameworks = sorted({{m.split('.')[0] for m in sys.modules}} & {{'torch', 'transformers'}})
print(json.dumps({{"code": code, "heavy": heavy, "frameworks": frameworks}}))
"""

RERENDER = "python scripts/render_cli_help.py"


def help_of(argv: list[str]) -> tuple[str, dict]:
    """(help text, {"code", "heavy", "frameworks"}) of `scratchformers ARGV` run in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", HELP_IN_A_FRESH_PROCESS.format(argv=argv)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    *text, last = done.stdout.rstrip("\n").split("\n")
    return "\n".join(text), json.loads(last)


def committed_help_matches_this_install() -> bool:
    """Whether the committed help was rendered under this install's ``help_key`` (Python major.minor, transformers'
    argument sources)."""
    record = json.loads(arguments.HELP_VERSIONS.read_text(encoding="utf-8"))
    return all(record.get(key) == value for key, value in arguments.help_key().items())


@pytest.mark.parametrize("task", TASKS)
def test_train_task_help_lists_its_flags_without_importing_models(task):
    text, result = help_of(["train", task, "--help"])
    assert result["code"] == 0 and result["heavy"] == []
    if committed_help_matches_this_install():  # else the live parser answers (transformers + torch), correctly
        assert result["frameworks"] == []
    own = [f.name for cls in arguments.TASKS[task][1] for f in dataclasses.fields(cls)]
    missing = [name for name in own if f"--{name}" not in text]
    assert not missing, missing
    assert "--learning_rate" in text and "--per_device_train_batch_size" in text  # TrainingArguments' flags


@pytest.mark.parametrize("argv", [["--help"], ["generate", "--help"], ["push", "--help"], ["convert", "--help"],
                                  ["train", "--help"], ["evaluate", "--help"], ["export", "--help"]])
def test_command_help_imports_neither_torch_nor_transformers(argv):
    text, result = help_of(argv)
    assert result == {"code": 0, "heavy": [], "frameworks": []}
    assert text.startswith("usage: scratchformers")


def test_serve_help_lists_transformers_serve_flags_without_our_package():
    """`serve --help` is read from transformers' own `serve` command definitions (`transformers.cli.serve`), without
    our package or a model, and imports no framework that module does not import itself (5.25's is torch-free; 5.13's
    imports torch)."""
    pytest.importorskip("transformers.cli.serve", reason="this transformers has no `transformers serve`")
    text, result = help_of(["serve", "--help"])
    probe = "import json, sys, transformers.cli.serve; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    own = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                                    check=True).stdout)
    assert result["code"] == 0 and result["heavy"] == []
    assert set(result["frameworks"]) <= set(own) & {"torch", "transformers"}
    assert text.startswith("usage: scratchformers serve")
    for flag in ("--host", "--port", "--device", "--dtype", "--continuous-batching", "--attn-implementation"):
        assert flag in text


def test_push_help_lists_its_flags():
    text, _ = help_of(["push", "--help"])
    assert "--repo-id" in text and "--check" in text


def test_convert_help_lists_the_live_conversion_table():
    """The light parser lists the converter's own table (`supported_conversions()`), pair for pair."""
    from scratchformers.convert import supported_conversions

    text, _ = help_of(["convert", "--help"])
    assert all(f"{theirs} <-> {ours}" in text for theirs, ours in supported_conversions().items())


def test_convert_parses_with_the_parser_its_help_shows(capsys):
    from scratchformers import convert

    with pytest.raises(SystemExit):
        convert.main(["--help"])
    assert capsys.readouterr().out == arguments.convert_parser().format_help()


@pytest.mark.parametrize("task", TASKS)
def test_the_scripts_parse_the_flags_the_help_shows(task):
    """The light help and the script share one definition: the script's parser knows every flag the help lists."""
    script = sys.modules[load_script(task).__module__]
    names = {cls.__name__: cls for cls in arguments.TASKS[task][1]}
    used = [v for v in vars(script).values() if isinstance(v, type) and v.__name__ in names]
    assert used and all(names[v.__name__] is v for v in used)


# --- the committed, pre-rendered `train TASK --help` ---------------------------------------------------------------


def test_every_training_task_has_a_committed_help_text():
    rendered = sorted(p.stem.removeprefix("train-") for p in arguments.HELP_DIR.glob("train-*.txt"))
    assert rendered == sorted(TASKS), f"the committed help does not match the tasks; run `{RERENDER}`"


@pytest.mark.parametrize("task", TASKS)
def test_the_committed_help_is_what_the_live_parser_prints(task):
    if not committed_help_matches_this_install():
        rendered = {k: v for k, v in json.loads(arguments.HELP_VERSIONS.read_text()).items() if k != "generated_by"}
        pytest.skip(f"rendered under {rendered}; this install has {arguments.help_key()} (the live parser "
                    "answers here)")
    committed = arguments.help_file(f"train {task}").read_text(encoding="utf-8")
    live = arguments.render_task_help(task)  # at the committed width, whatever this terminal's is
    assert committed == live, f"the committed `train {task} --help` is stale; run `{RERENDER}`"


@pytest.fixture
def help_folder(tmp_path, monkeypatch):
    """The front end reading its pre-rendered help from a temporary folder (``arguments.HELP_DIR``)."""
    monkeypatch.setattr(arguments, "HELP_DIR", tmp_path)
    monkeypatch.setenv("COLUMNS", str(arguments.HELP_COLUMNS))
    return tmp_path


def front_end_help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as done:
        scratchformers_cli.main(argv)
    assert done.value.code == 0
    return capsys.readouterr().out


def test_the_front_end_prints_the_committed_text_for_this_install(help_folder, capsys):
    (help_folder / "versions.json").write_text(json.dumps(arguments.help_key()))
    (help_folder / "train-clm.txt").write_text("usage: the committed text\n")
    assert front_end_help(["train", "clm", "--help"], capsys) == "usage: the committed text\n"


@pytest.mark.parametrize("other", [{"transformers_help_sources": "0" * 64}, {"python": "3.9"}])
def test_help_rendered_under_other_versions_is_not_shown(help_folder, capsys, other):
    """Rendered under transformers sources with other TrainingArguments flags, or another Python (argparse formats
    differently): the live parser answers instead."""
    (help_folder / "versions.json").write_text(json.dumps({**arguments.help_key(), **other}))
    (help_folder / "train-clm.txt").write_text("usage: the committed text\n")
    assert front_end_help(["train", "clm", "--help"], capsys) == arguments.render_task_help("clm")


def test_without_a_committed_text_the_live_parser_answers(help_folder, capsys):
    (help_folder / "versions.json").write_text(json.dumps(arguments.help_key()))
    assert front_end_help(["train", "mlm", "--help"], capsys) == arguments.render_task_help("mlm")


def test_a_new_transformers_version_with_the_same_argument_sources_keeps_the_fast_help(help_folder, capsys,
                                                                                      monkeypatch):
    """The key is what the help is built from, not a version number that ages: 5.24's text is 5.25's (their
    TrainingArguments sources are byte for byte the same), and a later release that leaves them alone answers fast
    too."""
    from importlib import metadata

    (help_folder / "versions.json").write_text(json.dumps(arguments.help_key()))
    (help_folder / "train-clm.txt").write_text("usage: the committed text\n")
    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "5.99.0" if name == "transformers" else real(name))
    assert front_end_help(["train", "clm", "--help"], capsys) == "usage: the committed text\n"


def test_changed_argument_sources_get_the_live_parser(help_folder, tmp_path_factory, monkeypatch):
    """A release that changed TrainingArguments (a flag added, a help text reworded) has another digest: the
    committed text is not shown for it."""
    installed = arguments._transformers_folder()
    changed = tmp_path_factory.mktemp("transformers")
    for name in arguments.HELP_SOURCES:
        (changed / name).write_bytes((installed / name).read_bytes())
    (help_folder / "versions.json").write_text(json.dumps(arguments.help_key()))
    (help_folder / "train-clm.txt").write_text("usage: the committed text\n")
    monkeypatch.setattr(arguments, "_transformers_folder", lambda: changed)
    assert arguments.prerendered_help("train clm") == "usage: the committed text\n"
    (changed / "training_args.py").write_text((installed / "training_args.py").read_text() + "\n# a new flag\n")
    assert arguments.prerendered_help("train clm") is None


def test_without_transformers_no_committed_text_matches(help_folder, monkeypatch):
    (help_folder / "versions.json").write_text(json.dumps(arguments.help_key()))
    (help_folder / "train-clm.txt").write_text("usage: the committed text\n")
    monkeypatch.setattr(arguments, "_transformers_folder", lambda: None)
    assert arguments.prerendered_help("train clm") is None


def test_dpo_help_is_answered_live_when_trl_is_absent_and_the_other_tasks_stay_fast(monkeypatch):
    """`train dpo`'s flags come from trl's DPOConfig: its committed help also needs trl's argument sources to match
    (``TRL_HELP_SOURCES``); an install without trl still gets every other task's committed help."""
    if not committed_help_matches_this_install() or arguments.prerendered_help("train dpo") is None:
        pytest.skip("the committed help was rendered under another install")
    real = arguments._package_folder
    monkeypatch.setattr(arguments, "_package_folder", lambda name: None if name == "trl" else real(name))
    assert arguments.prerendered_help("train dpo") is None
    assert arguments.prerendered_help("train sft") is not None
