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
from pathlib import Path

import numpy as np
from datasets import ClassLabel, load_dataset
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    EvalPrediction,
    TrainingArguments,
)

from scratchformers.training import AtomicCheckpointTrainer
from scratchformers_light.arguments import ClassificationDataArguments as DataArguments
from scratchformers_light.arguments import ClassificationModelArguments as ModelArguments

from ..data import resolve_data_dir
from ..tokenization import train_tokenizer
from .common import (
    CONFIG_DIR,
    RunArguments,
    check_file,
    config_from_json,
    describe_data,
    display_path,
    hold_out,
    keeps_earlier_run,
    record_training_data,
    save_checkpoint,
    special_token_ids,
    start_run,
    tokenizer_source,
)

logger = logging.getLogger(__name__)

TOKENIZER_KIND = {"scratch_gpt": "bpe", "scratch_bert": "wordpiece"}


def accuracy(prediction: EvalPrediction) -> dict[str, float]:
    """accuracy = mean(argmax logits == label), computed locally (no metric download)."""
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    return {"accuracy": float((np.argmax(logits, axis=-1) == prediction.label_ids).mean())}


def check_cells(rows, columns: Sequence[str], file: str) -> None:
    """ValueError naming the first row (line number of ``file``, header = line 1) whose cell in one of ``columns``
    is empty: an empty label would otherwise become a class named "None"."""
    for column in columns:
        for index, value in enumerate(rows[column]):
            if value is None or value != value or not str(value).strip():  # (value != value: a NaN from pandas)
                raise ValueError(
                    f"{file}, line {index + 2}: the {column!r} cell is empty; every row needs a {column}"
                )


def load_csv(data_args: DataArguments, seed: int = 42):
    """``train``/``validation`` splits with a ``ClassLabel`` label column named ``label``; the dataset names.

    Validation comes from --validation_file or, without one, a seeded held-out part of the training file (the
    user's own file, or the shipped language-ID set when no --train_file is given) — never from other data. The
    label names are those of the whole training file; a validation label that never occurs in it is an error.
    """
    check_file("--train_file", data_args.train_file)
    check_file("--validation_file", data_args.validation_file)
    shipped = resolve_data_dir() / "classification"
    files = {"train": data_args.train_file or str(shipped / "train.csv")}
    if data_args.validation_file or data_args.train_file is None:
        files["validation"] = data_args.validation_file or str(shipped / "validation.csv")
    raw = load_dataset("csv", data_files=files)
    for split, file in files.items():
        for column in (data_args.text_column, data_args.label_column):
            if column not in raw[split].column_names:
                flag = "--text_column" if column == data_args.text_column else "--label_column"
                raise ValueError(
                    f"column {column!r} not in {file}; its columns: {raw[split].column_names} (name yours with {flag})"
                )
        check_cells(raw[split], (data_args.text_column, data_args.label_column), file)
    if data_args.label_column != "label":
        raw = raw.rename_column(data_args.label_column, "label")
    raw = raw.map(lambda row: {"label": str(row["label"]).strip()})
    names = sorted(set(raw["train"]["label"]))
    if "validation" in raw:
        unknown = sorted(set(raw["validation"]["label"]) - set(names))
        if unknown:
            raise ValueError(
                f"labels {unknown} of {files['validation']} never occur in {files['train']} (its labels: {names})"
            )
    raw = raw.cast_column("label", ClassLabel(names=names))
    if "validation" not in raw:
        raw["train"], raw["validation"] = hold_out(raw["train"], data_args.validation_split_percentage, seed,
                                                   files["train"])
    dataset_names = ["scratchformers-langid"] if data_args.train_file is None else [Path(files["train"]).stem]
    return raw, dataset_names


def build_tokenizer(model_args: ModelArguments, texts: list[str], model_type: str, resume: str | None = None):
    """--tokenizer_name, else the tokenizer of the checkpoint resumed (``resume``) or of --model_name_or_path, else
    one of the family's kind trained on ``texts``."""
    name = tokenizer_source(model_args, resume)
    if name is not None:
        return AutoTokenizer.from_pretrained(name, trust_remote_code=True)
    if model_type not in TOKENIZER_KIND:
        raise ValueError(f"no default tokenizer for model_type {model_type!r}: pass --tokenizer_name")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "texts.txt"
        corpus.write_text("\n".join(t.replace("\n", " ") for t in texts), encoding="utf-8")
        return train_tokenizer([corpus], kind=TOKENIZER_KIND[model_type], vocab_size=model_args.vocab_size)


@keeps_earlier_run
def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Parse the flags, train and evaluate, save the checkpoint; returns the metrics (eval_accuracy, ...)."""
    model_args, data_args, run_args, training_args = start_run(
        (ModelArguments, DataArguments, RunArguments, TrainingArguments), argv, __doc__, lambda m: config_from_json(m.config or str(CONFIG_DIR / "gpt-tiny.json"))
    )

    raw, dataset_names = load_csv(data_args, training_args.seed)
    summary = describe_data(data_args.train_file, data_args.validation_file, data_args.validation_split_percentage,
                            training_args.seed)
    print(f"data: {summary} {len(raw['train'])} training and {len(raw['validation'])} validation rows")
    id2label = dict(enumerate(raw["train"].features["label"].names))
    label2id = {name: i for i, name in id2label.items()}
    label_fields = dict(num_labels=len(id2label), id2label=id2label, label2id=label2id)

    if model_args.model_name_or_path is not None:
        tokenizer = build_tokenizer(model_args, [], "", training_args.resume_from_checkpoint)
        model = AutoModelForSequenceClassification.from_pretrained(
            model_args.model_name_or_path, trust_remote_code=True, ignore_mismatched_sizes=True, **label_fields
        )
        base = model_args.model_name_or_path
    else:
        config_path = model_args.config or str(CONFIG_DIR / "gpt-tiny.json")
        model_type = config_from_json(config_path).model_type
        tokenizer = build_tokenizer(model_args, raw["train"][data_args.text_column], model_type,
                                    training_args.resume_from_checkpoint)
        config = config_from_json(
            config_path, vocab_size=len(tokenizer), **special_token_ids(tokenizer), **label_fields
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

    trainer = AtomicCheckpointTrainer(  # checkpoints appear whole or not at all (training.py)
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
    own = data_args.train_file is not None
    save_checkpoint(
        trainer, tokenizer, training_args.output_dir, metrics, dataset_names, base, task="text-classification",
        language=None, license=None if own else "apache-2.0", training_summary=summary if own else None,
    )
    shipped = resolve_data_dir() / "classification"
    validation_file = data_args.validation_file or (None if own else str(shipped / "validation.csv"))
    record_training_data(
        training_args.output_dir, task="classification", train_file=data_args.train_file or str(shipped / "train.csv"),
        validation_file=validation_file,
        validation_split_percentage=None if validation_file else data_args.validation_split_percentage,
        seed=training_args.seed, text_column=data_args.text_column, label_column=data_args.label_column,
        max_seq_length=max_length,
    )
    print(f"saved model, tokenizer and model card to {training_args.output_dir}")
    return metrics


if __name__ == "__main__":
    main()
