"""Where the transformers 5.x releases we support differ, in one place (read from the installed classes, not from
version numbers, so a backport or a pre-release behaves as what it is).

- transformers 5.24 renamed the cache field of every `ModelOutput` (`BaseModelOutputWithPast`, `CausalLMOutputWithPast`,
  `Seq2SeqLMOutput`, …) and the cache argument `generate()` hands to `forward()` from `past_key_values` to `cache`.
  Our forwards take `cache=` and also accept `past_key_values=`; outputs are built with `**cache_field(cache)` and read
  with `output_cache(output)`.

Like the other block modules, this one imports only torch/transformers, so remote-code checkpoints carry it.
"""

from __future__ import annotations

from dataclasses import fields

from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutputWithPast

#: The name transformers uses for the cache in model outputs and generate()'s model kwargs: "cache" (5.24 and later)
#: or "past_key_values" (5.23 and earlier).
CACHE_NAME: str = "cache" if "cache" in {f.name for f in fields(BaseModelOutputWithPast)} else "past_key_values"

def cache_field(cache: Cache | None) -> dict[str, Cache | None]:
    """The keyword that puts `cache` into an installed `ModelOutput` class: `{CACHE_NAME: cache}`."""
    return {CACHE_NAME: cache}


def output_cache(output) -> Cache | None:
    """The cache a `ModelOutput` (or generate()'s model-kwargs dict) carries, under either release's name."""
    return output.get(CACHE_NAME)  # a ModelOutput is a dict of its non-None fields
