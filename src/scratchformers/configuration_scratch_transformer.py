"""Configuration of the encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al. 2017)."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict

from .checks import check_bool, check_positive
from .configuration_common import FIELD_CHECKS, ScratchConfig, optional_check, resolve_aliases


@strict
class ScratchTransformerConfig(ScratchConfig):
    """Defaults are the paper's base model (Table 3): N = 6 encoder and 6 decoder layers, d_model = 512, h = 8,
    d_ff = 2048, P_drop = 0.1 (residual and embedding dropout, none on attention weights), sinusoidal positions,
    post-LN, ReLU, one source/target embedding shared with the output layer and scaled by √d_model (§3.4).

    `encoder_layers`/`decoder_layers` default to `num_hidden_layers`; afterwards `num_hidden_layers` always equals
    `decoder_layers` (the generation cache holds one entry per decoder layer). `decoder_start_token_id` defaults to
    `bos_token_id`, else `pad_token_id`. `final_logits_bias` adds a (1, V) bias buffer to the output logits (BART,
    Marian: kept at zero by their training, but part of converted checkpoints).
    Example: `ScratchTransformerConfig(vocab_size=8000, d_model=256, encoder_layers=3, decoder_layers=2)`.
    """

    model_type = "scratch_transformer"
    keys_to_ignore_at_inference = ["cache", "encoder_last_hidden_state"]

    vocab_size: int = 37000  # the paper's shared source/target byte-pair vocabulary for English-German
    hidden_size: int = 512
    num_hidden_layers: int = 6
    num_attention_heads: int = 8
    intermediate_size: int = 2048
    max_position_embeddings: int = 1024  # sinusoidal positions need no table; kept for tools that read it
    hidden_dropout_prob: float | int = 0.1
    attention_probs_dropout_prob: float | int = 0.0
    activation: str = "relu"
    norm_placement: str = "post"
    position_embedding_type: str = "sinusoidal"
    scale_embedding: bool = True
    encoder_layers: int | None = None
    decoder_layers: int | None = None
    is_encoder_decoder: bool = True
    decoder_start_token_id: int | None = None
    pad_token_id: int | None = 0
    final_logits_bias: bool = False  # logits = h Eᵀ + b with b a (1, V) buffer (BART/Marian's `final_logits_bias`)

    # checked when the config is built and whenever one is assigned, with the shared fields (None, before the
    # constructor fills them in: the per-stack counts default to `num_hidden_layers`)
    field_checks = {
        **FIELD_CHECKS,
        "encoder_layers": optional_check(check_positive),
        "decoder_layers": optional_check(check_positive),
        "final_logits_bias": check_bool,
    }

    def __post_init__(self, **kwargs):
        """Fill the per-stack layer counts, keep `num_hidden_layers` = decoder layers, pick the decoder start id."""
        resolve_aliases(self, kwargs)  # `num_layers=` must fill the per-stack counts as `num_hidden_layers=` does
        check_positive("num_hidden_layers", self.num_hidden_layers)  # before it fills the per-stack counts
        if self.encoder_layers is None:
            self.encoder_layers = self.num_hidden_layers
        if self.decoder_layers is None:
            self.decoder_layers = self.num_hidden_layers
        check_positive("encoder_layers", self.encoder_layers)
        check_positive("decoder_layers", self.decoder_layers)
        self.num_hidden_layers = self.decoder_layers
        if not self.is_encoder_decoder:
            raise ValueError("`is_encoder_decoder` must be True for scratch_transformer (it has an encoder and a decoder).")
        if self.decoder_start_token_id is None:
            self.decoder_start_token_id = self.bos_token_id if self.bos_token_id is not None else self.pad_token_id
        elif self.decoder_start_token_id < 0 or self.decoder_start_token_id >= self.vocab_size:
            raise ValueError(
                f"`decoder_start_token_id`={self.decoder_start_token_id} is outside the vocabulary "
                f"[0, {self.vocab_size - 1}]."
            )
        super().__post_init__(**kwargs)
