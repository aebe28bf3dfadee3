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
POSITION_EMBEDDING_CHOICES = ("learned", "sinusoidal", "rotary")
SINUSOIDAL_LAYOUT_CHOICES = ("interleaved", "split")
NORM_TYPE_CHOICES = ("layernorm", "rmsnorm")
FFN_TYPE_CHOICES = ("mlp", "gated")
ROPE_TYPE_CHOICES = ("default", "linear", "llama3")  # `rope_parameters["rope_type"]` values our rotary block computes


@strict
class ScratchConfig(PreTrainedConfig):
    """Shared fields of the Transformer families (a family config overrides the defaults it needs).

    `activation` ∈ relu | gelu | gelu_new | silu; `norm_placement` ∈ pre (GPT-2) | post (the paper, BERT);
    `position_embedding_type` ∈ learned | sinusoidal | rotary; `scale_embedding` multiplies token embeddings by √d_model.
    `position_embedding_type="rotary"` rotates queries and keys instead (Su et al. 2021), with transformers' standard
    `rope_parameters` = {"rope_type": default | linear | llama3, "rope_theta": base, …} (legacy `rope_theta=` and
    `rope_scaling=` arguments are folded into it, as transformers does for every rotary config).
    The modern decoder (Llama, Mistral, Qwen2) is these options, not another model: `norm_type` ∈ layernorm | rmsnorm;
    `ffn_type` ∈ mlp | gated (SwiGLU with `activation="silu"`); `num_key_value_heads` key/value heads shared by groups
    of query heads (grouped-query attention; None: one per query head); `attention_output_bias` (None: as
    `attention_bias`; Qwen2 has q/k/v biases but none on the output projection).
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
    # The modern decoder's options (defaults: the 2017/GPT-2 blocks, unchanged).
    norm_type: str = "layernorm"
    ffn_type: str = "mlp"
    num_key_value_heads: int | None = None
    attention_output_bias: bool | None = None
    rope_parameters: dict | None = None

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
        self._check_modern_decoder_options()
        super().__post_init__(**kwargs)
        self._check_rope_parameters()
        if self.num_labels < 1:
            raise ValueError(f"`num_labels` must be >= 1, got {self.num_labels}.")

    def _check_modern_decoder_options(self) -> None:
        """RMSNorm, gated FFN, grouped-query attention and the output-projection bias: named values, sizes that fit."""
        check_choice("norm_type", self.norm_type, NORM_TYPE_CHOICES)
        check_choice("ffn_type", self.ffn_type, FFN_TYPE_CHOICES)
        # None = one per query head, kept None rather than stored as a number: a config rebuilt from another's
        # settings with a new head count (`from_dict` of a base config plus overrides) stays consistent.
        if self.num_key_value_heads is not None:
            check_positive("num_key_value_heads", self.num_key_value_heads)
        if self.num_key_value_heads is not None and self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError(
                f"`num_attention_heads`={self.num_attention_heads} must be a multiple of `num_key_value_heads`="
                f"{self.num_key_value_heads} (each key/value head serves an equal group of query heads)."
            )
        if self.attention_output_bias is not None:
            check_bool("attention_output_bias", self.attention_output_bias)
        if self.position_embedding_type == "rotary" and (self.hidden_size // self.num_attention_heads) % 2:
            raise ValueError(
                f"`position_embedding_type`='rotary' rotates pairs of dimensions: the head size hidden_size / "
                f"num_attention_heads = {self.hidden_size // self.num_attention_heads} must be even."
            )

    def _check_rope_parameters(self) -> None:
        """`rope_parameters` names a scaling our rotary block computes, with the numbers that scaling needs."""
        if self.position_embedding_type != "rotary":
            return
        rope = self.rope_parameters or {}
        check_choice("rope_parameters['rope_type']", rope.get("rope_type", "default"), ROPE_TYPE_CHOICES)
        check_positive_number("rope_parameters['rope_theta']", rope.get("rope_theta", 10000.0))
        needed = {"default": (), "linear": ("factor",),
                  "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")}
        for key in needed[rope.get("rope_type", "default")]:
            check_positive_number(f"rope_parameters[{key!r}]", rope.get(key))
        if rope.get("rope_type") == "llama3" and rope["high_freq_factor"] <= rope["low_freq_factor"]:
            raise ValueError(
                f"rope_parameters['high_freq_factor']={rope['high_freq_factor']} must be greater than "
                f"'low_freq_factor'={rope['low_freq_factor']} (llama3 scaling blends the frequencies between them)."
            )
