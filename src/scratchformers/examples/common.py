"""What the training scripts share: argument parsing, logging backends, building models from config JSON, saving."""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transformers import AutoConfig, PreTrainedConfig, TrainingArguments, set_seed

from scratchformers_light.arguments import RunArguments, build_parser  # noqa: F401  (RunArguments: the scripts import it from here)

from ..data import DATA_DIR, packaged_folder
from ..distributed import check_fsdp_device
from ..folders import keeps_earlier_run, replace_later  # noqa: F401  (the scripts import it from here)
from ..model_card import write_model_card

# the shipped model configs: configs/ in a source checkout, the package data scratchformers.configs in a wheel
CONFIG_DIR = packaged_folder("configs", "gpt-tiny.json") or DATA_DIR.parent / "configs"


def tensorboard_available() -> bool:
    """Whether ``tensorboard`` (or tensorboardX) is importable, so the Trainer can write event files."""
    return any(importlib.util.find_spec(name) is not None for name in ("tensorboard", "tensorboardX"))


def unknown_flags_message(unknown: Sequence[str]) -> str:
    """One line for arguments the command does not take, instead of HfArgumentParser's "Some specified arguments are
    not used by the HfArgumentParser: [...]" (which names a class the user never met)."""
    return f"unrecognized arguments: {' '.join(unknown)} (--help lists the flags this command takes)"


def parse_args(dataclass_types: tuple, argv: Sequence[str] | None, description: str | None = None) -> tuple:
    """Parse ``argv`` (default ``sys.argv[1:]``) into the dataclasses; a single ``.json`` argument is a flags file.

    Unless ``--report_to`` is given, training logs go to TensorBoard when it is installed and nowhere otherwise.
    Unless ``--do_train`` or ``--do_eval`` is given, both run (a bare script call trains and evaluates).
    """
    return parse_args_and_given(dataclass_types, argv, description)[0]


def parse_args_and_given(dataclass_types: tuple, argv: Sequence[str] | None,
                         description: str | None = None) -> tuple[tuple, set[str]]:
    """``parse_args``, and the names of the flags the user gave (underscore spelling; the keys of a JSON flags
    file), so a script can tell a default from a value the user chose."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(dataclass_types, description)
    if len(argv) == 1 and argv[0].endswith(".json") and not argv[0].startswith("-"):
        parsed = parser.parse_json_file(os.path.abspath(argv[0]))
        given = set(json.loads(Path(argv[0]).read_text()))
    else:
        *parsed, unknown = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
        if unknown:
            raise ValueError(unknown_flags_message(unknown))
        given = {a[2:].split("=", 1)[0].replace("-", "_") for a in argv if a.startswith("--")}
    training_args = next(p for p in parsed if isinstance(p, TrainingArguments))
    if "report_to" not in given:
        training_args.report_to = ["tensorboard"] if tensorboard_available() else []
    if not given & {"do_train", "do_eval"}:  # (an eval_strategy alone turns do_eval on: that is not a choice)
        training_args.do_train = training_args.do_eval = True
    default_pin_memory(training_args, given)
    refuse_fsdp_on_cpu(training_args)
    return parsed, given


def start_run(dataclass_types: tuple, argv: Sequence[str] | None, description: str | None,
              check_config: Callable[[Any], Any], from_scratch_defaults: dict[str, Any] | None = None) -> tuple:
    """Parse the flags (``parse_args``) and check, before any slow work, everything a user can get wrong: step counts,
    the data files, ``--config`` against ``--model_name_or_path`` (``check_config(model_args)`` reads the config of a
    fresh model, so a missing one fails here), and the output folder (``prepare_output_dir``); then seed everything.
    A fresh model (no ``--model_name_or_path``) takes ``from_scratch_defaults`` for the TrainingArguments flags the
    user did not give (e.g. a pre-training learning rate instead of TrainingArguments' fine-tuning 5e-5).
    The dataclasses are (model, data, run, training) arguments, in that order. Returns them parsed. Raises ValueError
    naming the flag."""
    parsed, given = parse_args_and_given(dataclass_types, argv, description)
    model_args, data_args, run_args, training_args = parsed
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    if model_args.model_name_or_path is None:
        for name, value in (from_scratch_defaults or {}).items():
            if name not in given:
                setattr(training_args, name, value)
                logging.getLogger(__name__).info("a fresh model: --%s %s (the from-scratch default; give the flag to "
                                                 "change it)", name, value)
    check_training_args(training_args)
    check_file("--train_file", data_args.train_file)
    check_file("--validation_file", data_args.validation_file)
    if model_args.model_name_or_path is not None and getattr(model_args, "config", None) is not None:
        raise ValueError("pass either --config (a fresh model) or --model_name_or_path (a checkpoint), not both")
    if model_args.model_name_or_path is None:
        check_config(model_args)
    check_checkpoint("--model_name_or_path", model_args.model_name_or_path)
    prepare_output_dir(training_args.output_dir, run_args.overwrite_output_dir, training_args.resume_from_checkpoint)
    training_args.resume_from_checkpoint = resume_checkpoint(training_args.output_dir,
                                                             training_args.resume_from_checkpoint)
    set_seed(training_args.seed)
    return parsed


def pinned_memory_helps(training_args: TrainingArguments) -> bool:
    """Whether pinning batches in page-locked memory can speed up their copy to a device: only with an accelerator
    (CUDA, MPS, XPU, ...) that training uses. Without one, torch's DataLoader warns "'pin_memory' argument is set as
    true but no accelerator is found" and does not pin, so the scripts turn the Trainer's default
    (``dataloader_pin_memory=True``) off unless the user set it."""
    import torch

    if training_args.use_cpu:
        return False
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6; what the DataLoader itself asks
    if accelerator is not None:
        return accelerator.is_available()
    return torch.cuda.is_available() or torch.backends.mps.is_available()


def default_pin_memory(training_args: TrainingArguments, given: set[str]) -> None:
    """Turn ``dataloader_pin_memory`` off when pinning cannot help (``pinned_memory_helps``) and the user did not set
    it (``given``: the flag names on the command line or in the JSON flags file). torch would otherwise warn on every
    DataLoader."""
    if not given & {"dataloader_pin_memory", "no_dataloader_pin_memory"} and not pinned_memory_helps(training_args):
        training_args.dataloader_pin_memory = False


def special_token_ids(tokenizer: Any) -> dict[str, int | None]:
    """The tokenizer's ``pad_token_id``, ``bos_token_id`` and ``eos_token_id``, for the config of a fresh model, so
    config, generation config and tokenizer agree. Otherwise the Trainer re-aligns them when training starts and
    warns "The tokenizer has new PAD/BOS/EOS tokens that differ from the model config" (transformers'
    ``trainer_utils.align_special_tokens``), and a model reloaded from the checkpoint would generate with other
    ids than its tokenizer's."""
    return {name: getattr(tokenizer, name) for name in ("pad_token_id", "bos_token_id", "eos_token_id")}


def refuse_fsdp_on_cpu(training_args: TrainingArguments) -> None:
    """Exit with one ``error:`` line (status 2) when FSDP was requested on CPU, where accelerate would silently run
    plain DDP instead (``scratchformers.distributed.check_fsdp_device``). Call it right after parsing the flags."""
    try:
        check_fsdp_device(training_args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def check_file(flag: str, path: str | None) -> None:
    """Raise a ValueError naming ``flag`` when ``path`` is not an existing, non-empty file (checked before any slow
    work: an empty file would otherwise fail deep inside ``datasets``)."""
    if path is None:
        return
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path!r} is a folder; give a path to a file")
    if not os.path.isfile(path):
        raise ValueError(f"{flag} {path!r} does not exist (give a path to a local file)")
    with open(path, "rb") as fh:
        if not fh.read(1 << 16).strip():
            raise ValueError(f"{flag} {path!r} is empty (it holds no text)")


def check_checkpoint(flag: str, name: str | None) -> None:
    """Raise a ValueError naming ``flag`` when ``name`` is neither an existing folder nor a Hub model id that can be
    downloaded: a path that cannot be a Hub id (``./x``, ``/x``, ``a/b/c``), or any name while the Hub is off
    (``HF_HUB_OFFLINE``) or unreachable. Checked before any slow work: ``from_pretrained`` would otherwise retry the
    Hub for half a minute and end in a traceback."""
    if name is None or os.path.isdir(name):
        return
    if os.path.exists(name):
        raise ValueError(f"{flag} {name!r} is a file; give the checkpoint folder (config.json and weights)")
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        raise ValueError(f"{flag} {name!r}: no such folder (and not a Hub model id such as 'HuggingFaceTB/SmolLM2-135M')")
    from huggingface_hub import constants

    from ..hub import hub_reachable

    if constants.HF_HUB_OFFLINE or not hub_reachable():
        raise ValueError(f"{flag} {name!r}: no such folder, and the Hugging Face Hub is not reachable to download it "
                         "as a model id; give a local checkpoint folder")


def check_training_args(training_args: TrainingArguments) -> None:
    """Reject step counts that cannot mean what the user asked for: ``--max_steps 0`` (or below -1, the "train by
    epochs" default) would otherwise train one step, or none, and exit 0. ValueError naming the flag."""
    if training_args.max_steps == 0 or training_args.max_steps < -1:
        raise ValueError(
            f"--max_steps {training_args.max_steps}: give a positive number of optimizer steps "
            "(or leave it out to train for --num_train_epochs)"
        )


def prepare_output_dir(output_dir: str | os.PathLike, overwrite: bool, resume: str | bool | None) -> Path:
    """Check ``output_dir`` before any slow work, following the Hugging Face examples' convention.

    A path that is a file is an error. An existing folder with files in it is refused (so an earlier run is never
    replaced, and its ``checkpoint-N`` folders never mix with this run's) unless ``overwrite`` or ``resume``
    (``--resume_from_checkpoint``) continues that run. With ``overwrite`` the earlier run is moved aside
    (``folders.replace_later``) and deleted only when the script's ``main`` (wrapped in ``keeps_earlier_run``)
    succeeds; a failed run puts it back. Returns the folder's path.
    """
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output_dir {str(out)!r} is a file; give a folder path")
    if out.is_dir() and any(out.iterdir()) and not resume_flag(resume):
        if not overwrite:
            raise ValueError(
                f"--output_dir {str(out)!r} already holds files from an earlier run; pass --overwrite_output_dir to "
                "replace them, --resume_from_checkpoint to continue that run, or choose another folder"
            )
        replace_later(out)
    return out


def resume_flag(resume: str | bool | None) -> str | bool | None:
    """``--resume_from_checkpoint`` as given: ``True`` (the bare flag, or ``"true"`` in any case when no folder has
    that name), a checkpoint path, or None for no resume (not given, ``False``, ``""``, ``"false"``)."""
    if isinstance(resume, str) and resume.lower() in ("true", "false") and not os.path.isdir(resume):
        return resume.lower() == "true" or None
    return resume or None


def resume_checkpoint(output_dir: str | os.PathLike, resume: str | bool | None) -> str | None:
    """The checkpoint folder ``--resume_from_checkpoint`` continues from, checked before any slow work: None when not
    resuming; for the bare flag (``True``) the last ``checkpoint-N`` folder in ``output_dir`` (what HF's example
    scripts find with ``get_last_checkpoint``; here the last *complete* one, ``training.get_last_complete_checkpoint``,
    so a checkpoint half-written by a killed run is skipped); else the folder given. ``true``/``false`` (any case, when
    no folder has that name) mean the bare flag and no resume, as ``scripts/train_tiny.py --resume_from_checkpoint
    true`` does. ValueError naming the flag when there is no such checkpoint."""
    resume = resume_flag(resume)
    if resume is None:
        return None
    if resume is True:
        from ..training import get_last_complete_checkpoint

        last = get_last_complete_checkpoint(output_dir)
        if last is None:
            raise ValueError(
                f"--resume_from_checkpoint: --output_dir {str(output_dir)!r} holds no checkpoint-N folder to continue "
                "from (the Trainer saves one every --save_steps unless --save_strategy no); pass a checkpoint "
                "folder's path, or start over with --overwrite_output_dir"
            )
        return last
    if not os.path.isdir(resume):
        raise ValueError(f"--resume_from_checkpoint {str(resume)!r}: no such checkpoint folder (give a checkpoint-N "
                         "folder, or the bare flag for the last one in --output_dir)")
    return str(resume)


def tokenizer_source(model_args: Any, resume: str | None) -> str | None:
    """Where a script loads its tokenizer from, when it does not train one: ``--tokenizer_name``; else the checkpoint
    ``--resume_from_checkpoint`` continues (``resume``, resolved by ``resume_checkpoint``), whose saved tokenizer is the
    one its embeddings were trained with (training another, on another --train_file, would not fit them); else
    ``--model_name_or_path``. None: train one."""
    if model_args.tokenizer_name:
        return model_args.tokenizer_name
    if resume and any(os.path.isfile(os.path.join(resume, name)) for name in ("tokenizer.json", "tokenizer_config.json")):
        return resume
    return model_args.model_name_or_path


def hold_out(dataset: Any, percentage: int, seed: int, file: str) -> tuple[Any, Any]:
    """Split ``dataset`` (the rows of ``file``) into (train, validation) with ``percentage`` % held out, seeded.

    The same ``(percentage, seed)`` gives the same split every time, so ``scratchformers evaluate`` can score the
    held-out rows again. ValueError when the percentage is out of range or the file has too few rows to split.
    """
    if not 0 < percentage < 100:
        raise ValueError(f"--validation_split_percentage must be in 1..99, got {percentage}")
    if len(dataset) < 2:
        raise ValueError(
            f"{file} has {len(dataset)} row(s): too few to hold out a validation part; add rows or pass --validation_file"
        )
    split = dataset.train_test_split(test_size=percentage / 100, seed=seed)
    return split["train"], split["test"]


TRAINING_DATA = "training_data.json"


def record_training_data(output_dir: str | os.PathLike, **fields: Any) -> None:
    """Write ``output_dir/training_data.json``: which files (and held-out split) the model was trained and validated
    on, so ``scratchformers evaluate`` without ``--file`` scores the same data."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for key in ("train_file", "validation_file", "test_file"):  # absolute: the record is read from other folders
        if fields.get(key):
            fields[key] = str(Path(fields[key]).resolve())
    (out / TRAINING_DATA).write_text(json.dumps(fields, indent=2), encoding="utf-8")


def read_training_data(checkpoint: str | os.PathLike) -> dict | None:
    """The record written by ``record_training_data``, or None when the checkpoint has none."""
    path = Path(checkpoint) / TRAINING_DATA
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def describe_data(train_file: str | None, validation_file: str | None, percentage: int, seed: int) -> str:
    """One sentence saying where the training and validation data came from (printed and put in the model card)."""
    train = f"`{train_file}`" if train_file else "the shipped data"
    if validation_file:
        return f"trained on {train}, validated on `{validation_file}`."
    return f"trained on {train}; validated on {percentage}% of its rows held out (seed {seed}), not trained on."


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
    license: str | None = "apache-2.0",
    training_summary: str | None = None,
) -> Path:
    """Save model, tokenizer, metrics, trainer state and a model card into ``output_dir``: one folder a Hub user can
    load, and that ``push --check`` finds upload-complete.

    The model's code comes along (``auto_map`` + modules) because ``import scratchformers`` marked every family
    for the Auto classes; the tokenizer is saved beside the weights so ``AutoTokenizer`` finds it, with
    ``model_max_length`` set to the model's real number of positions. For the user's own data pass
    ``language=None, license=None`` and a ``training_summary`` naming their files (the card then claims neither
    our data sources nor a language or licence).
    """
    out = Path(output_dir)
    trainer.save_model(str(out))
    positions = getattr(trainer.model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        tokenizer.model_max_length = positions
    tokenizer.save_pretrained(str(out))
    if trainer.is_world_process_zero():
        (out / "all_results.json").write_text(json.dumps(metrics, indent=2, default=str))
        trainer.state.save_to_json(str(out / "trainer_state.json"))  # log_history: the loss curve's data
        write_model_card(out, metrics, datasets=datasets, base_config=base_config, task=task, language=language,
                         license=license, training_summary=training_summary)
    return out
