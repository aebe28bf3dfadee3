"""Where the transformers 5.x releases we support differ, in one place (read from the installed classes, not from
version numbers, so a backport or a pre-release behaves as what it is).

- transformers 5.24 renamed the cache field of every `ModelOutput` (`BaseModelOutputWithPast`, `CausalLMOutputWithPast`,
  `Seq2SeqLMOutput`, …) and the cache argument `generate()` hands to `forward()` from `past_key_values` to `cache`.
  Our forwards take `cache=` and also accept `past_key_values=` (`takes_old_cache_name`: deprecated, with a warning,
  where transformers' own models deprecate it); outputs are built with `**cache_field(cache)` and read with
  `output_cache(output)`.
- Continuous batching (`generate_batch`, `transformers serve --continuous-batching`) hands `forward()` a
  `PagedAttentionCache` and its own keyword arguments (`PagedAttentionArgs`: `read_index`, `write_index`,
  `cu_seq_lens_k`, `max_seqlen_k` in 5.13, `max_length_k` in 5.25, …), read from the installed `PagedAttentionArgs`.
  Who writes that cache changed: in 5.13 the paged attention functions (`paged|eager`, `paged|sdpa`) take it from
  their `cache=` keyword and write it themselves; in 5.25 the model calls `cache.update(k, v, layer_idx,
  kwargs=kwargs)` before the attention function. `write_paged_cache` does whichever the installed
  `PagedAttentionCache.update` signature says.
- The paged cache of a sliding-window layer is a ring buffer of W slots per request. Some releases (5.13 among them)
  read the wrong slots once a request is longer than the window, and store the first W tokens of a longer prefill
  instead of the last W, so continuous batching decodes other tokens than generate() — transformers' own
  MistralForCausalLM too. `paged_sliding_window_is_exact()` finds out by running the installed allocator's index
  arithmetic on a small request; where it is wrong, our models refuse continuous batching with a sliding window.

Like the other block modules, this one imports only torch/transformers, so remote-code checkpoints carry it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import fields
from functools import cache, wraps

import torch
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutputWithPast
from transformers.utils.deprecation import deprecate_kwarg

try:  # transformers' continuous batching (`generate_batch`): its paged KV cache and the kwargs it passes forward()
    from transformers.generation.continuous_batching import PagedAttentionCache
except ImportError:  # pragma: no cover - every release we support has it; a stripped build may not
    PagedAttentionCache = None
try:
    from transformers.generation.continuous_batching.input_outputs import PagedAttentionArgs
except ImportError:  # pragma: no cover
    PagedAttentionArgs = None

#: The name transformers uses for the cache in model outputs and generate()'s model kwargs: "cache" (5.24 and later)
#: or "past_key_values" (5.23 and earlier).
CACHE_NAME: str = "cache" if "cache" in {f.name for f in fields(BaseModelOutputWithPast)} else "past_key_values"

#: The release from which transformers' own forwards (BART, GPT-2, BERT in 5.25) no longer take `past_key_values=`.
OLD_CACHE_NAME_REMOVAL = "5.40.0"


def takes_old_cache_name(forward: Callable) -> Callable:
    """Decorate a `forward(…, cache=…)` so that it also takes the old name, `past_key_values=`.

    Where the installed transformers names the cache `cache` (5.24 on), the old name is deprecated as in its own
    models (BART: `@deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")`): a FutureWarning
    "`past_key_values` is deprecated … Use `cache` instead", then the value is used as `cache` (given both, `cache`
    wins, with a warning); transformers' common test `test_bc_cache_name_forward` checks for that warning. Before 5.24
    `past_key_values` is the name generate() itself passes, so it is taken without a warning."""
    if CACHE_NAME == "cache":
        return deprecate_kwarg("past_key_values", OLD_CACHE_NAME_REMOVAL, new_name="cache")(forward)

    @wraps(forward)
    def with_cache_renamed(*args, **kwargs):
        if "past_key_values" in kwargs:
            old = kwargs.pop("past_key_values")
            if kwargs.get("cache") is None:
                kwargs["cache"] = old
        return forward(*args, **kwargs)

    return with_cache_renamed


def cache_field(cache: Cache | None) -> dict[str, Cache | None]:
    """The keyword that puts `cache` into an installed `ModelOutput` class: `{CACHE_NAME: cache}`."""
    return {CACHE_NAME: cache}


def output_cache(output) -> Cache | None:
    """The cache a `ModelOutput` (or generate()'s model-kwargs dict) carries, under either release's name."""
    return output.get(CACHE_NAME)  # a ModelOutput is a dict of its non-None fields


#: The keyword arguments continuous batching passes to `forward()` besides the usual ones (`read_index`, `write_index`,
#: `block_table`, `logits_indices`, `logits_processor_args`, the per-layer-type `cu_seq_lens_k`, …), read from the
#: installed `PagedAttentionArgs`; empty where transformers has none.
PAGED_ATTENTION_KWARGS: frozenset[str] = frozenset(getattr(PagedAttentionArgs, "__annotations__", {}))

#: True where the model writes the paged cache itself (`cache.update(k, v, layer_idx, kwargs=...)`, transformers 5.25),
#: False where the paged attention function does (it takes the cache from its `cache=` keyword).
PAGED_CACHE_WRITTEN_BY_MODEL: bool = PagedAttentionCache is not None and (
    "kwargs" in inspect.signature(PagedAttentionCache.update).parameters
)


def is_paged_cache(cache) -> bool:
    """Is `cache` continuous batching's `PagedAttentionCache` (one KV pool shared by every request of the batch)?"""
    return PagedAttentionCache is not None and isinstance(cache, PagedAttentionCache)


def write_paged_cache(
    cache, key: torch.Tensor, value: torch.Tensor, layer_idx: int, attention_kwargs: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    """Write this step's keys/values (1, H_kv, T, D) into the paged cache and return what attention reads.

    transformers 5.25: `cache.update(k, v, layer_idx, kwargs=attention_kwargs)` writes the T new tokens at
    `write_index`, returns the (1, H_kv, S, D) keys/values of every request at `read_index` (S = all their cached
    + new tokens, concatenated), and narrows the per-layer-type kwargs (`cu_seq_lens_k`, `max_length_k`) to this
    layer's kind in place. Before it the paged attention function did all that from its `cache=` keyword: the cache is
    put there and k/v go through unchanged. (Source: transformers `generation/continuous_batching/cache.py`,
    `PagedAttentionCache.update`; `integrations/eager_paged.py`, `sdpa_paged.py`.)
    """
    if PAGED_CACHE_WRITTEN_BY_MODEL:
        return cache.update(key, value, layer_idx, kwargs=attention_kwargs)
    attention_kwargs["cache"] = cache
    return key, value


def _sliding_window_allocator_class():
    """transformers' index bookkeeping for sliding-window layers in the paged cache (its module moved), or None."""
    from importlib import import_module

    for module in ("transformers.generation.continuous_batching.cache_allocators.sliding_attention",
                   "transformers.generation.continuous_batching.cache_manager"):
        try:
            return import_module(module).SlidingAttentionCacheAllocator
        except (ImportError, AttributeError):
            continue
    return None


@cache
def paged_sliding_window_is_exact(window: int = 3) -> bool:
    """Does the installed paged cache hand a sliding-window layer exactly the last W − 1 cached keys of a request?

    A probe of transformers' own `SlidingAttentionCacheAllocator.get_read_indices` / `get_write_indices` (the slot
    arithmetic of the ring buffer; no tensors, no model): one request of W = `window` slots on one page goes through a
    prefill longer than the window, single-token decoding steps and short chunks; after each step the slots written
    must hold the positions that the next step reads back, in order: past − min(past, W − 1) … past − 1. False when
    they do not, or when the allocator's bookkeeping cannot be probed like this (then we cannot vouch for it)."""
    allocator_class = _sliding_window_allocator_class()
    if allocator_class is None:
        return False
    allocator = object.__new__(allocator_class)  # only the attributes its index arithmetic reads
    sentinel, trash = -1, -2  # "a new token goes here" in read indices; "not stored" in write indices
    attributes = dict(block_table={"probe": [0]}, sliding_window=window, block_size=window, tokens_per_page=window,
                      block_physical_stride=window, sentinel_index=sentinel, write_trash_index=trash)
    slots: dict[int, int] = {}  # physical slot -> absolute position of the token stored there
    past = 0
    try:
        for name, value in attributes.items():
            object.__setattr__(allocator, name, value)
        for query_length in (2 * window - 1, 1, 1, 2, 1, window + 1, 1):
            read = allocator.get_read_indices("probe", past, query_length)
            cached = [slots.get(slot) for slot in read if slot != sentinel]
            if cached != list(range(past - min(past, window - 1), past)) or read.count(sentinel) != query_length:
                return False
            written = allocator.get_write_indices("probe", past, query_length)
            if len(written) != query_length:
                return False
            for offset, slot in enumerate(written):
                if slot != trash:
                    slots[slot] = past + offset
            past += query_length
    except Exception:  # noqa: BLE001 - another bookkeeping than the one probed: unknown, so not vouched for
        return False
    return True
