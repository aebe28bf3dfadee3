"""One-call translation for every seq2seq family — what transformers 4's `translation` pipeline gave.

transformers 5 has no `translation`/`text2text-generation` pipeline, so `translate(texts, model, tokenizer)` does its
job: tokenise in batches, `generate()` (beam search by default), decode. Works with any model that has `generate()`
and `config.is_encoder_decoder` (our Transformer and RNN families, and HF's own BART/T5/Marian).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


# translate()'s own choices, used only where neither the caller nor the checkpoint's `generation_config` sets them.
TRANSLATE_DEFAULTS = {"num_beams": 4, "max_new_tokens": 128}
# The `scratchformers generate` command's choices for a causal LM, on the same terms.
GENERATE_DEFAULTS = {"max_new_tokens": 50, "do_sample": True, "temperature": 0.8, "top_k": 40}
# A default stays out where a setting that decides the same thing is set: `max_length` for `max_new_tokens`
# (a checkpoint saved with max_length=5 keeps it), `num_beams`/`do_sample` for each other (the decoding strategy).
RELATED_SETTINGS = {"max_new_tokens": ("max_length",), "num_beams": ("do_sample",), "do_sample": ("num_beams",)}
# Defaults that only mean something when sampling: left out unless the resolved `do_sample` is True.
SAMPLING_SETTINGS = ("temperature", "top_k", "top_p")


def generation_settings(model: Any, defaults: Mapping[str, Any], **explicit: Any) -> dict[str, Any]:
    """The keyword arguments a convenience call passes to `model.generate()`: the checkpoint's saved settings first.

    `generate()` starts from `model.generation_config` (the checkpoint's `generation_config.json`) and lets its
    keyword arguments override it, so the result holds (1) the `explicit` arguments that are not None and (2) those
    `defaults` (a convenience call's own choices, e.g. `TRANSLATE_DEFAULTS`) for which neither the generation config
    nor an explicit argument sets that setting or a related one (`RELATED_SETTINGS`); sampling-only defaults
    (`SAMPLING_SETTINGS`) only when the call samples. E.g. a checkpoint saved with `max_length=5, num_beams=1`
    decodes greedily to 5 tokens, not with translate's 4 beams and 128 new tokens.
    """
    saved = getattr(model, "generation_config", None)
    given = {name: value for name, value in explicit.items() if value is not None}

    def is_set(name: str) -> bool:
        return name in given or getattr(saved, name, None) is not None

    settings = {
        name: value
        for name, value in defaults.items()
        if not any(is_set(other) for other in (name, *RELATED_SETTINGS.get(name, ())))
    }
    settings.update(given)
    do_sample = settings.get("do_sample", getattr(saved, "do_sample", None))
    if do_sample is not True:
        settings = {k: v for k, v in settings.items() if k not in SAMPLING_SETTINGS or k in given}
    return settings


def generate_command_settings(
    model: Any,
    max_new_tokens: int | None = None,
    greedy: bool = False,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    num_beams: int | None = None,
) -> dict[str, Any]:
    """`generate()` kwargs for the `scratchformers generate` command's flags (None = not given on the command line):
    the checkpoint's `generation_config`, overridden by the given flags, else `GENERATE_DEFAULTS` (sampling with
    temperature 0.8, top-k 40, 50 new tokens). `--greedy` or `--num-beams` > 1 turn sampling off."""
    do_sample = False if greedy or (num_beams or 1) > 1 else None
    return generation_settings(
        model, GENERATE_DEFAULTS, max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature,
        top_k=top_k, top_p=top_p, num_beams=num_beams,
    )


def translate(
    texts: str | Sequence[str],
    model: Any,
    tokenizer: Any,
    batch_size: int = 16,
    num_beams: int | None = None,
    max_new_tokens: int | None = None,
    max_source_length: int | None = None,
    prefix: str = "",
    **generate_kwargs: Any,
) -> list[str]:
    """Translate `texts` (one string or a list) and return one decoded string per text, in the input order.

    Texts are sorted by length and batched `batch_size` at a time (less padding); padded source positions are
    masked, so a text's translation does not depend on the batch it lands in. Decoding starts from the model's
    `generation_config` (what the checkpoint saved); arguments given here override it, and where neither sets them
    translate uses beam search with 4 beams and up to 128 new tokens (`TRANSLATE_DEFAULTS`; the paper used 4
    beams, length penalty 0.6: pass `length_penalty=0.6`). `num_beams=1` is greedy; pass `do_sample=True,
    top_k=...` to sample. `max_source_length` truncates long sources; `prefix` is prepended to each source (e.g.
    T5's "translate English to German: "). Other kwargs go to `model.generate()`, and so does `tokenizer` (as the
    text-generation pipeline does), so `stop_strings=[...]` work. Raises TypeError for a model that is not an
    encoder-decoder with generate(), ValueError for a bad `batch_size` or `num_return_sequences` ≠ 1.
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
    settings = generation_settings(
        model, TRANSLATE_DEFAULTS, num_beams=num_beams, max_new_tokens=max_new_tokens, **generate_kwargs
    )
    settings.setdefault("tokenizer", tokenizer)
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
                output = model.generate(**encoded, **settings)
            for i, row in zip(chunk, output):
                results[i] = tokenizer.decode(row, skip_special_tokens=True).strip()
    finally:
        model.train(was_training)
    return results
