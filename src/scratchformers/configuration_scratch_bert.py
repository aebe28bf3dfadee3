"""Configuration of the BERT family (Devlin et al. 2018): a bidirectional encoder pre-trained by masked LM."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict

from .checks import check_bool, check_probability
from .configuration_common import FIELD_CHECKS, ScratchConfig, optional_check


@strict
class ScratchBertConfig(ScratchConfig):
    """BERT defaults: post-LN, exact GELU, LayerNorm ε = 1e-12, embedding LayerNorm, 2 segment types, [PAD] = 0.

    Positions are learned as in BERT (`position_embedding_type="sinusoidal"` gives the paper's fixed encoding).
    `add_pooling_layer` adds the pooler (tanh(W h_[CLS] + b)) to `ScratchBertModel`; `classifier_dropout` is the
    dropout before the classification heads (None: use `hidden_dropout_prob`).

    Example: `ScratchBertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4)`.
    """

    model_type = "scratch_bert"

    activation: str = "gelu"
    norm_placement: str = "post"
    layer_norm_eps: float = 1e-12
    type_vocab_size: int = 2
    embedding_layer_norm: bool = True
    use_cache: bool = False
    pad_token_id: int | None = 0
    add_pooling_layer: bool = True
    classifier_dropout: float | int | None = None

    # checked when the config is built and whenever one is assigned, with the shared fields
    field_checks = {
        **FIELD_CHECKS,
        "add_pooling_layer": check_bool,
        "classifier_dropout": optional_check(check_probability),
    }
