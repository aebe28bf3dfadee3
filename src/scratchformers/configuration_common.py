"""The options every Transformer family shares, with transformers' standard names and the paper's as aliases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
LAYER_TYPE_CHOICES = ("full_attention", "sliding_attention")
ROPE_TYPE_CHOICES = ("default", "linear", "llama3", "dynamic", "yarn")  # `rope_parameters["rope_type"]` values our rotary block computes


def check_non_negative(name: str, value: Any) -> None:
    """Raise ValueError unless `value` is an int >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"`{name}` must be an integer >= 0, got {value!r}.")


def choice_check(allowed: tuple) -> Callable[[str, Any], None]:
    """A field check accepting only the values in `allowed`."""
    return lambda name, value: check_choice(name, value, allowed)


#: The checks of single fields, run when a config is built and again whenever a field (or its alias) is assigned.
#: Checks that relate several fields (hidden_size divisible by the heads, …) run when the config is built.
FIELD_CHECKS: dict[str, Callable[[str, Any], None]] = {
    **dict.fromkeys(
        ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
         "max_position_embeddings"), check_positive),
    "activation": choice_check(ACTIVATION_CHOICES),
    "norm_placement": choice_check(NORM_PLACEMENT_CHOICES),
    "position_embedding_type": choice_check(POSITION_EMBEDDING_CHOICES),
    "sinusoidal_layout": choice_check(SINUSOIDAL_LAYOUT_CHOICES),
    "norm_type": choice_check(NORM_TYPE_CHOICES),
    "ffn_type": choice_check(FFN_TYPE_CHOICES),
    "position_offset": check_non_negative,
    "hidden_dropout_prob": check_probability,
    "attention_probs_dropout_prob": check_probability,
    "type_vocab_size": check_non_negative,
    "layer_norm_eps": check_positive_number,
    "initializer_range": lambda name, value: check_positive_number(name, value, allow_zero=True),
    **dict.fromkeys(BOOL_FIELDS, check_bool),
    **dict.fromkeys(TOKEN_ID_FIELDS, check_token_id),
}


def resolve_aliases(config: PreTrainedConfig, kwargs: dict[str, Any]) -> None:
    """Put the constructor's alias arguments (`d_model=`, `num_heads=`, … from `attribute_map`) on the fields they
    stand for, before validation: transformers would set them only after the checks have run on the defaults.
    An alias given together with its field wins, as with transformers' own configs."""
    for alias, name in type(config).attribute_map.items():
        if alias in kwargs:
            setattr(config, name, kwargs.pop(alias))


def check_assignment(config: PreTrainedConfig, checks: dict[str, Callable[[str, Any], None]], key: str,
                     value: Any) -> None:
    """Run the single-field check of `key` (an alias resolves to its field) on an assigned `value`."""
    name = type(config).attribute_map.get(key, key)
    if name in checks:
        try:
            checks[name](name, value)
        except ValueError as error:
            if name == key:
                raise
            raise ValueError(f"{error} (`{key}` is an alias of `{name}`)") from None


@strict
class ScratchConfig(PreTrainedConfig):
    """Shared fields of the Transformer families (a family config overrides the defaults it needs).

    `activation` ∈ relu | gelu | gelu_new | silu; `norm_placement` ∈ pre (GPT-2) | post (the paper, BERT);
    `position_embedding_type` ∈ learned | sinusoidal | rotary; `scale_embedding` multiplies token embeddings by √d_model.
    `position_embedding_type="rotary"` rotates queries and keys instead (Su et al. 2021), with transformers' standard
    `rope_parameters` = {"rope_type": default | linear | llama3 | dynamic | yarn, "rope_theta": base, …} (legacy `rope_theta=` and
    `rope_scaling=` arguments are folded into it, as transformers does for every rotary config).
    The modern decoder (Llama, Mistral, Qwen2) is these options, not another model: `norm_type` ∈ layernorm | rmsnorm;
    `ffn_type` ∈ mlp | gated (SwiGLU with `activation="silu"`); `num_key_value_heads` key/value heads shared by groups
    of query heads (grouped-query attention; None: one per query head); `attention_output_bias` (None: as
    `attention_bias`; Qwen2 has q/k/v biases but none on the output projection). `sliding_window` = W (scratch_gpt
    only): each query sees the last W positions, itself included (Mistral); `layer_types` ∈ full_attention |
    sliding_attention per layer picks which layers do (Qwen2's `max_window_layers`; None: all of them).
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
    sliding_window: int | None = None  # causal self-attention sees only the last W positions (Mistral, Qwen2)
    layer_types: list[str] | None = None  # per layer: "full_attention" | "sliding_attention" (None: all one kind)
    # The transformers class a checkpoint was converted from (`scratchformers.convert.from_hf`, e.g.
    # "MistralForCausalLM"), so converting back gives that architecture again where several fit (Mistral without a
    # window computes exactly as Llama). None: not converted. Read by `convert.to_hf` only; the model ignores it.
    converted_from: str | None = None

    #: Whether this family's causal self-attention takes `sliding_window` (decoder-only GPT; an encoder is not
    #: causal, and an encoder-decoder's cross-attention cache must not be a sliding one).
    supports_sliding_window = False

    def __setattr__(self, key: str, value: Any) -> None:
        """`config.d_model = 130` is checked like `config.hidden_size = 130` (single-field checks)."""
        check_assignment(self, FIELD_CHECKS, key, value)
        super().__setattr__(key, value)

    def __post_init__(self, **kwargs):
        """Reject unknown options and impossible shapes when the config is built, before any model exists; the
        paper's names (aliases) are validated like the fields they stand for."""
        resolve_aliases(self, kwargs)
        for name, check in FIELD_CHECKS.items():
            check(name, getattr(self, name))
        check_divisible(self.hidden_size, self.num_attention_heads)
        self._check_modern_decoder_options()
        super().__post_init__(**kwargs)
        self._check_rope_parameters()
        if self.num_labels < 1:
            raise ValueError(f"`num_labels` must be >= 1, got {self.num_labels}.")

    def _check_modern_decoder_options(self) -> None:
        """Grouped-query attention, the output-projection bias and rotary head sizes: sizes that fit (the choices
        `norm_type`/`ffn_type` are checked with the other single fields, FIELD_CHECKS)."""
        # None = one per query head, kept None rather than stored as a number: a config rebuilt from another's
        # settings with a new head count (`from_dict` of a base config plus overrides) stays consistent.
        if self.num_key_value_heads is not None:
            check_positive("num_key_value_heads", self.num_key_value_heads)
        if self.num_key_value_heads is not None and self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError(
                f"`num_attention_heads`={self.num_attention_heads} must be a multiple of `num_key_value_heads`="
                f"{self.num_key_value_heads} (each key/value head serves an equal group of query heads)."
            )
        self._check_sliding_window()
        if self.attention_output_bias is not None:
            check_bool("attention_output_bias", self.attention_output_bias)
        if self.position_embedding_type == "rotary" and (self.hidden_size // self.num_attention_heads) % 2:
            raise ValueError(
                f"`position_embedding_type`='rotary' rotates pairs of dimensions: the head size hidden_size / "
                f"num_attention_heads = {self.hidden_size // self.num_attention_heads} must be even."
            )

    def _check_sliding_window(self) -> None:
        """`sliding_window` is a positive int or None, only in a family that supports it; `layer_types` names one
        kind per layer and uses "sliding_attention" only with a window."""
        if self.sliding_window is not None:
            check_positive("sliding_window", self.sliding_window)
            if not type(self).supports_sliding_window:
                raise ValueError(
                    f"`sliding_window`={self.sliding_window} is not supported by {self.model_type}: only the causal "
                    "self-attention of scratch_gpt takes a sliding window (use sliding_window=None)."
                )
        if self.layer_types is None:
            return
        if not isinstance(self.layer_types, (list, tuple)) or len(self.layer_types) != self.num_hidden_layers:
            raise ValueError(f"`layer_types` must be a list of {self.num_hidden_layers} entries (one per layer), "
                             f"got {self.layer_types!r}.")
        for kind in self.layer_types:
            check_choice("layer_types[i]", kind, LAYER_TYPE_CHOICES)
        if "sliding_attention" in self.layer_types and self.sliding_window is None:
            raise ValueError("`layer_types` has 'sliding_attention' layers but `sliding_window` is None; give the "
                             "window size W.")

    def attention_layer_types(self) -> list[str]:
        """Each layer's self-attention kind: `layer_types`, or all "sliding_attention" with a `sliding_window` (as
        Mistral), else all "full_attention"."""
        if self.layer_types is not None:
            return list(self.layer_types)
        kind = "full_attention" if self.sliding_window is None else "sliding_attention"
        return [kind] * self.num_hidden_layers

    def _check_rope_parameters(self) -> None:
        """`rope_parameters` names a scaling our rotary block computes, with the numbers that scaling needs."""
        if self.position_embedding_type != "rotary":
            return
        rope = self.rope_parameters or {}
        check_choice("rope_parameters['rope_type']", rope.get("rope_type", "default"), ROPE_TYPE_CHOICES)
        check_positive_number("rope_parameters['rope_theta']", rope.get("rope_theta", 10000.0))
        needed = {"default": (), "linear": ("factor",),
                  "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
                  "dynamic": ("factor",), "yarn": ("factor", "original_max_position_embeddings")}
        for key in needed[rope.get("rope_type", "default")]:
            check_positive_number(f"rope_parameters[{key!r}]", rope.get(key))
        if rope.get("rope_type") == "llama3" and rope["high_freq_factor"] <= rope["low_freq_factor"]:
            raise ValueError(
                f"rope_parameters['high_freq_factor']={rope['high_freq_factor']} must be greater than "
                f"'low_freq_factor'={rope['low_freq_factor']} (llama3 scaling blends the frequencies between them)."
            )
