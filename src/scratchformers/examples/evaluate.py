"""Evaluate a saved checkpoint on local files: perplexity of a causal LM, accuracy of a text classifier.

    scratchformers evaluate outputs/demo/checkpoint --file data/prose/validation.txt
    scratchformers evaluate outputs/langid --file data/classification/test.csv
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from tqdm.auto import tqdm


def _load(checkpoint: str | os.PathLike, auto_class_name: str):
    """Model (eval mode) and tokenizer of ``checkpoint``, through the Auto classes (package registered first)."""
    import transformers
    from transformers import AutoTokenizer

    import scratchformers  # noqa: F401  (registers the scratch_* types)

    auto = getattr(transformers, auto_class_name)
    model = auto.from_pretrained(str(checkpoint), trust_remote_code=True).eval()
    return model, AutoTokenizer.from_pretrained(str(checkpoint), trust_remote_code=True)


@torch.no_grad()
def perplexity(
    checkpoint: str | os.PathLike, file: str | os.PathLike, block_size: int = 128, batch_size: int = 16
) -> dict[str, float]:
    """exp(mean next-token cross-entropy) over ``file`` cut into non-overlapping blocks of ``block_size`` tokens."""
    from datasets import load_dataset

    from ..data import tokenize_and_group

    if not Path(file).is_file():
        raise ValueError(f"--file {str(file)!r} does not exist")
    model, tokenizer = _load(checkpoint, "AutoModelForCausalLM")
    block_size = min(block_size, model.config.max_position_embeddings)
    raw = load_dataset("text", data_files={"eval": str(file)})["eval"].filter(lambda r: len(r["text"].strip()) > 0)
    blocks = tokenize_and_group(raw, tokenizer, block_size).with_format("torch")
    if len(blocks) == 0:
        raise ValueError(f"{file} holds fewer than {block_size} tokens; lower --block-size")
    total, count = 0.0, 0
    for start in tqdm(range(0, len(blocks), batch_size), desc="Evaluating", unit="batch"):
        batch = blocks[start : start + batch_size]
        loss = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss
        predicted = batch["input_ids"].shape[0] * (block_size - 1)  # every position but the first is predicted
        total += loss.item() * predicted
        count += predicted
    loss = total / count
    return {"loss": loss, "perplexity": math.exp(loss), "tokens": count, "blocks": len(blocks)}


@torch.no_grad()
def accuracy(
    checkpoint: str | os.PathLike, file: str | os.PathLike, batch_size: int = 32, text_column: str = "text",
    label_column: str = "label",
) -> dict[str, float]:
    """Fraction of rows of a CSV whose predicted label (``config.id2label``) equals the ``label`` column."""
    from datasets import load_dataset

    if not Path(file).is_file():
        raise ValueError(f"--file {str(file)!r} does not exist")
    model, tokenizer = _load(checkpoint, "AutoModelForSequenceClassification")
    rows = load_dataset("csv", data_files={"eval": str(file)})["eval"]
    correct = 0
    for start in tqdm(range(0, len(rows), batch_size), desc="Evaluating", unit="batch"):
        batch = rows[start : start + batch_size]
        inputs = tokenizer(batch[text_column], padding=True, truncation=True,
                           max_length=model.config.max_position_embeddings, return_tensors="pt")
        if "token_type_ids" in inputs and not getattr(model.config, "type_vocab_size", 0):
            inputs.pop("token_type_ids")
        predicted = model(**inputs).logits.argmax(-1).tolist()
        correct += sum(model.config.id2label[p] == str(gold) for p, gold in zip(predicted, batch[label_column]))
    return {"accuracy": correct / len(rows), "rows": len(rows)}
