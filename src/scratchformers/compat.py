"""Where the transformers 5.x releases we support differ, in one place (read from the installed classes, not from
version numbers, so a backport or a pre-release behaves as what it is).

- transformers 5.24 renamed the cache field of every `ModelOutput` (`BaseModelOutputWithPast`, `CausalLMOutputWithPast`,
  `Seq2SeqLMOutput`, …) and the cache argument `generate()` hands to `forward()` from `past_key_values` to `cache`.
  Our forwards take `cache=` and also accept `past_key_values=` (`takes_old_cache_name`: deprecated, with a warning,
  where transformers' own models deprecate it); outputs are built with `**cache_field(cache)` and read with
  `output_cache(output)`.

Like the other block modules, this one imports only torch/transformers, so remote-code checkpoints carry it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from functools import wraps

from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutputWithPast
from transformers.utils.deprecation import deprecate_kwarg

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
            cache = kwargs.pop("past_key_values")
            if kwargs.get("cache") is None:
                kwargs["cache"] = cache
        return forward(*args, **kwargs)

    return with_cache_renamed


def cache_field(cache: Cache | None) -> dict[str, Cache | None]:
    """The keyword that puts `cache` into an installed `ModelOutput` class: `{CACHE_NAME: cache}`."""
    return {CACHE_NAME: cache}


def output_cache(output) -> Cache | None:
    """The cache a `ModelOutput` (or generate()'s model-kwargs dict) carries, under either release's name."""
    return output.get(CACHE_NAME)  # a ModelOutput is a dict of its non-None fields
