"""What the training scripts share: argument parsing, logging backends, building models from config JSON, saving."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import AutoConfig, HfArgumentParser, PreTrainedConfig, TrainingArguments

from ..data import DATA_DIR, packaged_folder
from ..model_card import write_model_card

# the shipped model configs: configs/ in a source checkout, the package data scratchformers.configs in a wheel
CONFIG_DIR = packaged_folder("configs", "gpt-tiny.json") or DATA_DIR.parent / "configs"


def tensorboard_available() -> bool:
    """Whether ``tensorboard`` (or tensorboardX) is importable, so the Trainer can write event files."""
    return any(importlib.util.find_spec(name) is not None for name in ("tensorboard", "tensorboardX"))


def parse_args(dataclass_types: tuple, argv: Sequence[str] | None, description: str | None = None) -> tuple:
    """Parse ``argv`` (default ``sys.argv[1:]``) into the dataclasses; a single ``.json`` argument is a flags file.

    Unless ``--report_to`` is given, training logs go to TensorBoard when it is installed and nowhere otherwise.
    Unless ``--do_train`` or ``--do_eval`` is given, both run (a bare script call trains and evaluates).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(
        dataclass_types,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if len(argv) == 1 and argv[0].endswith(".json") and not argv[0].startswith("-"):
        parsed = parser.parse_json_file(os.path.abspath(argv[0]))
        given = set(json.loads(Path(argv[0]).read_text()))
    else:
        parsed = parser.parse_args_into_dataclasses(argv)
        given = {a[2:].split("=", 1)[0] for a in argv if a.startswith("--")}
    training_args = next(p for p in parsed if isinstance(p, TrainingArguments))
    if "report_to" not in given:
        training_args.report_to = ["tensorboard"] if tensorboard_available() else []
    if not given & {"do_train", "do_eval"}:  # (an eval_strategy alone turns do_eval on: that is not a choice)
        training_args.do_train = training_args.do_eval = True
    return parsed


def check_file(flag: str, path: str | None) -> None:
    """Raise a ValueError naming ``flag`` when ``path`` is not an existing file."""
    if path is not None and not os.path.isfile(path):
        raise ValueError(f"{flag} {path!r} does not exist (give a path to a local file)")


def shipped_config(path: str | os.PathLike) -> Path:
    """``path`` if it exists; else, for a path inside ``configs/`` (``configs/gpt-tiny.json`` typed away from the
    repository, or in a wheel install), the shipped copy under ``CONFIG_DIR``."""
    path = Path(path)
    if path.is_file() or "configs" not in path.parts:
        return path
    inside = path.parts[len(path.parts) - path.parts[::-1].index("configs"):]  # the part after the last configs/
    shipped = CONFIG_DIR.joinpath(*inside)
    return shipped if shipped.is_file() else path


def config_from_json(path: str | os.PathLike, **overrides: Any) -> PreTrainedConfig:
    """A config of the ``model_type`` named in the JSON file, with ``overrides`` applied (e.g. the vocab size)."""
    path = shipped_config(path)
    if not path.is_file():
        raise ValueError(f"--config {str(path)!r} does not exist; shipped configs: {sorted(p.name for p in CONFIG_DIR.glob('*.json'))}")
    fields = json.loads(path.read_text(encoding="utf-8"))
    model_type = fields.pop("model_type", None)
    if model_type is None:
        raise ValueError(f"{path} has no 'model_type' (e.g. \"scratch_gpt\")")
    import scratchformers  # noqa: F401  (registers every scratch_* model type with AutoConfig)

    return AutoConfig.for_model(model_type, **{**fields, **overrides})


def display_path(path: str | os.PathLike) -> str:
    """``path`` relative to the repository when it lies inside it (``configs/gpt-tiny.json``), else as given."""
    try:
        return str(Path(path).resolve().relative_to(CONFIG_DIR.parent))
    except ValueError:
        return str(path)


def evaluate_unsmoothed(trainer: Any, **kwargs: Any) -> dict[str, float]:
    """`trainer.evaluate(**kwargs)` whose `eval_loss` is the model's own mean cross-entropy, so exp() of it is the
    perplexity.

    Two things the Trainer does would change it. With `--label_smoothing_factor ε` it scores evaluation as it trains:
    (1−ε)·(−log p(y)) + ε·mean over the vocabulary of −log p(v), up to ε·log V above the negative log-likelihood. And
    it divides the summed loss by its own count of targets (`num_items_in_batch`), which some 5.x releases (5.6) take
    over every label, position 0 included, though a causal LM predicts only T−1 of T tokens: exp() of that is
    exp(NLL)^((T−1)/T). Both are switched off for the call: the labels reach the model, which averages its (next-token)
    loss over the targets it scores. The batches of the grouped blocks the scripts evaluate hold equally many targets
    per row, so the Trainer's average of these batch means is the mean over all targets.
    """
    saved = trainer.label_smoother, trainer.model_accepts_loss_kwargs
    trainer.label_smoother, trainer.model_accepts_loss_kwargs = None, False
    try:
        return trainer.evaluate(**kwargs)
    finally:
        trainer.label_smoother, trainer.model_accepts_loss_kwargs = saved


def finite_perplexity(loss: float) -> float:
    """exp(loss), or inf when that overflows (a loss above ~709 nats)."""
    try:
        return math.exp(loss)
    except OverflowError:
        return float("inf")


def save_checkpoint(
    trainer: Any,
    tokenizer: Any,
    output_dir: str | os.PathLike,
    metrics: dict[str, float],
    datasets: Sequence[str],
    base_config: str | None,
    task: str,
    language: str | list[str] | None = "en",
) -> Path:
    """Save model, tokenizer, metrics and a model card into ``output_dir``: one folder a Hub user can load.

    The model's code comes along (``auto_map`` + modules) because ``import scratchformers`` marked every family
    for the Auto classes; the tokenizer is saved beside the weights so ``AutoTokenizer`` finds it.
    """
    out = Path(output_dir)
    trainer.save_model(str(out))
    tokenizer.save_pretrained(str(out))
    if trainer.is_world_process_zero():
        (out / "all_results.json").write_text(json.dumps(metrics, indent=2))
        trainer.state.save_to_json(str(out / "trainer_state.json"))  # log_history: the loss curve's data
        write_model_card(out, metrics, datasets=datasets, base_config=base_config, task=task, language=language)
    return out
