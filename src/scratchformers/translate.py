"""One-call translation for every seq2seq family — what transformers 4's `translation` pipeline gave.

transformers 5 has no `translation`/`text2text-generation` pipeline, so `translate(texts, model, tokenizer)` does its
job: tokenise in batches, `generate()` (beam search by default), decode. Works with any model that has `generate()`
and `config.is_encoder_decoder` (our Transformer and RNN families, and HF's own BART/T5/Marian).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def _check_seq2seq_model(model: Any) -> None:
    """Raise TypeError unless `model` is an encoder-decoder model that can generate."""
    config = getattr(model, "config", None)
    if not callable(getattr(model, "generate", None)) or not getattr(config, "is_encoder_decoder", False):
        raise TypeError(
            f"translate() needs an encoder-decoder model with generate() (config.is_encoder_decoder=True), got "
            f"{type(model).__name__}; load one with AutoModelForSeq2SeqLM.from_pretrained(...)."
        )


def translate(
    texts: str | Sequence[str],
    model: Any,
    tokenizer: Any,
    batch_size: int = 16,
    num_beams: int = 4,
    max_new_tokens: int = 128,
    max_source_length: int | None = None,
    prefix: str = "",
    **generate_kwargs: Any,
) -> list[str]:
    """Translate `texts` (one string or a list) and return one decoded string per text, in the input order.

    Texts are sorted by length and batched `batch_size` at a time (less padding); padded source positions are
    masked, so a text's translation does not depend on the batch it lands in. `num_beams=4` is beam search (the
    paper used 4 beams, length penalty 0.6: pass `length_penalty=0.6`); `num_beams=1` is greedy; pass
    `do_sample=True, top_k=...` to sample. `max_source_length` truncates long sources; `prefix` is prepended to
    each source (e.g. T5's "translate English to German: "). Other kwargs go to `model.generate()`.
    """
    _check_seq2seq_model(model)
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, Sequence) or not all(isinstance(t, str) for t in texts):
        raise TypeError("`texts` must be a string or a sequence of strings.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
    if generate_kwargs.get("num_return_sequences", 1) != 1:
        raise ValueError(
            f"translate() returns one string per text; got num_return_sequences="
            f"{generate_kwargs['num_return_sequences']!r} (call model.generate for several candidates)."
        )
    if not texts:
        return []
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    results: list[str] = [""] * len(texts)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            encoded = tokenizer(
                [prefix + texts[i] for i in chunk],
                return_tensors="pt",
                padding=True,
                truncation=max_source_length is not None,
                max_length=max_source_length,
            )
            encoded = {k: v.to(model.device) for k, v in encoded.items() if k in ("input_ids", "attention_mask")}
            with torch.no_grad():
                output = model.generate(
                    **encoded, num_beams=num_beams, max_new_tokens=max_new_tokens, **generate_kwargs
                )
            for i, row in zip(chunk, output):
                results[i] = tokenizer.decode(row, skip_special_tokens=True).strip()
    finally:
        model.train(was_training)
    return results
