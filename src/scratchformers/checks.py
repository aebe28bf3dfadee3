"""Input and option validation shared by every family.

Every check runs before any tensor work and raises a ValueError/TypeError that names the bad value and what is
allowed, so a user never meets an IndexError from deep inside torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

#: The label that marks a position without a target (padding, prompt tokens, unmasked MLM tokens): every loss skips
#: it, as PyTorch's `cross_entropy(ignore_index=-100)` and transformers' collators do. The one definition.
IGNORE_INDEX = -100


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> None:
    """Raise ValueError unless `value` is one of `allowed`."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"`{name}`={value!r} is not supported; allowed values are {allowed}.")


def check_positive(name: str, value: Any) -> None:
    """Raise ValueError unless `value` is an int > 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")


def check_probability(name: str, value: Any) -> None:
    """Raise ValueError unless 0 <= `value` < 1 (dropout rates)."""
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"`{name}` must be a number in [0, 1), got {value!r}.")


def check_divisible(hidden_size: int, num_heads: int) -> None:
    """Raise ValueError unless hidden_size splits evenly into heads: d_k = d_model / h (paper §3.2.2)."""
    if hidden_size % num_heads != 0:
        raise ValueError(
            f"`hidden_size`={hidden_size} must be divisible by `num_attention_heads`={num_heads} "
            f"(each head gets hidden_size / num_attention_heads dimensions)."
        )


INDEX_DTYPES = (torch.long, torch.int)  # what nn.Embedding accepts as indices


def check_bool(name: str, value: Any) -> None:
    """Raise ValueError unless `value` is a real bool (not a string such as "yes" or "false")."""
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be True or False, got {value!r}.")


def check_positive_number(name: str, value: Any, allow_zero: bool = False) -> None:
    """Raise ValueError unless `value` is a finite number > 0 (>= 0 with `allow_zero`)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be a finite number {bound}, got {value!r}.")


def check_token_id(name: str, value: Any) -> None:
    """Raise ValueError unless `value` is None, a token id >= 0, or a list of such ids (eos may be several)."""
    ids = value if isinstance(value, list) else [value]
    if any(i is not None and (isinstance(i, bool) or not isinstance(i, int) or i < 0) for i in ids):
        raise ValueError(f"`{name}` must be None or a token id >= 0 (or a list of them), got {value!r}.")


def _is_compiling() -> bool:
    return torch.compiler.is_compiling()


def check_input_ids(input_ids: torch.Tensor, vocab_size: int, name: str = "input_ids") -> None:
    """Raise TypeError/ValueError unless `input_ids` is a non-empty integer (B, T) tensor with ids in [0, vocab_size)."""
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor of token ids, got {type(input_ids).__name__}.")
    if input_ids.dtype not in INDEX_DTYPES:
        raise TypeError(f"`{name}` must hold integer token ids (torch.long or torch.int), got dtype {input_ids.dtype}.")
    if input_ids.dim() != 2:
        raise ValueError(f"`{name}` must have shape (batch, sequence), got shape {tuple(input_ids.shape)}.")
    if input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
        raise ValueError(f"`{name}` is empty (shape {tuple(input_ids.shape)}); batch and sequence must be >= 1.")
    if _is_compiling():
        return
    low, high = torch.stack(torch.aminmax(input_ids)).tolist()  # one pass, one host sync
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise ValueError(f"`{name}` contains id {bad}, outside the vocabulary [0, {vocab_size - 1}].")


def check_inputs_embeds(inputs_embeds: torch.Tensor, hidden_size: int, name: str = "inputs_embeds") -> None:
    """Raise TypeError/ValueError unless `inputs_embeds` is a non-empty float (B, T, C) tensor with C = hidden_size."""
    if not isinstance(inputs_embeds, torch.Tensor) or not inputs_embeds.dtype.is_floating_point:
        raise TypeError(f"`{name}` must be a floating-point torch.Tensor of shape (batch, sequence, hidden_size).")
    if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != hidden_size or 0 in inputs_embeds.shape:
        raise ValueError(
            f"`{name}` must have shape (batch, sequence, {hidden_size}) with batch, sequence >= 1, "
            f"got {tuple(inputs_embeds.shape)}."
        )
    if not _is_compiling() and not bool(torch.isfinite(inputs_embeds).all()):
        raise ValueError(f"`{name}` contains NaN or inf values.")


def check_attention_mask(
    attention_mask: torch.Tensor, batch_size: int, key_length: int, name: str = "attention_mask"
) -> None:
    """Raise ValueError unless the 2-D padding mask has shape (batch, key_length) and holds only 0/1."""
    if not isinstance(attention_mask, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(attention_mask).__name__}.")
    if tuple(attention_mask.shape) != (batch_size, key_length):
        raise ValueError(
            f"`{name}` must have shape (batch, past + sequence) = {(batch_size, key_length)}, "
            f"got {tuple(attention_mask.shape)}."
        )
    if not _is_compiling() and not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
        raise ValueError(f"`{name}` must contain only 0 (padding) and 1 (real token).")


def check_sequence_length(length: int, max_positions: int, name: str = "sequence") -> None:
    """Raise ValueError when a sequence (past + new tokens) is longer than the learned position table."""
    if length > max_positions:
        raise ValueError(
            f"The {name} length {length} exceeds `max_position_embeddings`={max_positions}; "
            f"truncate the input (e.g. tokenizer(..., truncation=True, max_length={max_positions}))."
        )


def check_position_ids(position_ids: torch.Tensor, batch_size: int, length: int, max_positions: int | None) -> None:
    """Raise TypeError/ValueError unless `position_ids` is an integer (1|B, T) tensor in [0, max_positions)."""
    if not isinstance(position_ids, torch.Tensor) or position_ids.dtype not in INDEX_DTYPES:
        got = position_ids.dtype if isinstance(position_ids, torch.Tensor) else type(position_ids).__name__
        raise TypeError(f"`position_ids` must be an integer torch.Tensor (torch.long), got {got}.")
    # (two `!=`, not `shape[0] not in (1, batch_size)`: torch 2.10's dynamo mis-evaluates `in` on a tuple holding a
    # symbolic size and raised this error while compiling a static-cache decoding step)
    if (position_ids.dim() != 2 or (position_ids.shape[0] != 1 and position_ids.shape[0] != batch_size)
            or position_ids.shape[1] != length):
        raise ValueError(
            f"`position_ids` must have shape (batch, sequence) = {(batch_size, length)} or (1, {length}), "
            f"got {tuple(position_ids.shape)}."
        )
    if _is_compiling():
        return
    low, high = int(position_ids.min()), int(position_ids.max())
    if low < 0 or (max_positions is not None and high >= max_positions):
        bad = low if low < 0 else high
        allowed = f"[0, {max_positions - 1}]" if max_positions is not None else ">= 0"
        raise ValueError(f"`position_ids` contains position {bad}, outside {allowed} (`max_position_embeddings`).")


def check_labels(labels: Any, shape: tuple[int, ...], num_classes: int, name: str = "labels") -> None:
    """Raise TypeError/ValueError unless `labels` is an integer tensor of `shape` with values in [0, num_classes)
    or -100 (ignored). For token-level losses `shape` is (B, T); for sequence classification (B,)."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(labels).__name__}.")
    if labels.dtype not in INDEX_DTYPES:
        raise TypeError(f"`{name}` must hold integer class ids (torch.long or torch.int), got dtype {labels.dtype}.")
    if tuple(labels.shape) != tuple(shape):
        raise ValueError(f"`{name}` must have shape {tuple(shape)}, got {tuple(labels.shape)}.")
    if _is_compiling() or labels.numel() == 0:
        return
    real = labels[labels != IGNORE_INDEX]
    if real.numel() and (int(real.min()) < 0 or int(real.max()) >= num_classes):
        bad = int(real.min()) if int(real.min()) < 0 else int(real.max())
        raise ValueError(f"`{name}` contains {bad}, outside [0, {num_classes - 1}] (use {IGNORE_INDEX} to ignore a position).")


def check_token_labels(labels: torch.Tensor, shape: tuple[int, ...], num_classes: int, name: str = "labels") -> None:
    """Raise ValueError unless per-token `labels` have `shape` and hold −100 (ignored) or a class in [0, num_classes)."""
    if not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"`{name}` must be an integer torch.Tensor of class ids (−100 = ignored).")
    if tuple(labels.shape) != tuple(shape):
        raise ValueError(f"`{name}` must have shape {tuple(shape)} (one label per token), got {tuple(labels.shape)}.")
    if torch.compiler.is_compiling():  # the value check below is data-dependent: it would break the graph
        return
    bad = labels[(labels != IGNORE_INDEX) & ((labels < 0) | (labels >= num_classes))]
    if bad.numel():
        raise ValueError(
            f"`{name}` contains {int(bad[0])}; allowed are {IGNORE_INDEX} (ignored) and ids in [0, {num_classes - 1}]."
        )


def check_prepared_mask(mask: torch.Tensor, batch_size: int, query_length: int, key_length: int) -> None:
    """Raise ValueError unless a ready-made 4-D mask (e.g. from generate() with a static cache) is (B|1, 1, T, S)."""
    if mask.dim() != 4 or mask.shape[0] not in (1, batch_size) or tuple(mask.shape[1:]) != (1, query_length, key_length):
        raise ValueError(
            f"a 4-D `attention_mask` must have shape (batch or 1, 1, {query_length}, {key_length}), "
            f"got {tuple(mask.shape)}; pass a 2-D (batch, sequence) 0/1 mask instead."
        )


def check_right_padded(attention_mask: torch.Tensor, name: str = "decoder_attention_mask") -> None:
    """Raise ValueError when a 0/1 mask (B, T) has padding before a real token: a recurrence reads its inputs in order
    and cannot skip them, so only right padding (zeros after the real tokens) is allowed."""
    real = attention_mask.bool()
    if bool((real[:, 1:] & ~real[:, :-1]).any()):  # a real token after padding: the recurrence would read it
        raise ValueError(
            f"`{name}` has padding before real tokens; the recurrent decoder reads its inputs in order and cannot "
            "skip them. Pad decoder inputs on the right (zeros after the real tokens)."
        )
