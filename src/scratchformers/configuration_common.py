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
POSITION_EMBEDDING_CHOICES = ("learned", "sinusoidal")
SINUSOIDAL_LAYOUT_CHOICES = ("interleaved", "split")


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
        super().__post_init__(**kwargs)
        if self.num_labels < 1:
            raise ValueError(f"`num_labels` must be >= 1, got {self.num_labels}.")
