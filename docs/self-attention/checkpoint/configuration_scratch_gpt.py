"""Configuration of the GPT family (Radford et al. 2018/2019): a causal decoder-only Transformer."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict

from .configuration_common import ScratchConfig


@strict
class ScratchGPTConfig(ScratchConfig):
    """GPT-2-style defaults: pre-LN, gelu_new, learned positions, output layer tied to the token embedding.

    Example: `ScratchGPTConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4)`;
    the paper's names work too: `ScratchGPTConfig(d_model=64, d_ff=256, num_heads=4)`.
    """

    model_type = "scratch_gpt"
    keys_to_ignore_at_inference = ["cache"]
