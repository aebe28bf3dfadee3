"""Configuration of the GPT family (Radford et al. 2018/2019): a causal decoder-only Transformer."""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict

from .checks import check_choice, check_positive
from .configuration_common import FIELD_CHECKS, LAYER_TYPE_CHOICES, ScratchConfig, optional_check, resolve_aliases


def check_layer_type_names(name: str, value: Any) -> None:
    """Raise ValueError unless `value` is a list of "full_attention" | "sliding_attention" (one per layer)."""
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"`{name}` must be a list with one of {LAYER_TYPE_CHOICES} per layer, got {value!r}.")
    for kind in value:
        check_choice(f"{name}[i]", kind, LAYER_TYPE_CHOICES)


@strict
class ScratchGPTConfig(ScratchConfig):
    """GPT-2-style defaults: pre-LN, gelu_new, learned positions, output layer tied to the token embedding.

    `sliding_window` = W: each query of the causal self-attention sees the last W positions, itself included
    (Mistral); `layer_types` ∈ full_attention | sliding_attention per layer picks which layers do (Qwen2's
    `max_window_layers`; None: all of them). Only this family takes a window: it is the one decoder-only stack.

    Example: `ScratchGPTConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4)`;
    the paper's names work too: `ScratchGPTConfig(d_model=64, d_ff=256, num_heads=4)`.
    """

    model_type = "scratch_gpt"
    keys_to_ignore_at_inference = ["cache"]

    sliding_window: int | None = None  # causal self-attention sees only the last W positions (Mistral, Qwen2)
    layer_types: list[str] | None = None  # per layer: "full_attention" | "sliding_attention" (None: all one kind)

    field_checks = {
        **FIELD_CHECKS,
        "sliding_window": optional_check(check_positive),
        "layer_types": optional_check(check_layer_type_names),
    }

    def __post_init__(self, **kwargs):
        """Validate the window options (one kind per layer; sliding layers need a window), then the shared ones."""
        resolve_aliases(self, kwargs)  # `num_layers=` sets the layer count `layer_types` must match
        for name in ("sliding_window", "layer_types"):
            self.field_checks[name](name, getattr(self, name))
        if self.layer_types is not None and len(self.layer_types) != self.num_hidden_layers:
            raise ValueError(f"`layer_types` must be a list of {self.num_hidden_layers} entries (one per layer), "
                             f"got {self.layer_types!r}.")
        if self.layer_types is not None and "sliding_attention" in self.layer_types and self.sliding_window is None:
            raise ValueError("`layer_types` has 'sliding_attention' layers but `sliding_window` is None; give the "
                             "window size W.")
        super().__post_init__(**kwargs)

    def attention_layer_types(self) -> list[str]:
        """Each layer's self-attention kind: `layer_types`, or all "sliding_attention" with a `sliding_window` (as
        Mistral), else all "full_attention"."""
        if self.layer_types is not None:
            return list(self.layer_types)
        kind = "full_attention" if self.sliding_window is None else "sliding_attention"
        return [kind] * self.num_hidden_layers
