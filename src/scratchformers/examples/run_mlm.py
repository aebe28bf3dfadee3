"""Pre-train a scratch BERT with masked language modelling on local text files (like HF's run_mlm.py).

Trains a WordPiece tokenizer on the training file (unless --tokenizer_name is given), builds a ScratchBertForMaskedLM
from a config JSON (or loads --model_name_or_path), trains it with the HF Trainer and
DataCollatorForLanguageModeling(mlm=True), saves model + tokenizer to --output_dir and reports eval perplexity.

    python scripts/run_mlm.py --config configs/bert-tiny.json --output_dir outputs/bert-tiny \\
        --max_steps 2000 --per_device_train_batch_size 32 --learning_rate 5e-4 --do_train --do_eval

Every TrainingArguments flag works (--num_train_epochs, --eval_strategy, --bf16, ...).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from datasets import load_dataset
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    PreTrainedTokenizerBase,
    TrainingArguments,
)

from scratchformers.training import AtomicCheckpointTrainer
from scratchformers_light.arguments import MlmDataTrainingArguments as DataTrainingArguments
from scratchformers_light.arguments import MlmModelArguments as ModelArguments

from ..configuration_scratch_bert import ScratchBertConfig
from ..data import resolve_data_dir, tokenize_and_group
from ..modeling_scratch_bert import ScratchBertForMaskedLM
from ..tokenization import train_tokenizer
from .common import (
    CONFIG_DIR,
    RunArguments,
    describe_data,
    display_path,
    evaluate_unsmoothed,
    finite_perplexity,
    hold_out,
    keeps_earlier_run,
    record_training_data,
    save_checkpoint,
    shipped_config,
    special_token_ids,
    start_run,
    tokenizer_source,
)

logger = logging.getLogger(__name__)


def _default_file(split: str) -> str:
    return str(resolve_data_dir() / "prose" / f"{split}.txt")


def build_tokenizer(model_args: ModelArguments, train_file: str, resume: str | None = None) -> PreTrainedTokenizerBase:
    """Load --tokenizer_name (or the tokenizer of the checkpoint resumed, ``resume``, or of --model_name_or_path),
    else train WordPiece on the training file."""
    name = tokenizer_source(model_args, resume)
    if name is not None:
        return AutoTokenizer.from_pretrained(name)
    return train_tokenizer(train_file, kind="wordpiece", vocab_size=model_args.vocab_size)


def read_config(model_args: ModelArguments) -> tuple[dict, str]:
    """The fields of --config (default configs/bert-tiny.json) and its path; ValueError if missing or not BERT."""
    config_path = shipped_config(model_args.config or str(CONFIG_DIR / "bert-tiny.json"))
    if not config_path.is_file():
        raise ValueError(f"--config {str(config_path)!r} does not exist; shipped configs: "
                         f"{sorted(p.name for p in CONFIG_DIR.glob('*.json'))}")
    values = json.loads(config_path.read_text(encoding="utf-8"))
    if values.pop("model_type", ScratchBertConfig.model_type) != ScratchBertConfig.model_type:
        raise ValueError(f"--config {str(config_path)!r} is not a {ScratchBertConfig.model_type!r} config.")
    return values, str(config_path)


def build_model(model_args: ModelArguments, tokenizer: PreTrainedTokenizerBase) -> ScratchBertForMaskedLM:
    """A fresh ScratchBertForMaskedLM from --config sized to the tokenizer, or the checkpoint --model_name_or_path."""
    if model_args.model_name_or_path is not None and model_args.config is not None:
        raise ValueError("Pass either --config (a fresh model) or --model_name_or_path (a checkpoint), not both.")
    if model_args.model_name_or_path is not None:
        model = AutoModelForMaskedLM.from_pretrained(model_args.model_name_or_path)
        if model.config.vocab_size < len(tokenizer):
            raise ValueError(
                f"The tokenizer has {len(tokenizer)} tokens but the model's vocabulary only {model.config.vocab_size}."
            )
        return model
    values, _ = read_config(model_args)
    values.update(vocab_size=len(tokenizer), **special_token_ids(tokenizer))
    return ScratchBertForMaskedLM(ScratchBertConfig(**values))


def load_text(data_args: DataTrainingArguments, seed: int):
    """``train``/``validation`` text (empty lines dropped): --validation_file, or a seeded held-out part of the
    training file (the shipped validation text only when the shipped training text is used)."""
    train_file = data_args.train_file or _default_file("train")
    files = {"train": train_file}
    if data_args.validation_file or data_args.train_file is None:
        files["validation"] = data_args.validation_file or _default_file("validation")
    raw = load_dataset("text", data_files=files).filter(lambda row: len(row["text"].strip()) > 0)
    if "validation" not in raw:
        raw["train"], raw["validation"] = hold_out(raw["train"], data_args.validation_split_percentage, seed, train_file)
    return raw


@keeps_earlier_run
def main(args: Sequence[str] | None = None) -> dict[str, float]:
    """Parse the flags, train and evaluate, save a complete checkpoint; returns the metrics (eval_loss, perplexity)."""
    model_args, data_args, run_args, training_args = start_run(
        (ModelArguments, DataTrainingArguments, RunArguments, TrainingArguments), args, __doc__, read_config
    )
    base = model_args.model_name_or_path or display_path(read_config(model_args)[1])

    train_file = data_args.train_file or _default_file("train")
    raw = load_text(data_args, training_args.seed)
    tokenizer = build_tokenizer(model_args, train_file, training_args.resume_from_checkpoint)
    if tokenizer.mask_token is None:
        raise ValueError("The tokenizer has no mask token; masked language modelling needs one (e.g. [MASK]).")
    model = build_model(model_args, tokenizer)

    block_size = min(data_args.max_seq_length, model.config.max_position_embeddings)
    blocks = tokenize_and_group(raw, tokenizer, block_size, num_proc=data_args.preprocessing_num_workers,
                                add_labels=False)
    train_set, eval_set = blocks["train"], blocks["validation"]
    if data_args.max_train_samples is not None:
        train_set = train_set.select(range(min(data_args.max_train_samples, len(train_set))))
    if data_args.max_eval_samples is not None:
        eval_set = eval_set.select(range(min(data_args.max_eval_samples, len(eval_set))))
    for split, part in (("training", train_set), ("validation", eval_set)):
        if len(part) == 0:
            held_out = split == "validation" and data_args.train_file and not data_args.validation_file
            where = (f"the {data_args.validation_split_percentage}% held out of {train_file}" if held_out
                     else data_args.validation_file or _default_file("validation") if split == "validation"
                     else train_file)
            raise ValueError(f"no blocks of {block_size} tokens in the {split} text ({where}): it is too short; "
                             "lower --max_seq_length" + (", raise --validation_split_percentage or pass "
                                                         "--validation_file" if held_out else ""))
    summary = describe_data(data_args.train_file, data_args.validation_file, data_args.validation_split_percentage,
                            training_args.seed)
    print(f"data: {summary} {len(train_set)} training and {len(eval_set)} validation blocks of {block_size} tokens")

    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=data_args.mlm_probability)
    trainer = AtomicCheckpointTrainer(  # checkpoints appear whole or not at all (training.py)
        model=model,
        args=training_args,
        train_dataset=train_set if training_args.do_train else None,
        eval_dataset=eval_set if training_args.do_eval else None,
        data_collator=collator,
        processing_class=tokenizer,
    )
    metrics: dict[str, float] = {}
    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        metrics.update(result.metrics)
        trainer.log_metrics("train", result.metrics)
    if training_args.do_eval:
        eval_metrics = evaluate_unsmoothed(trainer)  # perplexity from the unsmoothed masked-token loss
        eval_metrics["perplexity"] = finite_perplexity(eval_metrics["eval_loss"])
        trainer.log_metrics("eval", eval_metrics)
        print(f"eval perplexity = exp(eval_loss) = {eval_metrics['perplexity']:.2f}")
        metrics.update(eval_metrics)
    own = data_args.train_file is not None
    names = [Path(train_file).stem] if own else ["scratchformers-prose"]
    save_checkpoint(
        trainer, tokenizer, training_args.output_dir, metrics, names, base, task="masked-lm",
        language=None if own else "en", license=None if own else "apache-2.0", training_summary=summary if own else None,
    )
    validation_file = data_args.validation_file or (None if own else _default_file("validation"))
    record_training_data(
        training_args.output_dir, task="mlm", train_file=train_file, validation_file=validation_file,
        validation_split_percentage=None if validation_file else data_args.validation_split_percentage,
        seed=training_args.seed, block_size=block_size,
    )
    print(f"saved model, tokenizer, trainer state and model card to {training_args.output_dir}")
    return metrics


if __name__ == "__main__":
    main()
