"""Attention masks: which keys each query may look at.

"We need to prevent leftward information flow in the decoder to preserve the auto-regressive property. We implement
this inside of scaled dot-product attention by masking out (setting to -inf) all values in the input of the softmax
which correspond to illegal connections." (Vaswani et al. 2017, §3.2.3)

Boolean masks are True where attention is allowed; `additive_mask` turns them into the 0 / -inf bias that is added
to QKᵀ/√d_k. Shapes: B batch, T queries, S keys.

What a query may see has four sources, combined here and nowhere else: causality, a sliding window (only the last W
positions), padding (a 0/1 attention mask) and packing (several sequences in one row, marked by position ids that restart, as `DataCollatorWithFlattening`
builds them). `attention_inputs` decides, once per forward and attention kind, what the configured backend needs —
the one call a stack makes per kind (`paged_attention_inputs` under continuous batching, where the batcher built the
masks); `attention_backend` decides which attention function runs (ours, written out, when weights are wanted).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

from .checks import check_prepared_mask


def causal_mask(
    query_length: int, key_length: int, device: torch.device | None = None, past: int | torch.Tensor | None = None,
    sliding_window: int | None = None, key_offset: int = 0,
) -> torch.Tensor:
    """Look-ahead mask: query i (absolute position past + i) sees keys j ≤ past + i. Returns (T, S).

    `past` defaults to key_length − query_length (the queries are the last keys); a static cache has more key slots
    than tokens seen, and the unfilled slots after past + T − 1 are masked as "future". Key j sits at absolute position
    `key_offset` + j (a sliding-window cache hands back only its recent keys). With `sliding_window` = W a query also
    sees only the last W positions, itself included: past + i − W < j ≤ past + i (Mistral; Beltagy et al. 2020,
    Longformer; transformers' `sliding_window_causal_mask_function`).
    """
    past = key_length - query_length if past is None else past
    q = torch.arange(query_length, device=device).unsqueeze(1) + past  # (T, 1) absolute query positions
    k = torch.arange(key_length, device=device).unsqueeze(0) + key_offset  # (1, S) absolute key positions
    allowed = k <= q  # (T, S)
    if sliding_window is not None:
        allowed = allowed & (k > q - sliding_window)
    return allowed


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
    sliding_window: int | None = None,
    key_offset: int = 0,
) -> torch.Tensor | None:
    """One additive mask (B|1, 1, T, S) = causal (within the sliding window) ∧ padding ∧ same packed sequence, built
    once per forward and shared by every layer of one attention kind.

    Returns None when nothing is masked (no padding, not causal, not packed), so fast kernels can skip the mask. A
    padding mask shorter than S (a static cache's unfilled slots) is extended with zeros; with `key_offset` > 0 (a
    sliding-window cache keeps only recent keys) its columns key_offset … key_offset + S − 1 are used. Under
    torch.compile the padding mask is always applied (skipping it when all ones would be a data-dependent branch).
    `sequence_ids` (B, T) from `packed_sequence_ids` (only without past keys, so T = S) keep attention inside each
    sequence.
    """
    allowed = None
    if causal:
        allowed = causal_mask(query_length, key_length, device, past, sliding_window, key_offset)[None, None]
    if sequence_ids is not None:
        same = packed_sequence_mask(sequence_ids.to(device))  # (B, 1, T, T)
        allowed = same if allowed is None else allowed & same
    if attention_mask is not None and (torch.compiler.is_compiling() or not bool(attention_mask.all())):
        attention_mask = attention_mask.to(device)[:, key_offset:key_offset + key_length]
        attention_mask = F.pad(attention_mask, (0, key_length - attention_mask.shape[-1]))
        pad = padding_mask(attention_mask)  # (B, 1, 1, S)
        allowed = pad if allowed is None else allowed & pad
    return None if allowed is None else additive_mask(allowed, dtype)


def positions_from_attention_mask(attention_mask: torch.Tensor, past_length: int = 0) -> torch.Tensor:
    """Position of each token counting only real ones: cumsum(mask) - 1, so left padding starts real text at 0. (B, T)."""
    positions = attention_mask.long().cumsum(-1) - 1
    positions = positions.clamp(min=0)  # padding slots get position 0; they are masked anyway
    return positions[:, past_length:]


def is_external_attention(attn_implementation: str | None) -> bool:
    """Was this attention implementation registered by someone else — vLLM's "vllm", SGLang's "sglang", a user's own
    `AttentionInterface.register(name, fn)` — rather than being one whose inputs our stack prepares (eager, sdpa, the
    flash kernels and anything named "flash…", flex, a Hub kernel "org/name", continuous batching's "paged|…")?

    Such a backend brings its own KV cache and masking: it gets every keyword argument `forward()` was given, passed
    down to it unchanged (vLLM: `attention_instances`; SGLang: `forward_batch`), as the vLLM/SGLang "transformers
    backend" contract asks (vLLM docs, "Writing custom models": kwargs passed down to the attention, which is called
    through `ALL_ATTENTION_FUNCTIONS`)."""
    if attn_implementation is None or attn_implementation in ("eager", "sdpa", "flex_attention"):
        return False
    return not (attn_implementation.startswith(("flash", "paged|")) or "/" in attn_implementation)


def attention_backend(implementation: str | None, output_attentions: bool = False) -> str:
    """Which attention function runs for `config._attn_implementation`: "eager" (ours, written out) for None and
    "eager", and whenever weights are wanted from a kernel that returns none (sdpa, flash, flex); otherwise the
    configured one — continuous batching's "paged|…" functions and an inference server's own keep theirs. The one
    place this is decided: `attention_inputs` builds the mask for it, `attention.attention_function` calls it."""
    if implementation in (None, "eager"):
        return "eager"
    if output_attentions and not implementation.startswith("paged|") and not is_external_attention(implementation):
        return "eager"
    return implementation


def is_prepared_mask(attention_mask) -> bool:
    """True for a ready-made (B|1, 1, T, S) attention mask rather than a 2-D 0/1 padding mask."""
    return isinstance(attention_mask, torch.Tensor) and attention_mask.dim() == 4


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
    sliding_window: int | None = None,
    key_offset: int = 0,
) -> tuple[torch.Tensor | None, dict]:
    """What the attention backend needs to see only what it may: `(mask, attention_kwargs)`.

    - flash backends (no weights wanted): the 2-D padding mask of the keys or None (causality is built in), for
      packed rows the sequence lengths as kwargs (`flash_sequence_lengths`), and `sliding_window` when there is one
      (the kernel's own window);
    - eager / sdpa: an additive (B|1, 1, T, S) mask = causal ∧ window ∧ padding ∧ packing (`attention_mask_for`), or
      None when the kernel's own causal flag says it all (no padding, no packing, queries start at key 0 or are one
      new token, and no key falls out of the window).
    - an inference server's attention that registered no mask function (`ALL_MASK_ATTENTION_FUNCTIONS`) masks by
      itself and gets none, as transformers' own `masking_utils` decides for it; a paged function outside continuous
      batching (no batcher's mask) applies no causal pattern of its own, so it gets eager's;
    - a ready-made 4-D mask (generate() with a static cache: transformers' `create_causal_mask`) is checked and used
      as it is, additive (a boolean one made so).
    `attention_mask` is the 2-D (B, past + T) padding mask or None; `past` defaults to S − T; `position_ids` (1|B, T)
    mark packed sequences (`packed_sequence_ids`). `sliding_window` = W (causal only): a query sees the last W
    positions, itself included. `key_offset`: the absolute position of the first of the S keys (> 0 when a sliding
    cache dropped older keys; transformers' `Cache.get_mask_sizes`). Decided before building anything, so a cached
    decoding step builds no (T, S) mask at all. Used for self-attention and (not causal, no position ids)
    cross-attention alike.
    """
    if is_prepared_mask(attention_mask):
        check_prepared_mask(attention_mask, batch_size, query_length, key_length)
        return (attention_mask if attention_mask.is_floating_point() else additive_mask(attention_mask, dtype)), {}
    if is_external_attention(implementation) and implementation not in ALL_MASK_ATTENTION_FUNCTIONS:
        return None, {}
    backend = attention_backend("eager" if (implementation or "").startswith("paged|") else implementation,
                                output_attentions)
    past = key_length - query_length if past is None else past
    window = sliding_window if causal else None
    # the window bites only if some query has a key more than W − 1 positions back: S > W
    window_bites = window is not None and key_length > window
    sequence_ids = packed_sequence_ids(position_ids, attention_mask, past, batch_size)
    # under torch.compile a padding mask is always applied: `all()` would be a data-dependent branch
    no_padding = attention_mask is None or (not torch.compiler.is_compiling() and bool(attention_mask.all()))
    if backend.startswith("flash"):
        lengths = flash_sequence_lengths(sequence_ids) if sequence_ids is not None else {}
        if window is not None:
            lengths["sliding_window"] = window
        if no_padding:
            return None, lengths  # flash kernels build the causal pattern themselves
        return attention_mask[:, key_offset:key_offset + key_length], lengths
    # Fast kernels apply the causal pattern themselves (module.is_causal) when nothing else is masked and the
    # queries start at key 0 or are a single new token; the eager path always gets the explicit mask.
    # a static cache has slots beyond the tokens seen (past is a tensor only for a static cache under compile)
    no_unfilled_slots = isinstance(past, int) and key_offset + key_length == past + query_length
    trivially_causal = causal and no_padding and sequence_ids is None and no_unfilled_slots and not window_bites and (
        past == key_offset or query_length == 1)
    if trivially_causal and (query_length == 1 or (not output_attentions and backend != "eager")):
        return None, {}  # a single new token may see every key: no mask at all, for every backend
    mask = attention_mask_for(attention_mask, query_length, key_length, causal, dtype, device, past, sequence_ids,
                              window if window_bites else None, key_offset)
    return mask, {}


def paged_attention_inputs(attention_mask, layer_types: list[str], implementation: str | None,
                           sliding_window: int | None) -> dict[str, tuple[torch.Tensor | None, dict]]:
    """Continuous batching: the masks the batcher built, per attention kind (mask, attention kwargs).

    The batcher (transformers' `ContinuousBatchingIOs`) packs every request's new tokens into one row and builds
    the additive (1, 1, T, S) mask that keeps each query causal inside its own request (and inside the window for
    "sliding_attention" layers) for eager/sdpa: one tensor, or a dict by kind when layers differ; None for flash
    kernels, which take the sequence lengths instead (the paged kwargs) and, on sliding layers, the window."""
    flash = (implementation or "").removeprefix("paged|").startswith("flash")
    masks = {}
    for kind in dict.fromkeys(layer_types):
        mask = attention_mask.get(kind) if isinstance(attention_mask, dict) else attention_mask
        window = {"sliding_window": sliding_window} if flash and kind == "sliding_attention" else {}
        masks[kind] = mask, window
    return masks
