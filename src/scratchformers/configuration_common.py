"""The options every Transformer family shares, with transformers' standard names and the paper's as aliases."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from .checks import (
    check_bool,
    check_choice,
    check_divisible,
    check_positive,
    check_positive_number,
    check_probability,
    check_token_id,
)

BOOL_FIELDS = ("scale_embedding", "embedding_layer_norm", "attention_bias", "ffn_bias", "use_cache", "tie_word_embeddings")
TOKEN_ID_FIELDS = ("pad_token_id", "bos_token_id", "eos_token_id")

ACTIVATION_CHOICES = ("relu", "gelu", "gelu_new", "silu")
NORM_PLACEMENT_CHOICES = ("pre", "post")
POSITION_EMBEDDING_CHOICES = ("learned", "sinusoidal")
SINUSOIDAL_LAYOUT_CHOICES = ("interleaved", "split")


@strict
class ScratchConfig(PreTrainedConfig):
    """Shared fields of the Transformer families (a family config overrides the defaults it needs).

    `activation` ∈ relu | gelu | gelu_new | silu; `norm_placement` ∈ pre (GPT-2) | post (the paper, BERT);
    `position_embedding_type` ∈ learned | sinusoidal; `scale_embedding` multiplies token embeddings by √d_model.
    `position_offset` is added to every position id before the lookup (a learned table gets that many extra rows;
    BART: 2); `sinusoidal_layout` ∈ interleaved (sin, cos pairs, §3.5) | split (all sines, then all cosines: Marian).
    """

    attribute_map = {
        "d_model": "hidden_size",
        "d_ff": "intermediate_size",
        "num_heads": "num_attention_heads",
        "num_layers": "num_hidden_layers",
        "dropout": "hidden_dropout_prob",
        "attention_dropout": "attention_probs_dropout_prob",
    }

    vocab_size: int = 8192
    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    max_position_embeddings: int = 512
    hidden_dropout_prob: float | int = 0.1
    attention_probs_dropout_prob: float | int = 0.1
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    activation: str = "gelu_new"
    norm_placement: str = "pre"
    position_embedding_type: str = "learned"
    position_offset: int = 0  # position p reads row p + offset (BART's learned table: offset 2)
    sinusoidal_layout: str = "interleaved"  # "interleaved" sin/cos pairs (the paper) | "split" sin half, cos half
    scale_embedding: bool = False
    type_vocab_size: int = 0
    embedding_layer_norm: bool = False
    attention_bias: bool = True
    ffn_bias: bool = True
    use_cache: bool = True
    tie_word_embeddings: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None

    def __post_init__(self, **kwargs):
        """Reject unknown options and impossible shapes when the config is built, before any model exists."""
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
            check_positive(name, getattr(self, name))
        check_positive("max_position_embeddings", self.max_position_embeddings)
        check_divisible(self.hidden_size, self.num_attention_heads)
        check_choice("activation", self.activation, ACTIVATION_CHOICES)
        check_choice("norm_placement", self.norm_placement, NORM_PLACEMENT_CHOICES)
        check_choice("position_embedding_type", self.position_embedding_type, POSITION_EMBEDDING_CHOICES)
        check_choice("sinusoidal_layout", self.sinusoidal_layout, SINUSOIDAL_LAYOUT_CHOICES)
        if isinstance(self.position_offset, bool) or not isinstance(self.position_offset, int) or self.position_offset < 0:
            raise ValueError(f"`position_offset` must be an integer >= 0, got {self.position_offset!r}.")
        check_probability("hidden_dropout_prob", self.hidden_dropout_prob)
        check_probability("attention_probs_dropout_prob", self.attention_probs_dropout_prob)
        if self.type_vocab_size < 0:
            raise ValueError(f"`type_vocab_size` must be >= 0, got {self.type_vocab_size}.")
        check_positive_number("layer_norm_eps", self.layer_norm_eps)
        check_positive_number("initializer_range", self.initializer_range, allow_zero=True)
        for name in BOOL_FIELDS:
            check_bool(name, getattr(self, name))
        for name in TOKEN_ID_FIELDS:
            check_token_id(name, getattr(self, name))
        super().__post_init__(**kwargs)
        if self.num_labels < 1:
            raise ValueError(f"`num_labels` must be >= 1, got {self.num_labels}.")
