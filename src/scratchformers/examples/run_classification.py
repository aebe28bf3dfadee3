"""Train a sequence classifier on CSV files with columns text,label (default: the shipped language-ID set).

The label names found in the training file become the config's id2label/label2id, so pipeline("text-classification")
prints names. The family comes from the config's model_type (configs/gpt-tiny.json by default: a GPT read at the
last real token; a scratch_bert config gives a BERT read at [CLS]). Without --tokenizer_name a tokenizer of the
family's kind (byte-level BPE for GPT, WordPiece for BERT) is trained on the training texts. Accuracy is computed
locally; --output_dir receives weights, config, code, tokenizer, all_results.json and a README.md model card.

    scratchformers train classification --output_dir outputs/langid --max_steps 300
    python scripts/run_classification.py --train_file my.csv --validation_file my-val.csv --output_dir outputs/clf

Every TrainingArguments flag works (--num_train_epochs, --learning_rate, --eval_strategy, --report_to ...).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datasets import ClassLabel, load_dataset
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    EvalPrediction,
    Trainer,
    TrainingArguments,
    set_seed,
)

from ..data import resolve_data_dir
from ..tokenization import train_tokenizer
from .common import CONFIG_DIR, check_file, config_from_json, display_path, parse_args, save_checkpoint

logger = logging.getLogger(__name__)

TOKENIZER_KIND = {"scratch_gpt": "bpe", "scratch_bert": "wordpiece"}


@dataclass
class ModelArguments:
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
class DataArguments:
    """Which CSV files to use and how long a text may be."""

    train_file: str | None = field(
        default=None, metadata={"help": "CSV with text,label columns (default: data/classification/train.csv)."}
    )
    validation_file: str | None = field(
        default=None, metadata={"help": "CSV to evaluate on (default: data/classification/validation.csv)."}
    )
    text_column: str = field(default="text", metadata={"help": "Name of the text column."})
    label_column: str = field(default="label", metadata={"help": "Name of the label column."})
    max_seq_length: int = field(default=128, metadata={"help": "Texts are truncated to this many tokens."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only this many training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep only this many evaluation rows."})


def accuracy(prediction: EvalPrediction) -> dict[str, float]:
    """accuracy = mean(argmax logits == label), computed locally (no metric download)."""
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    return {"accuracy": float((np.argmax(logits, axis=-1) == prediction.label_ids).mean())}


def load_csv(data_args: DataArguments):
    """``train``/``validation`` splits with a ``ClassLabel`` label column named ``label``; the dataset names."""
    check_file("--train_file", data_args.train_file)
    check_file("--validation_file", data_args.validation_file)
    shipped = resolve_data_dir() / "classification"
    files = {
        "train": data_args.train_file or str(shipped / "train.csv"),
        "validation": data_args.validation_file or str(shipped / "validation.csv"),
    }
    raw = load_dataset("csv", data_files=files)
    for column in (data_args.text_column, data_args.label_column):
        if column not in raw["train"].column_names:
            raise ValueError(f"column {column!r} not in {files['train']}; columns: {raw['train'].column_names}")
    if data_args.label_column != "label":
        raw = raw.rename_column(data_args.label_column, "label")
    raw = raw.map(lambda row: {"label": str(row["label"])})
    names = sorted(set(raw["train"]["label"]))
    unknown = sorted(set(raw["validation"]["label"]) - set(names))
    if unknown:
        raise ValueError(f"validation labels {unknown} never occur in the training file (labels: {names})")
    raw = raw.cast_column("label", ClassLabel(names=names))
    dataset_names = ["scratchformers-langid"] if data_args.train_file is None else [Path(files["train"]).stem]
    return raw, dataset_names


def build_tokenizer(model_args: ModelArguments, texts: list[str], model_type: str):
    """--tokenizer_name, else the checkpoint's tokenizer, else one of the family's kind trained on ``texts``."""
    name = model_args.tokenizer_name or model_args.model_name_or_path
    if name is not None:
        return AutoTokenizer.from_pretrained(name, trust_remote_code=True)
    if model_type not in TOKENIZER_KIND:
        raise ValueError(f"no default tokenizer for model_type {model_type!r}: pass --tokenizer_name")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "texts.txt"
        corpus.write_text("\n".join(t.replace("\n", " ") for t in texts), encoding="utf-8")
        return train_tokenizer([corpus], kind=TOKENIZER_KIND[model_type], vocab_size=model_args.vocab_size)


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Parse the flags, train and evaluate, save the checkpoint; returns the metrics (eval_accuracy, ...)."""
    model_args, data_args, training_args = parse_args((ModelArguments, DataArguments, TrainingArguments), argv, __doc__)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    set_seed(training_args.seed)
    if model_args.model_name_or_path is not None and model_args.config is not None:
        raise ValueError("pass either --config (a fresh model) or --model_name_or_path (a checkpoint), not both")

    raw, dataset_names = load_csv(data_args)
    id2label = dict(enumerate(raw["train"].features["label"].names))
    label2id = {name: i for i, name in id2label.items()}
    label_fields = dict(num_labels=len(id2label), id2label=id2label, label2id=label2id)

    if model_args.model_name_or_path is not None:
        tokenizer = build_tokenizer(model_args, [], "")
        model = AutoModelForSequenceClassification.from_pretrained(
            model_args.model_name_or_path, trust_remote_code=True, ignore_mismatched_sizes=True, **label_fields
        )
        base = model_args.model_name_or_path
    else:
        config_path = model_args.config or str(CONFIG_DIR / "gpt-tiny.json")
        model_type = config_from_json(config_path).model_type
        tokenizer = build_tokenizer(model_args, raw["train"][data_args.text_column], model_type)
        config = config_from_json(
            config_path, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **label_fields
        )
        model = AutoModelForSequenceClassification.from_config(config)
        base = display_path(config_path)
    if tokenizer.pad_token is None:
        raise ValueError("the tokenizer has no pad token; batching texts of different lengths needs one")
    max_length = min(data_args.max_seq_length, model.config.max_position_embeddings)

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        return tokenizer(batch[data_args.text_column], truncation=True, max_length=max_length)

    columns = [c for c in raw["train"].column_names if c != "label"]
    encoded = raw.map(tokenize, batched=True, remove_columns=columns, desc="Tokenizing")
    train_set, eval_set = encoded["train"], encoded["validation"]
    if data_args.max_train_samples is not None:
        train_set = train_set.shuffle(seed=training_args.seed).select(range(min(data_args.max_train_samples, len(train_set))))
    if data_args.max_eval_samples is not None:
        eval_set = eval_set.select(range(min(data_args.max_eval_samples, len(eval_set))))

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_set if training_args.do_train else None,
        eval_dataset=eval_set if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=accuracy,
    )
    metrics: dict[str, float] = {}
    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        metrics.update(result.metrics)
        trainer.log_metrics("train", result.metrics)
    if training_args.do_eval:
        evaluated = trainer.evaluate()
        metrics.update(evaluated)
        trainer.log_metrics("eval", evaluated)
        print(f"validation accuracy: {evaluated['eval_accuracy']:.4f} over {len(eval_set)} texts")
    save_checkpoint(
        trainer, tokenizer, training_args.output_dir, metrics, dataset_names, base, task="text-classification", language=None
    )
    print(f"saved model, tokenizer and model card to {training_args.output_dir}")
    return metrics


if __name__ == "__main__":
    main()
