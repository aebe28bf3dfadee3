"""The default key/value cache for decoding: keys and values appended in place, without re-copying the past.

transformers' `DynamicCache` appends with `torch.cat`, which copies all past + T cached tokens at every decoding step
(O(S) per token, O(S²) per sequence) and allocates a new tensor each time. `GrowingCache` keeps each layer's keys and
values in a buffer with spare room, grown by doubling, and hands attention a view of the filled part: a step copies
only its own T new tokens (amortised O(T)). It is a `DynamicCache`, so everything in transformers that reads, crops,
reorders (beam search), offloads or slices a dynamic cache works on it unchanged. One difference: a view of the keys
taken earlier sees later in-place changes (a beam reorder, writes after a crop), where a `DynamicCache` would have
made new tensors; `copy.deepcopy` a cache to keep a snapshot (transformers' prompt-reuse recipe does).
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
        self._handed_out: tuple[torch.Tensor, torch.Tensor] | None = None  # the views the last update returned

    def _owns_states(self) -> bool:
        """Are `keys`/`values` still views of our buffers? Usually they are the very views we handed out; methods
        inherited from DynamicLayer may replace them (crop with a shorter view; index_select, repeat_interleave,
        .to() with new tensors), and so may users: then we re-buffer."""
        if self._handed_out is not None and self.keys is self._handed_out[0] and self.values is self._handed_out[1]:
            return True

        def is_view(states: torch.Tensor, buffer: torch.Tensor | None) -> bool:
            return (
                buffer is not None
                and states.data_ptr() == buffer.data_ptr()
                and states.shape[:2] == buffer.shape[:2]
                and states.stride() == buffer.stride()
            )

        return is_view(self.keys, self.key_buffer) and is_view(self.values, self.value_buffer)

    def _has_room(self, key_states: torch.Tensor, end: int) -> bool:
        """Can this step's keys be written in place up to position `end`?"""
        buffer = self.key_buffer
        return (
            buffer is not None
            and end <= buffer.shape[-2]
            and key_states.shape[:2] == buffer.shape[:2]
            and key_states.dtype == buffer.dtype
            and key_states.device == buffer.device
            and self._writable(buffer)
            and self._owns_states()
        )

    @staticmethod
    def _writable(buffer: torch.Tensor) -> bool:
        """A buffer made under torch.inference_mode cannot be written outside it (then we re-buffer)."""
        return not buffer.is_inference() or torch.is_inference_mode_enabled()

    def _grow(self, key_states: torch.Tensor, value_states: torch.Tensor, past: int, end: int) -> None:
        """New buffers of capacity max(end, 2·past) holding the `past` cached tokens (amortised doubling)."""
        capacity = max(end, 2 * past)
        buffers = []
        for states, new in ((self.keys, key_states), (self.values, value_states)):
            B, H, _, D = new.shape
            buffer = new.new_empty(B, H, capacity, D)
            if past:
                buffer.narrow(2, 0, past).copy_(states)
            buffers.append(buffer)
        self.key_buffer, self.value_buffer = buffers

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        """Append this step's (B, H, T, D) keys and values; return all n + T of them (views, no copy of the past)."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        if torch.is_grad_enabled() and (key_states.requires_grad or value_states.requires_grad):
            return super().update(key_states, value_states)  # autograd needs every step's tensors kept intact
        past = self.get_seq_length()
        end = past + key_states.shape[-2]
        if not self._has_room(key_states, end):
            self._grow(key_states, value_states, past, end)
        self.key_buffer.narrow(2, past, end - past).copy_(key_states)  # buffer[:, :, past:end] = this step's
        self.value_buffer.narrow(2, past, end - past).copy_(value_states)
        self.keys, self.values = self._handed_out = self.key_buffer.narrow(2, 0, end), self.value_buffer.narrow(2, 0, end)
        return self.keys, self.values

    def reset(self) -> None:
        """Empty the layer, keeping the object: the next `update` starts a new sequence. (transformers up to 5.23's
        `DynamicLayer.reset` zeroes the keys but keeps their length; 5.24 drops them, as we do on every version.)"""
        self.keys = self.values = self.key_buffer = self.value_buffer = self._handed_out = None
        self.is_initialized = False
        super().reset()

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Beam search: reorder the batch rows in place, so the buffers (and their spare room) are kept."""
        if self.get_seq_length() > 0 and self._owns_states() and self._writable(self.key_buffer):
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
