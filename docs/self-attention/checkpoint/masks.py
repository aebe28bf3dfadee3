"""Attention masks: which keys each query may look at.

"We need to prevent leftward information flow in the decoder to preserve the auto-regressive property. We implement
this inside of scaled dot-product attention by masking out (setting to -inf) all values in the input of the softmax
which correspond to illegal connections." (Vaswani et al. 2017, §3.2.3)

Boolean masks are True where attention is allowed; `additive_mask` turns them into the 0 / -inf bias that is added
to QKᵀ/√d_k. Shapes: B batch, T queries, S keys.

What a query may see has three sources, combined here and nowhere else: causality, padding (a 0/1 attention mask)
and packing (several sequences in one row, marked by position ids that restart, as `DataCollatorWithFlattening`
builds them). `attention_inputs` decides, once per forward, what the configured backend needs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def causal_mask(
    query_length: int, key_length: int, device: torch.device | None = None, past: int | torch.Tensor | None = None
) -> torch.Tensor:
    """Look-ahead mask: query i (absolute position past + i) sees keys j ≤ past + i. Returns (T, S).

    `past` defaults to key_length − query_length (the queries are the last keys); a static cache has more key slots
    than tokens seen, and the unfilled slots after past + T − 1 are masked as "future".
    """
    past = key_length - query_length if past is None else past
    q = torch.arange(query_length, device=device).unsqueeze(1) + past  # (T, 1) absolute query positions
    k = torch.arange(key_length, device=device).unsqueeze(0)  # (1, S)
    return k <= q  # (T, S)


def padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Padding mask: from a (B, S) 0/1 mask, True at real tokens. Returns (B, 1, 1, S) to broadcast over heads and queries."""
    return attention_mask.bool()[:, None, None, :]


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Boolean mask → additive bias: 0 where allowed, the dtype's lowest value (≈ -inf, NaN-free) where masked."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


def sequence_ids_from_position_ids(position_ids: torch.Tensor) -> torch.Tensor:
    """Which packed sequence each token belongs to: s_t = Σ_{u≤t} [p_u ≠ p_{u−1} + 1], with p_{−1} := p_0 − 1.

    A new sequence starts wherever the position id does not continue the previous one by +1 (it restarts at 0, or at
    whatever start the collator uses). (B, T) position ids → (B, T) sequence ids 0, 0, …, 1, 1, …; one sequence per
    row gives all zeros. The same rule as transformers' `masking_utils.find_packed_sequence_indices`.
    """
    previous = torch.cat([position_ids[:, :1] - 1, position_ids[:, :-1]], dim=-1)  # (B, T): p_{t−1}
    return (position_ids != previous + 1).long().cumsum(-1)  # the first token is never a restart: sequence 0


def packed_sequence_ids(
    position_ids: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    past: int | torch.Tensor,
    batch_size: int,
) -> torch.Tensor | None:
    """Sequence ids (B, T) when `position_ids` mark packed sequences, else None (nothing to add to the mask).

    transformers' rule (`masking_utils._preprocess_mask_arguments`): packing is read from the position ids only when
    they are given, there is no padding mask (padding-free batches have none) and nothing was cached before (a
    training-style forward); a (1, T) row of position ids is shared by every batch row. Outside torch.compile, rows
    that each hold one sequence give None, so ordinary calls with explicit position ids keep the fast paths.
    """
    if position_ids is None or attention_mask is not None or not isinstance(past, int) or past != 0:
        return None
    sequence_ids = sequence_ids_from_position_ids(position_ids.expand(batch_size, -1))  # (B, T)
    if not torch.compiler.is_compiling() and not bool(sequence_ids[:, -1].any()):
        return None  # every row is one sequence
    return sequence_ids


def packed_sequence_mask(sequence_ids: torch.Tensor) -> torch.Tensor:
    """Block-diagonal mask: query i may see key j only in its own sequence, s_i = s_j. (B, T) → (B, 1, T, T).

    Combined with the causal mask this is one causal mask per packed sequence; alone (BERT) one bidirectional block
    per sequence.
    """
    return sequence_ids[:, None, :, None] == sequence_ids[:, None, None, :]  # (B, 1, T, 1) == (B, 1, 1, T)


def flash_sequence_lengths(sequence_ids: torch.Tensor) -> dict[str, torch.Tensor | int]:
    """The variable-length kwargs of the flash backends for packed rows: `cu_seq_lens_q/k` (int32, N + 1) are the
    offsets at which each of the N sequences starts in the flattened B·T tokens (and the total), `max_length_q/k`
    the longest sequence — what `DataCollatorWithFlattening(return_flash_attn_kwargs=True)` returns and
    transformers' `modeling_flash_attention_utils.prepare_fa_kwargs_from_position_ids` derives."""
    B, T = sequence_ids.shape
    starts = torch.ones_like(sequence_ids, dtype=torch.bool)
    starts[:, 1:] = sequence_ids[:, 1:] != sequence_ids[:, :-1]  # each row starts a sequence; so does each change
    offsets = starts.reshape(-1).nonzero().reshape(-1)  # (N,) in the flattened B·T tokens
    cu_seq_lens = torch.cat([offsets, offsets.new_tensor([B * T])]).to(torch.int32)  # (N + 1,)
    max_length = int(cu_seq_lens.diff().max())
    return {"cu_seq_lens_q": cu_seq_lens, "cu_seq_lens_k": cu_seq_lens, "max_length_q": max_length,
            "max_length_k": max_length}


def attention_mask_for(
    attention_mask: torch.Tensor | None,
    query_length: int,
    key_length: int,
    causal: bool,
    dtype: torch.dtype,
    device: torch.device,
    past: int | torch.Tensor | None = None,
    sequence_ids: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """One additive mask (B|1, 1, T, S) = causal ∧ padding ∧ same packed sequence, built once per forward and shared
    by every layer.

    Returns None when nothing is masked (no padding, not causal, not packed), so fast kernels can skip the mask. A
    padding mask shorter than S (a static cache's unfilled slots) is extended with zeros. Under torch.compile the
    padding mask is always applied (skipping it when all ones would be a data-dependent branch). `sequence_ids`
    (B, T) from `packed_sequence_ids` (only without past keys, so T = S) keep attention inside each sequence.
    """
    allowed = None
    if causal:
        allowed = causal_mask(query_length, key_length, device, past)[None, None]  # (1, 1, T, S)
    if sequence_ids is not None:
        same = packed_sequence_mask(sequence_ids.to(device))  # (B, 1, T, T)
        allowed = same if allowed is None else allowed & same
    if attention_mask is not None and (torch.compiler.is_compiling() or not bool(attention_mask.all())):
        attention_mask = F.pad(attention_mask.to(device), (0, key_length - attention_mask.shape[-1]))
        pad = padding_mask(attention_mask)  # (B, 1, 1, S)
        allowed = pad if allowed is None else allowed & pad
    return None if allowed is None else additive_mask(allowed, dtype)


def positions_from_attention_mask(attention_mask: torch.Tensor, past_length: int = 0) -> torch.Tensor:
    """Position of each token counting only real ones: cumsum(mask) - 1, so left padding starts real text at 0. (B, T)."""
    positions = attention_mask.long().cumsum(-1) - 1
    positions = positions.clamp(min=0)  # padding slots get position 0; they are masked anyway
    return positions[:, past_length:]


def attention_inputs(
    attention_mask: torch.Tensor | None,
    batch_size: int,
    query_length: int,
    key_length: int,
    causal: bool,
    implementation: str | None,
    dtype: torch.dtype,
    device: torch.device,
    past: int | torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    output_attentions: bool = False,
) -> tuple[torch.Tensor | None, dict]:
    """What the attention backend needs to see only what it may: `(mask, attention_kwargs)`.

    - flash backends (no weights wanted): the 2-D padding mask or None (causality is built in), and for packed rows
      the sequence lengths as kwargs (`flash_sequence_lengths`);
    - eager / sdpa: an additive (B|1, 1, T, S) mask = causal ∧ padding ∧ packing (`attention_mask_for`), or None when
      the kernel's own causal flag says it all (no padding, no packing, queries start at key 0 or are one new token).
    `attention_mask` is the 2-D (B, S) padding mask or None; `past` defaults to S − T; `position_ids` (1|B, T) mark
    packed sequences (`packed_sequence_ids`). Decided before building anything, so a cached decoding step builds no
    (T, S) mask at all. Used for self-attention and (not causal, no position ids) cross-attention alike.
    """
    past = key_length - query_length if past is None else past
    sequence_ids = packed_sequence_ids(position_ids, attention_mask, past, batch_size)
    # under torch.compile a padding mask is always applied: `all()` would be a data-dependent branch
    no_padding = attention_mask is None or (not torch.compiler.is_compiling() and bool(attention_mask.all()))
    if not output_attentions and implementation is not None and implementation.startswith("flash"):
        lengths = flash_sequence_lengths(sequence_ids) if sequence_ids is not None else {}
        return (None if no_padding else attention_mask), lengths  # flash kernels build the causal pattern themselves
    # Fast kernels apply the causal pattern themselves (module.is_causal) when nothing else is masked and the
    # queries start at key 0 or are a single new token; the eager path always gets the explicit mask.
    # a static cache has slots beyond the tokens seen (past is a tensor only for a static cache under compile)
    no_unfilled_slots = isinstance(past, int) and key_length == past + query_length
    trivially_causal = causal and no_padding and sequence_ids is None and no_unfilled_slots and (
        past == 0 or query_length == 1)
    if trivially_causal and (query_length == 1 or (not output_attentions and implementation not in (None, "eager"))):
        return None, {}  # a single new token may see every key: no mask at all, for every backend
    mask = attention_mask_for(attention_mask, query_length, key_length, causal, dtype, device, past, sequence_ids)
    return mask, {}
