"""The training tasks and the scripts' own flags (their HfArgumentParser dataclasses), the push and convert commands'
parsers, and the pre-rendered ``train TASK --help`` texts.

This module imports only the standard library at import time (transformers only inside ``build_parser``), so the
light console front end (``scratchformers_cli``) imports it to answer ``scratchformers train TASK --help`` /
``push --help`` / ``convert --help`` without importing torch, datasets or the package (which registers every model).
The scripts import their dataclasses from here, and ``TASKS`` is the one list of training tasks.

``train TASK --help`` lists every ``TrainingArguments`` flag, and importing ``TrainingArguments`` costs transformers
plus torch (about 2 s). So the help text is rendered ahead of time (``scripts/render_cli_help.py`` writes
``help/train-TASK.txt`` beside this file, shipped as package data) and printed as it is when this install would
render the same text: the same Python major.minor (argparse's layout) and the same transformers sources the flags are
read from (``HELP_SOURCES``: the argument parser, the TrainingArguments dataclasses and the enums of their choices,
compared by a hash of their text, found without importing transformers). Any transformers release whose sources are
unchanged answers fast (5.24 and 5.25 are: same flags, same help), with no version number to age; one that changed
them gets the live parser. ``tests/cli/test_fast_help.py`` renders it live and fails when the committed text is stale.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from .conversions import conversions

HERE = Path(__file__).resolve().parent
# The training scripts (scratchformers.examples), found beside this package: importing them, or only finding them
# with importlib, would import the package and register every model.
SCRIPTS_DIR = HERE.parent / "scratchformers" / "examples"


def script_description(script: str) -> str | None:
    """The module docstring of ``scratchformers/examples/<script>.py``, read without importing it (its --help text)."""
    return ast.get_docstring(ast.parse((SCRIPTS_DIR / f"{script}.py").read_text(encoding="utf-8")), clean=True)


def build_parser(dataclass_types: tuple, description: str | None = None, defaults: dict | None = None,
                 prog: str | None = None) -> Any:
    """The ``HfArgumentParser`` of a training script: ``dataclass_types`` (the last a TrainingArguments class),
    the script's docstring as description, and ``defaults`` overriding dataclass defaults."""
    from transformers import HfArgumentParser  # light: no torch model, no datasets

    parser = HfArgumentParser(
        dataclass_types, prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    if defaults:
        parser.set_defaults(**defaults)
    bare_resume_flag(parser)
    parser.error = one_line_error  # (argparse calls self.error for every flag mistake)
    return parser


def one_line_error(message: str) -> NoReturn:
    """A flag mistake argparse finds (``--max_steps abc``: "invalid int value") as a ValueError, which the console
    command prints as one ``error:`` line (exit status 2) instead of argparse's whole usage block of every
    TrainingArguments flag."""
    raise ValueError(f"{message} (--help lists the flags)")


RESUME_HELP = ("Continue the run in --output_dir: with no value, from its last checkpoint-N folder (as HF's example "
               "scripts do); or from the checkpoint folder given.")


def bare_resume_flag(parser: argparse.ArgumentParser) -> None:
    """Let ``--resume_from_checkpoint`` stand alone: TrainingArguments declares it a path (so a bare flag was
    argparse's "expected one argument"); here the path is optional and the bare flag gives ``True``, which the
    scripts resolve to the last ``checkpoint-N`` in ``--output_dir`` (``common.resume_checkpoint``)."""
    for action in parser._actions:
        if action.dest == "resume_from_checkpoint":
            action.nargs, action.const, action.help = "?", True, RESUME_HELP


@dataclass
class ClmModelArguments:
    """Which model and tokenizer to start from."""

    config: str | None = field(
        default=None,
        metadata={"help": "Config JSON for a fresh model (default: configs/gpt-tiny.json).", "aliases": ["--config_name"]},
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A saved checkpoint folder to continue training (instead of --config)."}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "A saved tokenizer folder; if absent, a byte-level BPE tokenizer is trained."}
    )
    vocab_size: int = field(default=4096, metadata={"help": "Vocabulary size of the trained BPE tokenizer."})


@dataclass
class ClmDataArguments:
    """Which text to train and evaluate on, and how to cut it into blocks."""

    train_file: str | None = field(
        default=None, metadata={"help": "A text file, one text per line (default: the shipped data/prose/train.txt)."}
    )
    validation_file: str | None = field(
        default=None,
        metadata={"help": "A text file to evaluate on (default: a held-out part of --train_file)."},
    )
    validation_split_percentage: int = field(
        default=5,
        metadata={"help": "Without --validation_file: %% of the training lines held out (seeded by --seed)."},
    )
    block_size: int = field(
        default=128, metadata={"help": "Tokens per training block (capped at the model's max_position_embeddings)."}
    )
    packing: bool = field(
        default=False,
        metadata={"help": "Padding-free packing: each line is one sequence (up to --block_size tokens) and a batch is "
                  "one row of its sequences with position ids restarting at each (DataCollatorWithFlattening); no "
                  "padding, no attention across lines, the loss weighted by tokens. Samples are then lines."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only this many training blocks."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep only this many evaluation blocks."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenisation."})


@dataclass
class MlmModelArguments:
    """Which model and tokenizer to start from."""

    config: str | None = field(
        default=None,
        metadata={"help": "A ScratchBert config JSON to build a fresh model from (default: configs/bert-tiny.json).",
                  "aliases": ["--config_name"]},
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A saved checkpoint folder to continue pre-training (instead of --config)."}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "A saved tokenizer folder; if not given, a WordPiece tokenizer is trained."}
    )
    vocab_size: int = field(default=8192, metadata={"help": "Vocabulary size of the trained WordPiece tokenizer."})


@dataclass
class MlmDataTrainingArguments:
    """Which text to train and evaluate on, and how to cut it into blocks."""

    train_file: str | None = field(
        default=None, metadata={"help": "A text file, one text per line (default: the shipped data/prose/train.txt)."}
    )
    validation_file: str | None = field(
        default=None, metadata={"help": "A text file for evaluation (default: a held-out part of --train_file)."}
    )
    validation_split_percentage: int = field(
        default=5,
        metadata={"help": "Without --validation_file: %% of the training lines held out (seeded by --seed)."},
    )
    max_seq_length: int = field(
        default=128, metadata={"help": "Block length in tokens (capped at the model's max_position_embeddings)."}
    )
    mlm_probability: float = field(default=0.15, metadata={"help": "Fraction of tokens to mask (BERT: 0.15)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only this many training blocks."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep only this many evaluation blocks."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenisation."})


@dataclass
class ClassificationModelArguments:
    """Which model and tokenizer to start from."""

    config: str | None = field(
        default=None,
        metadata={"help": "Config JSON for a fresh model (default: configs/gpt-tiny.json).", "aliases": ["--config_name"]},
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A saved checkpoint to fine-tune (its head is replaced to fit the labels)."}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "A saved tokenizer folder; if absent, one is trained on the training texts."}
    )
    vocab_size: int = field(default=2048, metadata={"help": "Vocabulary size of the trained tokenizer."})


@dataclass
class ClassificationDataArguments:
    """Which CSV files to use and how long a text may be."""

    train_file: str | None = field(
        default=None, metadata={"help": "CSV with text,label columns (default: data/classification/train.csv)."}
    )
    validation_file: str | None = field(
        default=None, metadata={"help": "CSV to evaluate on (default: a held-out part of --train_file)."}
    )
    validation_split_percentage: int = field(
        default=10,
        metadata={"help": "Without --validation_file: %% of the training rows held out (seeded by --seed)."},
    )
    text_column: str = field(default="text", metadata={"help": "Name of the text column."})
    label_column: str = field(default="label", metadata={"help": "Name of the label column."})
    max_seq_length: int = field(default=128, metadata={"help": "Texts are truncated to this many tokens."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only this many training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep only this many evaluation rows."})


@dataclass
class TranslationModelArguments:
    """Which model to train: a checkpoint, a config JSON, or a registered model type with overrides."""

    model_name_or_path: str | None = field(default=None, metadata={"help": "A checkpoint folder to fine-tune."})
    config: str | None = field(
        default="configs/transformer-tiny.json",  # resolved to the shipped copy (common.shipped_config)
        metadata={"help": "A config JSON for a new model (ignored with --model_name_or_path or --model_type)."},
    )
    model_type: str | None = field(
        default=None, metadata={"help": "A registered seq2seq model type (e.g. scratch_transformer) with its defaults."}
    )
    config_overrides: str | None = field(
        default=None, metadata={"help": "Comma-separated key=value config changes, e.g. 'd_model=256,encoder_layers=3'."}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "A tokenizer folder; without one a shared BPE is trained on --train_file."}
    )
    vocab_size: int = field(default=4000, metadata={"help": "Vocabulary size of a newly trained tokenizer."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow checkpoint code (auto_map)."})


@dataclass
class TranslationDataArguments:
    """Which pairs to read (JSON lines of {"translation": {src: ..., tgt: ...}}) and how to cut them."""

    source_lang: str = field(default="en")
    target_lang: str = field(default="de")
    train_file: str | None = field(
        default=None, metadata={"help": "JSON lines of pairs (default: the shipped en-de train split)."}
    )
    validation_file: str | None = field(
        default=None,
        metadata={"help": "Pairs to validate on (default: a held-out part of --train_file; the shipped en-de "
                  "validation split when no --train_file is given)."},
    )
    validation_split_percentage: int = field(
        default=5, metadata={"help": "Without --validation_file: %% of the training pairs held out (seeded by --seed)."}
    )
    test_file: str | None = field(
        default=None, metadata={"help": "Pairs to test on (default: the shipped en-de test split without --train_file)."}
    )
    max_source_length: int = field(default=64)
    max_target_length: int = field(default=64)
    max_train_samples: int | None = field(default=None)
    max_eval_samples: int | None = field(default=None)
    max_predict_samples: int | None = field(default=None)
    source_prefix: str = field(default="", metadata={"help": "Text put before every source (T5-style task prefix)."})
    noam_factor: float | None = field(
        default=None,
        metadata={"help": "Set learning_rate = factor · d_model^-0.5 · warmup_steps^-0.5 (the paper's schedule peak)."},
    )


@dataclass
class SftModelArguments:
    """Which checkpoint to fine-tune, and LoRA."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "The checkpoint folder to fine-tune (from `train clm` or `convert`). Required."},
    )
    lora_r: int = field(default=0, metadata={"help": "LoRA rank (peft); 0 = full fine-tuning of every weight."})
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA scale α: the update is (α/r)·B·A."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch's input."})
    lora_target_modules: str = field(
        default="qkv_proj,q_proj,kv_proj,out_proj,fc_in,fc_out",
        metadata={"help": "Comma-separated names of the linear layers that get adapters (default: every attention "
                  "and feed-forward projection of our blocks; names the model lacks are skipped)."},
    )
    merge_lora: bool = field(
        default=False,
        metadata={"help": "Merge the adapters into the weights on save (a plain checkpoint); else the adapter alone "
                  "is saved (load it with scratchformers.sft.load_adapter or peft's PeftModel.from_pretrained)."},
    )


@dataclass
class ChatDataArguments:
    """Which rows to train and evaluate on (JSON lines), as `train sft` and `train dpo` read them."""

    train_file: str | None = field(
        default=None, metadata={"help": "JSON lines, one row per line (see the description above). Required."}
    )
    validation_file: str | None = field(
        default=None, metadata={"help": "Rows to evaluate on (default: a held-out part of --train_file)."}
    )
    validation_split_percentage: int = field(
        default=5, metadata={"help": "Without --validation_file: %% of the training rows held out (seeded by --seed)."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only this many training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep only this many evaluation rows."})


@dataclass
class SftDataArguments(ChatDataArguments):
    """Which chats to train and evaluate on (JSON lines of {"messages": [{"role", "content"}, ...]})."""

    max_seq_length: int = field(
        default=512, metadata={"help": "Tokens per chat (longer ones are cut; capped at the model's positions)."}
    )
    packing: bool = field(
        default=False,
        metadata={"help": "Padding-free packing: each batch is one row of its chats with position ids restarting at "
                  "each (DataCollatorWithFlattening); no padding, no attention across chats."},
    )
    exact_match_samples: int = field(
        default=0,
        metadata={"help": "Also score greedy exact match of the last assistant answer on this many validation chats, "
                  "before and after training."},
    )
    max_new_tokens: int = field(default=32, metadata={"help": "Tokens generated per answer for exact match."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenisation."})


@dataclass
class DpoDataArguments(ChatDataArguments):
    """Which preference rows to train and evaluate on (JSON lines of {"prompt", "chosen", "rejected"})."""


# The paper's optimiser settings (§5.3–5.4) and a budget that fits a 2-core CPU in 10 minutes or more; every one of
# them can be changed on the command line (they are defaults of the Seq2SeqTrainingArguments options).
TRANSLATION_TRAINING_DEFAULTS = dict(
    output_dir="outputs/translation",
    max_steps=1500,  # ≈ 9.5 epochs of the 10,000 en-de pairs: 10 minutes or more on 2 CPU cores (measured)
    per_device_train_batch_size=64,
    per_device_eval_batch_size=64,
    # Post-LN (the paper's placement) is fragile at high learning rates: at 2e-3 the tiny model's decoder collapsed
    # into a target-side language model (held-out loss with a shuffled source = loss with the true source); at 5e-4
    # with 300 warm-up steps it uses the source (measured; see docs/translation.md).
    learning_rate=5e-4,
    lr_scheduler_type="inverse_sqrt",
    warmup_steps=300,
    adam_beta2=0.98,
    adam_epsilon=1e-9,
    label_smoothing_factor=0.1,
    predict_with_generate=True,
    generation_num_beams=4,
    generation_max_length=64,
    train_sampling_strategy="group_by_length",  # batches of similar lengths: less padding, faster on CPU
    eval_strategy="no",
    save_strategy="no",
    logging_steps=100,
    report_to="none",
)


@dataclass
class RunArguments:
    """Flags every training script shares beyond TrainingArguments."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Replace the contents of an existing, non-empty --output_dir (removing its checkpoints)."},
    )

#: The training tasks (`scratchformers train TASK`): task → (its script module in scratchformers.examples, the
#: script's dataclasses before TrainingArguments, the TrainingArguments class (a name in transformers, or
#: "package.Name" elsewhere), defaults).
TASKS: dict[str, tuple[str, tuple, str, dict]] = {
    "clm": ("run_clm", (ClmModelArguments, ClmDataArguments, RunArguments), "TrainingArguments", {}),
    "mlm": ("run_mlm", (MlmModelArguments, MlmDataTrainingArguments, RunArguments), "TrainingArguments", {}),
    "translation": (
        "run_translation",
        (TranslationModelArguments, TranslationDataArguments, RunArguments),
        "Seq2SeqTrainingArguments",
        TRANSLATION_TRAINING_DEFAULTS,
    ),
    "classification": (
        "run_classification",
        (ClassificationModelArguments, ClassificationDataArguments, RunArguments),
        "TrainingArguments",
        {},
    ),
    "sft": ("run_sft", (SftModelArguments, SftDataArguments, RunArguments), "TrainingArguments", {}),
    # TRL's DPOConfig: TrainingArguments plus DPO's flags (--beta, --loss_type, --max_length, ...), TRL's defaults
    "dpo": ("run_dpo", (SftModelArguments, DpoDataArguments, RunArguments), "trl.DPOConfig", {}),
}


def task_parser(task: str, prog: str | None = None) -> Any:
    """The full parser of ``scratchformers train TASK`` (what the script parses), built without importing the
    script. ValueError for an unknown task."""
    if task not in TASKS:
        raise ValueError(f"unknown training task {task!r}; allowed: {', '.join(TASKS)}")
    script, types, training_class, defaults = TASKS[task]
    return build_parser((*types, training_arguments_class(task)), script_description(script), defaults, prog)


def training_arguments_class(task: str) -> type:
    """The TrainingArguments class of ``task`` (``TASKS``), imported. ValueError naming the package to install
    when it lives in one that is not installed (``train dpo`` needs trl)."""
    import importlib

    package, _, name = TASKS[task][2].rpartition(".")
    package = package or "transformers"
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise ValueError(f"scratchformers train {task} needs {package}: pip install \"scratchformers[{task}]\" "
                         f"(or pip install {package})") from None
    return getattr(module, name)


def push_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The push command's flags (``scratchformers push``, ``scripts/push_to_hub.py``)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=script_description("push_to_hub"), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", help="a checkpoint folder saved by our scripts or the demo")
    parser.add_argument("--repo-id", "--repo_id", dest="repo_id", help="Hub repository, e.g. your-name/my-model")
    parser.add_argument("--token", default=None, help="a Hub token with write access (default: $HF_TOKEN or login)")
    parser.add_argument("--public", action="store_true", help="create a public repository (default: private)")
    parser.add_argument("--check", action="store_true", help="only check the folder is upload-complete")
    parser.add_argument("--commit-message", default="Upload scratchformers checkpoint")
    return parser


# ----------------------------------------------------------------------------------------------------------------
# Pre-rendered `train TASK --help` (see the module docstring)
# ----------------------------------------------------------------------------------------------------------------

HELP_DIR = HERE / "help"  # train-TASK.txt per task + versions.json (package data)
HELP_VERSIONS = HELP_DIR / "versions.json"
HELP_COLUMNS = 80  # the terminal width the committed help is rendered for


# transformers' modules that `train TASK --help` is built from: HfArgumentParser, the TrainingArguments and
# Seq2SeqTrainingArguments dataclasses (flags, types, help texts) and the enums their choices come from.
HELP_SOURCES = ("hf_argparser.py", "training_args.py", "training_args_seq2seq.py", "trainer_utils.py",
                "debug_utils.py")
# trl's modules behind the flags of a task whose TrainingArguments class is trl's (`train dpo`: DPOConfig and the
# base config it extends); compared only for those tasks, so an install without trl still answers the others fast.
TRL_HELP_SOURCES = ("trainer/dpo_config.py", "trainer/base_config.py")


def _transformers_folder() -> Path | None:
    """The installed transformers package folder, found without importing it (None when it is not installed)."""
    return _package_folder("transformers")


def _package_folder(package: str) -> Path | None:
    """An installed package's folder, found without importing it (None when it is not installed)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    locations = list(getattr(spec, "submodule_search_locations", None) or []) if spec is not None else []
    return Path(locations[0]) if locations else None


def help_sources_digest(folder: os.PathLike | str | None = None, sources: tuple[str, ...] = HELP_SOURCES) -> str:
    """A SHA-256 of the text of transformers' ``HELP_SOURCES`` (or other ``sources`` in ``folder``; default: the
    installed transformers, read without importing it): equal digests give the same ``train TASK --help``. "" when
    the package is not installed or a file is missing (then no pre-rendered text matches)."""
    import hashlib

    folder = Path(folder) if folder is not None else _transformers_folder()
    if folder is None:
        return ""
    digest = hashlib.sha256()
    try:
        for name in sources:
            digest.update(name.encode() + b"\0" + (folder / name).read_bytes() + b"\0")
    except OSError:
        return ""
    return digest.hexdigest()


def help_key(task: str | None = None) -> dict[str, str]:
    """What a pre-rendered help text must have been rendered under to be shown on this install: this Python's
    major.minor (argparse formats help differently across releases) and ``help_sources_digest()``; for a ``task``
    whose TrainingArguments class is trl's (``TASKS``), also the digest of trl's ``TRL_HELP_SOURCES``."""
    key = {"python": f"{sys.version_info[0]}.{sys.version_info[1]}", "transformers_help_sources": help_sources_digest()}
    if task in TASKS and TASKS[task][2].startswith("trl."):
        folder = _package_folder("trl")
        key["trl_help_sources"] = help_sources_digest(folder, TRL_HELP_SOURCES) if folder is not None else ""
    return key


def installed_versions() -> dict[str, str]:
    """The Python major.minor and the full transformers version installed (read from its metadata, not imported;
    "" when it is not installed), recorded beside the rendered help for people; never compared (``help_key`` is)."""
    from importlib import metadata

    try:
        transformers = metadata.version("transformers")
    except metadata.PackageNotFoundError:
        transformers = ""
    return {"python": f"{sys.version_info[0]}.{sys.version_info[1]}", "transformers": transformers}


@contextlib.contextmanager
def _plain_terminal(columns: int) -> Iterator[None]:
    """While rendering: a terminal ``columns`` wide (argparse wraps to ``$COLUMNS``) and no colour (Python 3.14's
    argparse colours help on a colour terminal). The environment is restored afterwards."""
    names = ("COLUMNS", "NO_COLOR", "PYTHON_COLORS")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(COLUMNS=str(columns), NO_COLOR="1", PYTHON_COLORS="0")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def render_task_help(task: str, columns: int = HELP_COLUMNS) -> str:
    """What the live parser prints for ``scratchformers train TASK --help`` on a terminal ``columns`` wide, without
    colour. ValueError for an unknown task (imports transformers and torch: this is the slow path)."""
    with _plain_terminal(columns):
        return task_parser(task, prog=f"scratchformers train {task}").format_help()


def help_file(command: str, folder: os.PathLike | str | None = None) -> Path:
    """Where the pre-rendered help of ``command`` (e.g. ``"train clm"``) lives: ``help/train-clm.txt``."""
    return Path(HELP_DIR if folder is None else folder) / f"{command.replace(' ', '-')}.txt"


def render_help_files(tasks: Iterable[str], folder: os.PathLike | str | None = None,
                      columns: int = HELP_COLUMNS) -> list[Path]:
    """Write ``train-TASK.txt`` for each of ``tasks`` (every task of ``TASKS``) and
    ``versions.json`` (``help_key()``, the width, and for people the transformers version rendered with) into
    ``folder`` (default ``HELP_DIR``), removing the text of tasks no longer listed. Returns the files written."""
    folder = Path(HELP_DIR if folder is None else folder)
    folder.mkdir(parents=True, exist_ok=True)
    texts = {help_file(f"train {task}", folder): render_task_help(task, columns) for task in tasks}
    for old in folder.glob("train-*.txt"):
        if old not in texts:
            old.unlink()
    for path, text in texts.items():
        path.write_text(text, encoding="utf-8", newline="\n")
    versions = folder / HELP_VERSIONS.name
    record = {"generated_by": "scripts/render_cli_help.py: do not edit; re-render after changing flags or transformers",
              **{k: v for task in TASKS for k, v in help_key(task).items()}, "rendered_with_transformers": installed_versions()["transformers"], "columns": columns}
    versions.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return [*texts, versions]


def prerendered_help(command: str, folder: os.PathLike | str | None = None) -> str | None:
    """The committed help text of ``command`` (e.g. ``"train clm"``), or None when there is none for it or it was
    rendered under another ``help_key(task)`` — another Python major.minor, or transformers sources (for ``train
    dpo`` also trl sources) that give other flags (then the live parser must answer). Version numbers are not
    compared."""
    folder = Path(HELP_DIR if folder is None else folder)
    try:
        record = json.loads((folder / HELP_VERSIONS.name).read_text(encoding="utf-8"))
        key = help_key(command.split(" ", 1)[1] if command.startswith("train ") else None)
        if not all(key.values()) or any(record.get(k) != v for k, v in key.items()):
            return None
        return help_file(command, folder).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------------------------------------------
# `scratchformers convert`
# ----------------------------------------------------------------------------------------------------------------

def convert_parser(prog: str | None = "scratchformers convert") -> argparse.ArgumentParser:
    """The flags of ``scratchformers convert`` (``scratchformers.convert.main`` parses with this parser)."""
    pairs = "\n".join(f"  {theirs} <-> {ours}" for theirs, ours in conversions().items())
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Convert a checkpoint between transformers' native classes and scratchformers' (the "
        "direction is chosen from the checkpoint's architecture); its tokenizer and chat template come along. A GGUF "
        "file (llama.cpp's format: MODEL.gguf, or a folder with --gguf-file NAME) becomes our checkpoint through "
        "transformers' GGUF loader (de-quantized; needs pip install \"scratchformers[export]\").\n\nSupported "
        "(transformers <-> scratchformers):\n" + pairs,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoint", help="folder written by save_pretrained (config.json + weights), a Hub model id "
                        "such as HuggingFaceTB/SmolLM2-135M-Instruct (downloaded first), or a .gguf file")
    parser.add_argument("out_dir", type=Path, help="folder to write the converted checkpoint (and tokenizer files)")
    parser.add_argument("--overwrite", action="store_true", help="replace the contents of an existing out_dir")
    parser.add_argument("--gguf-file", "--gguf_file", dest="gguf_file", default=None, metavar="NAME",
                        help="the GGUF file inside the checkpoint folder to convert (a .gguf path as checkpoint needs "
                        "no flag)")
    return parser
