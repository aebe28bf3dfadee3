"""Attention masks: which keys each query may look at.

"We need to prevent leftward information flow in the decoder to preserve the auto-regressive property. We implement
this inside of scaled dot-product attention by masking out (setting to -inf) all values in the input of the softmax
which correspond to illegal connections." (Vaswani et al. 2017, §3.2.3)

Boolean masks are True where attention is allowed; `additive_mask` turns them into the 0 / -inf bias that is added
to QKᵀ/√d_k. Shapes: B batch, T queries, S keys.
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


def attention_mask_for(
    attention_mask: torch.Tensor | None,
    query_length: int,
    key_length: int,
    causal: bool,
    dtype: torch.dtype,
    device: torch.device,
    past: int | torch.Tensor | None = None,
) -> torch.Tensor | None:
    """One additive mask (B|1, 1, T, S) = causal ∧ padding, built once per forward and shared by every layer.

    Returns None when nothing is masked (no padding, not causal), so fast kernels can skip the mask. A padding mask
    shorter than S (a static cache's unfilled slots) is extended with zeros. Under torch.compile the padding mask
    is always applied (skipping it when all ones would be a data-dependent branch).
    """
    allowed = None
    if causal:
        allowed = causal_mask(query_length, key_length, device, past)[None, None]  # (1, 1, T, S)
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
