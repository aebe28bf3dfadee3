"""Train (or continue training) a causal language model on local text files, like HF's run_clm.py.

Without --tokenizer_name a byte-level BPE tokenizer is trained on the training file; texts are tokenised with
datasets' .map(batched=True) and grouped into blocks of --block_size tokens (with --packing: each line is one
sequence, and each batch one padding-free row of them, position ids restarting per line); the model is built from
--config (a fresh model, default configs/gpt-tiny.json) or loaded from --model_name_or_path. After training, the eval
perplexity exp(loss) is reported — of the unsmoothed next-token loss, also under --label_smoothing_factor — and
--output_dir receives a Hub-ready checkpoint: weights, config with auto_map, modeling code, tokenizer,
all_results.json and a README.md model card.

    scratchformers train clm --config configs/gpt-tiny.json --output_dir outputs/my-gpt --max_steps 500
    scratchformers train clm --packing --per_device_train_batch_size 16 --output_dir outputs/packed   # no padding
    python scripts/run_clm.py --train_file my.txt --validation_file my-val.txt --output_dir outputs/my-gpt

Every TrainingArguments flag works (--num_train_epochs, --learning_rate, --eval_strategy, --bf16, --report_to ...).
A fresh model (no --model_name_or_path) trains with --learning_rate 1e-3 unless you give one: TrainingArguments'
default, 5e-5, is a fine-tuning rate, and barely moves a randomly initialised model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from datasets import load_dataset
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DataCollatorWithFlattening,
    TrainingArguments,
    default_data_collator,
)

from scratchformers.training import AtomicCheckpointTrainer
from scratchformers_light.arguments import ClmDataArguments as DataArguments
from scratchformers_light.arguments import ClmModelArguments as ModelArguments

from ..data import resolve_data_dir, tokenize_and_group, tokenize_for_packing
from ..tokenization import train_tokenizer
from .common import (
    CONFIG_DIR,
    RunArguments,
    check_file,
    config_from_json,
    describe_data,
    display_path,
    evaluate_unsmoothed,
    finite_perplexity,
    hold_out,
    keeps_earlier_run,
    record_training_data,
    save_checkpoint,
    special_token_ids,
    start_run,
    tokenizer_source,
)

logger = logging.getLogger(__name__)

# TrainingArguments defaults for a fresh model (no --model_name_or_path) when the user gives none: 1e-3 is the rate
# the demo and docs/getting-started.md train configs/gpt-tiny.json with. TrainingArguments' 5e-5 is a fine-tuning
# rate, for a checkpoint that has already learned: on the README's command (200 steps, shipped prose) it ends at
# validation perplexity 2,159 against 466 at 1e-3 (tests/training/test_from_scratch_rate.py).
FROM_SCRATCH_DEFAULTS = {"learning_rate": 1e-3}


def load_text(data_args: DataArguments, seed: int):
    """A DatasetDict with ``train``/``validation`` text, empty lines dropped; the names of the datasets used.

    Validation comes from --validation_file or, without one, from a seeded held-out part of the training text
    (the user's own file, or the shipped prose when no --train_file is given) — never from other data.
    """
    check_file("--train_file", data_args.train_file)
    check_file("--validation_file", data_args.validation_file)
    if data_args.train_file is None:
        prose = resolve_data_dir() / "prose"
        files = {"train": str(prose / "train.txt"), "validation": data_args.validation_file or str(prose / "validation.txt")}
        names = ["scratchformers-prose"]
    else:
        files = {"train": data_args.train_file}
        if data_args.validation_file:
            files["validation"] = data_args.validation_file
        names = [Path(data_args.train_file).stem]
    raw = load_dataset("text", data_files=files)
    raw = raw.filter(lambda row: len(row["text"].strip()) > 0, desc="Dropping empty lines")
    if "validation" not in raw:
        raw["train"], raw["validation"] = hold_out(
            raw["train"], data_args.validation_split_percentage, seed, files["train"]
        )
    return raw, names


def build_tokenizer(model_args: ModelArguments, train_file: str, resume: str | None = None):
    """--tokenizer_name, else the tokenizer of the checkpoint resumed (``resume``) or of --model_name_or_path, else
    byte-level BPE trained on ``train_file``."""
    name = tokenizer_source(model_args, resume)
    if name is not None:
        return AutoTokenizer.from_pretrained(name, trust_remote_code=True)
    logger.info("training a byte-level BPE tokenizer (vocab %d) on %s", model_args.vocab_size, train_file)
    return train_tokenizer([train_file], kind="bpe", vocab_size=model_args.vocab_size)


def build_model(model_args: ModelArguments, tokenizer, block_size: int):
    """A fresh model from --config sized to the tokenizer, or the checkpoint --model_name_or_path."""
    if model_args.model_name_or_path is not None and model_args.config is not None:
        raise ValueError("pass either --config (a fresh model) or --model_name_or_path (a checkpoint), not both")
    if model_args.model_name_or_path is not None:
        model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, trust_remote_code=True)
        if model.config.vocab_size < len(tokenizer):
            raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but the model only {model.config.vocab_size}")
        return model, model_args.model_name_or_path
    config_path = model_args.config or str(CONFIG_DIR / "gpt-tiny.json")
    config = config_from_json(
        config_path,
        vocab_size=len(tokenizer),
        **special_token_ids(tokenizer),
    )
    if config.max_position_embeddings < block_size:
        config.max_position_embeddings = block_size
    return AutoModelForCausalLM.from_config(config), display_path(config_path)


@keeps_earlier_run
def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Parse the flags, train and evaluate, save the checkpoint; returns the metrics (eval_loss, perplexity, ...)."""
    model_args, data_args, run_args, training_args = start_run(
        (ModelArguments, DataArguments, RunArguments, TrainingArguments), argv, __doc__,
        lambda m: config_from_json(m.config or str(CONFIG_DIR / "gpt-tiny.json")), FROM_SCRATCH_DEFAULTS,
    )

    raw, dataset_names = load_text(data_args, training_args.seed)
    train_file = data_args.train_file or str(resolve_data_dir() / "prose" / "train.txt")
    tokenizer = build_tokenizer(model_args, train_file, training_args.resume_from_checkpoint)
    model, base = build_model(model_args, tokenizer, data_args.block_size)
    block_size = min(data_args.block_size, model.config.max_position_embeddings)
    if data_args.packing:  # one sequence per line, packed into one row per batch by the collator
        blocks = tokenize_for_packing(raw, tokenizer, block_size, num_proc=data_args.preprocessing_num_workers)
    else:
        blocks = tokenize_and_group(raw, tokenizer, block_size, num_proc=data_args.preprocessing_num_workers)
    train_set, eval_set = blocks["train"], blocks["validation"]
    if data_args.max_train_samples is not None:
        train_set = train_set.select(range(min(data_args.max_train_samples, len(train_set))))
    if data_args.max_eval_samples is not None:
        eval_set = eval_set.select(range(min(data_args.max_eval_samples, len(eval_set))))
    unit = "lines (of 2 or more tokens)" if data_args.packing else f"blocks of {block_size} tokens"
    fix = "" if data_args.packing else "; lower --block_size"
    for split, part in (("training", train_set), ("validation", eval_set)):
        if len(part) == 0:
            where = data_args.validation_file if split == "validation" and data_args.validation_file else (
                f"the {data_args.validation_split_percentage}% held out of {train_file}" if split == "validation"
                else train_file
            )
            raise ValueError(
                f"no {unit} in the {split} text ({where}): it is too short{fix}"
                + ("" if split == "training" or data_args.validation_file else
                   ", raise --validation_split_percentage or pass --validation_file")
            )
    summary = describe_data(data_args.train_file, data_args.validation_file, data_args.validation_split_percentage,
                            training_args.seed)
    print(f"data: {summary} {len(train_set)} training and {len(eval_set)} validation {unit}")

    trainer = AtomicCheckpointTrainer(  # checkpoints appear whole or not at all (training.py)
        model=model,
        args=training_args,
        train_dataset=train_set if training_args.do_train else None,
        eval_dataset=eval_set if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=DataCollatorWithFlattening() if data_args.packing else default_data_collator,
    )
    metrics: dict[str, float] = {}
    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        metrics.update(result.metrics)
        trainer.log_metrics("train", result.metrics)
    if training_args.do_eval:
        evaluated = evaluate_unsmoothed(trainer)  # perplexity = exp(next-token NLL), label smoothing or not
        evaluated["perplexity"] = finite_perplexity(evaluated["eval_loss"])
        metrics.update(evaluated)
        trainer.log_metrics("eval", evaluated)
        print(f"validation perplexity: {evaluated['perplexity']:.2f}")
    own = data_args.train_file is not None
    save_checkpoint(
        trainer, tokenizer, training_args.output_dir, metrics, dataset_names, base, task="causal-lm",
        language=None if own else "en", license=None if own else "apache-2.0", training_summary=summary if own else None,
    )
    validation_file = data_args.validation_file or (None if own else str(resolve_data_dir() / "prose" / "validation.txt"))
    record_training_data(
        training_args.output_dir, task="clm", train_file=train_file, validation_file=validation_file,
        validation_split_percentage=None if validation_file else data_args.validation_split_percentage,
        seed=training_args.seed, block_size=block_size,
    )
    print(f"saved model, tokenizer and model card to {training_args.output_dir}")
    return metrics


if __name__ == "__main__":
    main()
