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
import math
import os
import sys
from dataclasses import dataclass, field

from datasets import load_dataset
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    HfArgumentParser,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
    set_seed,
)

from scratchformers import ScratchBertConfig, ScratchBertForMaskedLM
from scratchformers.data import resolve_data_dir, tokenize_and_group
from scratchformers.examples.common import CONFIG_DIR, evaluate_unsmoothed
from scratchformers.tokenization import train_tokenizer


@dataclass
class ModelArguments:
    """Which model and tokenizer to start from."""

    config: str | None = field(
        default=None, metadata={"help": "A ScratchBert config JSON to build a fresh model from (default: configs/bert-tiny.json)."}
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A saved checkpoint folder to continue pre-training (instead of --config)."}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "A saved tokenizer folder; if not given, a WordPiece tokenizer is trained."}
    )
    vocab_size: int = field(default=8192, metadata={"help": "Vocabulary size of the trained WordPiece tokenizer."})


@dataclass
class DataTrainingArguments:
    """Which text to train and evaluate on, and how to cut it into blocks."""

    train_file: str | None = field(
        default=None, metadata={"help": "A text file, one text per line (default: the shipped data/prose/train.txt)."}
    )
    validation_file: str | None = field(
        default=None, metadata={"help": "A text file for evaluation (default: the shipped data/prose/validation.txt)."}
    )
    max_seq_length: int = field(
        default=128, metadata={"help": "Block length in tokens (capped at the model's max_position_embeddings)."}
    )
    mlm_probability: float = field(default=0.15, metadata={"help": "Fraction of tokens to mask (BERT: 0.15)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only this many training blocks."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep only this many evaluation blocks."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenisation."})


def _default_file(split: str) -> str:
    return str(resolve_data_dir() / "prose" / f"{split}.txt")


def build_tokenizer(model_args: ModelArguments, train_file: str, output_dir: str) -> PreTrainedTokenizerBase:
    """Load --tokenizer_name (or the checkpoint's tokenizer), else train WordPiece on the training file."""
    name = model_args.tokenizer_name
    if name is None and model_args.model_name_or_path is not None:
        name = model_args.model_name_or_path
    if name is not None:
        return AutoTokenizer.from_pretrained(name)
    return train_tokenizer(train_file, kind="wordpiece", vocab_size=model_args.vocab_size,
                           save_dir=os.path.join(output_dir, "tokenizer"))


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
    config_path = model_args.config or str(CONFIG_DIR / "bert-tiny.json")
    with open(config_path, encoding="utf-8") as fh:
        values = json.load(fh)
    if values.pop("model_type", ScratchBertConfig.model_type) != ScratchBertConfig.model_type:
        raise ValueError(f"{config_path} is not a {ScratchBertConfig.model_type!r} config.")
    values.update(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    return ScratchBertForMaskedLM(ScratchBertConfig(**values))


def main(args: list[str] | None = None) -> dict[str, float]:
    """Parse the flags, train and evaluate; returns the metrics (train_loss, eval_loss, perplexity)."""
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))
    if args is None and len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
        model_args, data_args, training_args = parser.parse_json_file(os.path.abspath(sys.argv[1]))
    else:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses(args)
    if not training_args.do_train and not training_args.do_eval:  # like a bare `python run_mlm.py`: do both
        training_args.do_train = training_args.do_eval = True
    set_seed(training_args.seed)

    train_file = data_args.train_file or _default_file("train")
    validation_file = data_args.validation_file or _default_file("validation")
    for name, path in (("--train_file", train_file), ("--validation_file", validation_file)):
        if not os.path.isfile(path):
            raise ValueError(f"{name} {path!r} does not exist.")

    tokenizer = build_tokenizer(model_args, train_file, training_args.output_dir)
    if tokenizer.mask_token is None:
        raise ValueError("The tokenizer has no mask token; masked language modelling needs one (e.g. [MASK]).")
    model = build_model(model_args, tokenizer)

    block_size = min(data_args.max_seq_length, model.config.max_position_embeddings)
    raw = load_dataset("text", data_files={"train": train_file, "validation": validation_file})
    raw = raw.filter(lambda row: len(row["text"].strip()) > 0)
    blocks = tokenize_and_group(raw, tokenizer, block_size, num_proc=data_args.preprocessing_num_workers,
                                add_labels=False)
    train_set, eval_set = blocks["train"], blocks["validation"]
    if data_args.max_train_samples is not None:
        train_set = train_set.select(range(min(data_args.max_train_samples, len(train_set))))
    if data_args.max_eval_samples is not None:
        eval_set = eval_set.select(range(min(data_args.max_eval_samples, len(eval_set))))

    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=data_args.mlm_probability)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_set if training_args.do_train else None,
        eval_dataset=eval_set if training_args.do_eval else None,
        data_collator=collator,
        processing_class=tokenizer,
    )
    metrics: dict[str, float] = {}
    if training_args.do_train:
        result = trainer.train()
        trainer.save_model()  # model + config + code (auto_map) + tokenizer, into output_dir
        metrics.update(result.metrics)
        trainer.log_metrics("train", result.metrics)
        trainer.save_metrics("train", result.metrics)
    if training_args.do_eval:
        eval_metrics = evaluate_unsmoothed(trainer)  # perplexity from the unsmoothed masked-token loss
        eval_metrics["perplexity"] = math.exp(eval_metrics["eval_loss"]) if eval_metrics["eval_loss"] < 700 else math.inf
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        print(f"eval perplexity = exp(eval_loss) = {eval_metrics['perplexity']:.2f}")
        metrics.update(eval_metrics)
    return metrics


if __name__ == "__main__":
    main()
