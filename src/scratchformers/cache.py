"""The default key/value cache for decoding: keys and values appended in place, without re-copying the past.

transformers' `DynamicCache` appends with `torch.cat`, which copies all past + T cached tokens at every decoding step
(O(S) per token, O(S²) per sequence) and allocates a new tensor each time. `GrowingCache` keeps each layer's keys and
values in a buffer with spare room, grown by doubling, and hands attention a view of the filled part: a step copies
only its own T new tokens (amortised O(T)). It is a `DynamicCache`, so everything in transformers that reads, crops,
reorders (beam search), offloads or slices a dynamic cache works on it unchanged.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer


class GrowingLayer(DynamicLayer):
    """One layer's keys/values as views [:, :, :n] into (B, H, capacity, D) buffers; capacity doubles when full."""

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self.key_buffer: torch.Tensor | None = None
        self.value_buffer: torch.Tensor | None = None

    def _owns_states(self) -> bool:
        """Are `keys`/`values` still views of our buffers? Methods inherited from DynamicLayer (crop keeps the view;
        index_select, repeat_interleave, .to() replace it) and users may reassign them; then we re-buffer."""

        def is_view(states: torch.Tensor, buffer: torch.Tensor | None) -> bool:
            return (
                buffer is not None
                and states.data_ptr() == buffer.data_ptr()
                and states.shape[:2] == buffer.shape[:2]
                and states.stride() == buffer.stride()
            )

        return is_view(self.keys, self.key_buffer) and is_view(self.values, self.value_buffer)

    @staticmethod
    def _append(buffer: torch.Tensor | None, past: torch.Tensor | None, new: torch.Tensor, grow: bool):
        """Write `new` after the n past tokens; with `grow`, first move the past into a buffer of max(n + T, 2n)."""
        n = 0 if past is None else past.shape[-2]
        if grow:
            B, H, T, D = new.shape
            buffer = new.new_empty(B, H, max(n + T, 2 * n), D)
            if n:
                buffer[:, :, :n].copy_(past)
        buffer[:, :, n : n + new.shape[-2]].copy_(new)
        return buffer, buffer[:, :, : n + new.shape[-2]]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        """Append this step's (B, H, T, D) keys and values; return all n + T of them (views, no copy of the past)."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        if torch.is_grad_enabled() and (key_states.requires_grad or value_states.requires_grad):
            return super().update(key_states, value_states)  # autograd needs every step's tensors kept intact
        past = self.get_seq_length()
        owned = self._owns_states()
        grow = (
            not owned
            or past + key_states.shape[-2] > self.key_buffer.shape[-2]
            or key_states.shape[:2] != self.key_buffer.shape[:2]
            or (key_states.dtype, key_states.device) != (self.key_buffer.dtype, self.key_buffer.device)
        )
        keys, values = (self.keys, self.values) if past else (None, None)
        self.key_buffer, self.keys = self._append(self.key_buffer, keys, key_states, grow)
        self.value_buffer, self.values = self._append(self.value_buffer, values, value_states, grow)
        return self.keys, self.values

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Beam search: reorder the batch rows in place, so the buffers (and their spare room) are kept."""
        if self.get_seq_length() > 0 and self._owns_states():
            beam_idx = beam_idx.to(self.keys.device)
            self.keys.copy_(self.keys.index_select(0, beam_idx))
            self.values.copy_(self.values.index_select(0, beam_idx))
        else:
            super().reorder_cache(beam_idx)


def _grow_in_place(cache: DynamicCache) -> None:
    """Swap a dynamic cache's still-empty `DynamicLayer`s (and the class it adds layers with) for `GrowingLayer`s."""
    if cache.offloading:  # offloading moves layers between devices; keep transformers' own layers there
        return
    cache.layers = [
        GrowingLayer() if type(layer) is DynamicLayer and not layer.is_initialized else layer for layer in cache.layers
    ]
    if cache.layer_class_to_replicate is DynamicLayer:
        cache.layer_class_to_replicate = GrowingLayer


class GrowingCache(DynamicCache):
    """A `DynamicCache` whose full-attention layers are `GrowingLayer`s: each decoding step copies only its new
    tokens. Our models create it whenever they make a cache themselves (forward with `use_cache=True`, generate())."""

    def __init__(self, config=None, **kwargs):
        super().__init__(config=config, **kwargs)
        _grow_in_place(self)


def use_growing_layers(cache) -> None:
    """In a cache generate() has just made (a plain DynamicCache, or an EncoderDecoderCache of two), use
    `GrowingLayer`s. Other caches (static, quantized, a user's own) are left alone."""
    for part in (getattr(cache, "self_attention_cache", cache), getattr(cache, "cross_attention_cache", None)):
        if type(part) is DynamicCache:
            _grow_in_place(part)
