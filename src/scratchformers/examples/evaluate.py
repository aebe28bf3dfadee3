"""Evaluate a saved checkpoint on local files: perplexity of a causal LM, accuracy of a text classifier, the
assistant-token loss of a chat model (``train sft``) on messages-format JSON lines.

    scratchformers evaluate outputs/demo-gpt/checkpoint      # the data it was validated on in training
    scratchformers evaluate outputs/demo-gpt/checkpoint --file data/prose/validation.txt
    scratchformers evaluate outputs/langid --file data/classification/test.csv
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm


def _load(checkpoint: str | os.PathLike, auto_class_name: str):
    """Model (eval mode) and tokenizer of ``checkpoint``, through the Auto classes (package registered first)."""
    import transformers
    from transformers import AutoTokenizer

    import scratchformers  # noqa: F401  (registers the scratch_* types)

    if auto_class_name == "AutoModelForCausalLM":  # a model folder, or a LoRA adapter folder on its base
        from ..sft import load_causal_lm

        model = load_causal_lm(checkpoint)
    else:
        model = getattr(transformers, auto_class_name).from_pretrained(str(checkpoint), trust_remote_code=True).eval()
    return model, AutoTokenizer.from_pretrained(str(checkpoint), trust_remote_code=True)


def _text_rows(file: Any, loader: str):
    """``file`` as a ``datasets.Dataset``: a path is loaded (``loader`` = "text" | "csv"), a Dataset passes through."""
    from datasets import Dataset, load_dataset

    if isinstance(file, Dataset):
        return file
    from .common import check_file

    check_file("--file", str(file))
    return load_dataset(loader, data_files={"eval": str(file)})["eval"]


@torch.no_grad()
def perplexity(
    checkpoint: str | os.PathLike, file: str | os.PathLike | Any, block_size: int | None = None, batch_size: int = 16
) -> dict[str, float]:
    """exp(mean next-token cross-entropy) over ``file`` cut into non-overlapping blocks of ``block_size`` tokens.

    ``file`` is a text file or a ``datasets.Dataset`` with a ``text`` column (e.g. the held-out part of a training
    file). ``block_size`` defaults to the one the checkpoint was trained with (``training_data.json``), else
    ``min(128, max_position_embeddings)``: the same blocks as training, so the numbers agree.
    """
    from ..data import tokenize_and_group
    from .common import read_training_data

    rows = _text_rows(file, "text")
    model, tokenizer = _load(checkpoint, "AutoModelForCausalLM")
    if block_size is None:
        block_size = (read_training_data(checkpoint) or {}).get("block_size") or 128
    block_size = min(block_size, model.config.max_position_embeddings)
    raw = rows.filter(lambda r: len(r["text"].strip()) > 0)
    blocks = tokenize_and_group(raw, tokenizer, block_size).with_format("torch")
    if len(blocks) == 0:
        raise ValueError(f"{_name(file)} holds fewer than {block_size} tokens; lower --block-size")
    total, count = 0.0, 0
    for start in tqdm(range(0, len(blocks), batch_size), desc="Evaluating", unit="batch"):
        batch = blocks[start : start + batch_size]
        loss = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss
        predicted = batch["input_ids"].shape[0] * (block_size - 1)  # every position but the first is predicted
        total += loss.item() * predicted
        count += predicted
    loss = total / count
    return {"loss": loss, "perplexity": math.exp(loss), "tokens": count, "blocks": len(blocks), "block_size": block_size}


@torch.no_grad()
def assistant_loss(checkpoint: str | os.PathLike, file: str | os.PathLike | Any, batch_size: int = 16,
                   max_length: int | None = None) -> dict[str, float]:
    """Mean cross-entropy over the assistant tokens of the chats in ``file`` (JSON lines of ``{"messages": [...]}``,
    or a ``datasets.Dataset`` with a ``messages`` column), rendered with the checkpoint's chat template exactly as
    ``train sft`` trains and validates (``scratchformers.sft``); its exp() is the assistant-token perplexity.
    ``max_length`` defaults to the one the checkpoint was trained with (``training_data.json``)."""
    from datasets import Dataset
    from transformers import DataCollatorForSeq2Seq

    from ..sft import assistant_token_loss, read_chats, tokenize_chats
    from .common import read_training_data

    if not isinstance(file, Dataset):
        from .common import check_file

        check_file("--file", str(file))
        file = Dataset.from_dict({"messages": read_chats(file)})
    model, tokenizer = _load(checkpoint, "AutoModelForCausalLM")
    if tokenizer.chat_template is None:
        raise ValueError(f"{checkpoint}'s tokenizer has no chat template: it was not fine-tuned on chats")
    max_length = max_length or (read_training_data(checkpoint) or {}).get("max_seq_length") or \
        model.config.max_position_embeddings
    rows = tokenize_chats(file, tokenizer, max_length)
    if len(rows) == 0:
        raise ValueError(f"no chat of {_name(file)} keeps an assistant token within {max_length} tokens")
    loss = assistant_token_loss(model, rows, DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100), batch_size)
    return {"loss": loss, "perplexity": math.exp(loss), "chats": len(rows)}


def _name(file: Any) -> str:
    """A path as text, or a description of an in-memory dataset."""
    return str(file) if isinstance(file, (str, os.PathLike)) else "the evaluation data"


@torch.no_grad()
def accuracy(
    checkpoint: str | os.PathLike, file: str | os.PathLike | Any, batch_size: int = 32, text_column: str = "text",
    label_column: str = "label",
) -> dict[str, float]:
    """Fraction of rows of a CSV (or ``datasets.Dataset``) whose predicted label (``config.id2label``) equals the
    ``label_column`` cell.

    ValueError when a column is missing, a cell is empty (naming the line), or the data holds labels the model
    does not have (scoring them would report a meaningless accuracy instead of an error).
    """
    from .run_classification import check_cells

    rows = _text_rows(file, "csv")
    for column in (text_column, label_column):
        if column not in rows.column_names:
            raise ValueError(f"column {column!r} not in {_name(file)}; its columns: {rows.column_names}")
    check_cells(rows, (text_column, label_column), _name(file))
    model, tokenizer = _load(checkpoint, "AutoModelForSequenceClassification")
    known = {str(name) for name in model.config.id2label.values()}
    gold_labels = [str(label).strip() for label in rows[label_column]]
    unknown = sorted(set(gold_labels) - known)
    if unknown:
        raise ValueError(
            f"labels {unknown[:10]} of {_name(file)} are not labels of this model (its labels: {sorted(known)}); "
            "score it on data labelled like its training data"
        )
    correct = 0
    for start in tqdm(range(0, len(rows), batch_size), desc="Evaluating", unit="batch"):
        batch = rows[start : start + batch_size]
        inputs = tokenizer(batch[text_column], padding=True, truncation=True,
                           max_length=model.config.max_position_embeddings, return_tensors="pt")
        if "token_type_ids" in inputs and not getattr(model.config, "type_vocab_size", 0):
            inputs.pop("token_type_ids")
        predicted = model(**inputs).logits.argmax(-1).tolist()
        gold = gold_labels[start : start + batch_size]
        correct += sum(str(model.config.id2label[p]) == g for p, g in zip(predicted, gold))
    return {"accuracy": correct / len(rows), "rows": len(rows)}


def training_validation_data(checkpoint: str | os.PathLike) -> tuple[Any, str, dict]:
    """The data ``checkpoint`` was validated on during training, from its ``training_data.json``: the validation
    file, or the same seeded held-out part of the training file. Returns (file path or Dataset, a description,
    the record). ValueError when the checkpoint records none (then pass ``--file``)."""
    from .common import TRAINING_DATA, read_training_data

    record = read_training_data(checkpoint)
    if record is None:
        raise ValueError(
            f"{checkpoint} does not record the data it was trained on (no {TRAINING_DATA}); pass --file with the "
            "data to score"
        )
    if record.get("task") == "dpo":  # (preference rows, not text or chats: nothing here scores them yet)
        raise ValueError(f"{checkpoint} was preference-tuned (train dpo): its validation preference accuracies are in "
                         "all_results.json; pass --file with chats (.jsonl) or text to score it on those")
    if record.get("validation_file"):
        return record["validation_file"], record["validation_file"], record
    train_file, percentage, seed = record["train_file"], record["validation_split_percentage"], record["seed"]
    if not Path(train_file).is_file():
        raise ValueError(f"{checkpoint} was validated on a part of {train_file}, which no longer exists; pass --file")
    described = f"{percentage}% of {train_file} held out in training (seed {seed})"
    if record.get("task") == "sft":
        from .run_sft import DataArguments as SftData
        from .run_sft import load_chats

        held_out = load_chats(SftData(train_file=train_file, validation_split_percentage=percentage), seed)
        return held_out["validation"], described, record
    if record.get("task") == "classification":
        from .run_classification import DataArguments, load_csv

        args = DataArguments(train_file=train_file, text_column=record.get("text_column", "text"),
                             label_column=record.get("label_column", "label"), validation_split_percentage=percentage)
        from datasets import Dataset

        held_out = load_csv(args, seed)[0]["validation"]
        names = held_out.features["label"].names
        rows = Dataset.from_dict({args.text_column: held_out[args.text_column],
                                  "label": [names[i] for i in held_out["label"]]})
        return rows, described, {**record, "label_column": "label"}
    from .run_clm import DataArguments, load_text

    return load_text(DataArguments(train_file=train_file, validation_split_percentage=percentage), seed)[0][
        "validation"
    ], described, record
