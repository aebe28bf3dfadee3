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
#: What transformers fills in for a rotary config given no `rope_parameters` (and what every earlier version of ours
#: saved in config.json, rotary or not).
DEFAULT_ROPE_PARAMETERS = {"rope_type": "default", "rope_theta": 10000.0}

TRANSFORMER_FAMILIES = ("scratch_gpt", "scratch_bert", "scratch_transformer")

#: Options that only some families' models apply: option → (the model types whose config carries it, what it is).
#: A config of any other family does not carry the option at all — as transformers' BERT and BART configs carry no
#: `sliding_window`, so tools probing `hasattr(config, "sliding_window")` see a model without windows. Setting it
#: there, when the config is built or afterwards, raises a ValueError; None (= unused) is accepted and not stored.
#: (`rope_parameters` is carried only with `position_embedding_type="rotary"`; see `ScratchConfig`.)
FAMILY_OPTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "sliding_window": (("scratch_gpt",), "a window on causal self-attention, each query seeing the last W positions"),
    "layer_types": (("scratch_gpt",), "which layers' self-attention uses the sliding window"),
    "add_pooling_layer": (("scratch_bert",), "the [CLS] pooler of the BERT body"),
    "classifier_dropout": (("scratch_bert",), "the dropout before BERT's classification heads"),
    "encoder_layers": (("scratch_transformer",), "the encoder's layer count; one stack has `num_hidden_layers`"),
    "decoder_layers": (("scratch_transformer",), "the decoder's layer count; one stack has `num_hidden_layers`"),
    "final_logits_bias": (("scratch_transformer",), "BART/Marian's bias on the output logits"),
    "decoder_start_token_id": (("scratch_transformer", "scratch_rnn"), "the first decoder input of an encoder-decoder"),
    "rope_parameters": (TRANSFORMER_FAMILIES, "rotary position settings, with position_embedding_type='rotary'"),
    "num_key_value_heads": (TRANSFORMER_FAMILIES, "the key/value head count of multi-head attention"),
    "cell": (("scratch_rnn",), "the recurrent cell, lstm | gru"),
    "attention": (("scratch_rnn",), "the recurrent decoder's attention over the encoder states"),
    "luong_score": (("scratch_rnn",), "the Luong attention score"),
    "bidirectional_encoder": (("scratch_rnn",), "a bidirectional recurrent encoder"),
    "embedding_init_std": (("scratch_rnn",), "the recurrent family's embedding init"),
}


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


def family_takes(config: PreTrainedConfig, name: str, value: Any) -> bool:
    """Whether `config`'s family takes the option `name` (a field name, aliases resolved). An option of other
    families only (`FAMILY_OPTIONS`) is refused: ValueError naming the option, this family and the ones that take
    it; with `value` None (not used) the answer is False and the caller stores nothing."""
    families, meaning = FAMILY_OPTIONS.get(name, ((type(config).model_type,), ""))
    if type(config).model_type in families:
        return True
    if value is None:
        return False
    raise ValueError(
        f"`{name}`={value!r} is not an option of {type(config).model_type} (taken only by {', '.join(families)}: "
        f"{meaning}). Leave it unset (None): a {type(config).model_type} config carries no `{name}`."
    )


def optional_check(check: Callable[[str, Any], None]) -> Callable[[str, Any], None]:
    """`check`, with None also allowed (an option that is off)."""
    return lambda name, value: None if value is None else check(name, value)


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
    `rope_scaling=` arguments are folded into it, as transformers does for every rotary config). Only a rotary config
    carries `rope_parameters`: tools read `hasattr(config, "rope_parameters")` as "this model uses RoPE".
    The modern decoder (Llama, Mistral, Qwen2) is these options, not another model: `norm_type` ∈ layernorm | rmsnorm;
    `ffn_type` ∈ mlp | gated (SwiGLU with `activation="silu"`); `num_key_value_heads` key/value heads shared by groups
    of query heads (grouped-query attention; None: one per query head, and it then reads as `num_attention_heads`);
    `attention_output_bias` (None: as `attention_bias`; Qwen2 has q/k/v biases but none on the output projection).
    The sliding window (`sliding_window`, `layer_types`) is an option of scratch_gpt only (`FAMILY_OPTIONS`).
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
    # (`rope_parameters` is no field: a config carries it only with rotary positions, see `__post_init__`)
    # The transformers class a checkpoint was converted from (`scratchformers.convert.from_hf`, e.g.
    # "MistralForCausalLM"), so converting back gives that architecture again where several fit (Mistral without a
    # window computes exactly as Llama). None: not converted. Read by `convert.to_hf` only; the model ignores it.
    converted_from: str | None = None

    #: The single-field checks of this family (a family with more fields extends them).
    field_checks = FIELD_CHECKS

    def __getattribute__(self, key: str) -> Any:
        """`num_key_value_heads` reads as the real key/value head count: unset (None) means one per query head, so it
        reads as `num_attention_heads`. It stays None in `__dict__` and in config.json, so a config rebuilt from these
        settings with another head count keeps one key/value head per query head."""
        value = super().__getattribute__(key)
        if key == "num_key_value_heads" and value is None:
            return super().__getattribute__("num_attention_heads")
        return value

    def __setattr__(self, key: str, value: Any) -> None:
        """Assignments are checked as construction is: `config.d_model = 130` like `config.hidden_size = 130`
        (single-field checks); an option of another family (`config.sliding_window = 2` on scratch_bert) raises,
        and so does `rope_parameters` without rotary positions. Switching `position_embedding_type` to or from
        "rotary" adds or removes `rope_parameters` (the defaults)."""
        name = type(self).attribute_map.get(key, key)
        if not family_takes(self, name, value) or (name == "rope_parameters" and not self._rotary_takes(value)):
            self.__dict__.pop(name, None)  # None: the option is off, and a config without it does not carry it
            return
        check_assignment(self, type(self).field_checks, key, value)
        super().__setattr__(key, value)
        if name == "position_embedding_type":
            if value != "rotary":
                self.__dict__.pop("rope_parameters", None)
            elif "rope_parameters" not in self.__dict__:
                super().__setattr__("rope_parameters", dict(DEFAULT_ROPE_PARAMETERS))

    def _rotary_takes(self, rope_parameters: Any) -> bool:
        """Whether `rope_parameters` can be stored: only with rotary positions; otherwise None is dropped and any
        other value raises ValueError."""
        if self.position_embedding_type == "rotary":
            return True
        if rope_parameters is None:
            return False
        raise ValueError(
            f"`rope_parameters`={rope_parameters!r} needs rotary positions, but this {type(self).model_type} config "
            f"has position_embedding_type={self.position_embedding_type!r}; set position_embedding_type='rotary' "
            "first, or leave rope_parameters out."
        )

    def __post_init__(self, **kwargs):
        """Reject unknown options and impossible shapes when the config is built, before any model exists; the
        paper's names (aliases) are validated like the fields they stand for."""
        resolve_aliases(self, kwargs)
        for name, check in type(self).field_checks.items():
            check(name, getattr(self, name))
        check_divisible(self.hidden_size, self.num_attention_heads)
        self._check_modern_decoder_options()
        self._take_rope_arguments(kwargs)
        super().__post_init__(**kwargs)
        self._check_rope_parameters()
        if self.num_labels < 1:
            raise ValueError(f"`num_labels` must be >= 1, got {self.num_labels}.")

    def _check_modern_decoder_options(self) -> None:
        """Grouped-query attention, the output-projection bias and rotary head sizes: sizes that fit (the choices
        `norm_type`/`ffn_type` are checked with the other single fields, FIELD_CHECKS)."""
        # (None = one per query head: stored as None, read as num_attention_heads, see `__getattribute__`)
        check_positive("num_key_value_heads", self.num_key_value_heads)
        if self.num_attention_heads % self.num_key_value_heads != 0:
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

    def _take_rope_arguments(self, kwargs: dict) -> None:
        """Rotary positions: put the given `rope_parameters` (None: transformers' defaults) on the config before
        transformers standardises it, folding the legacy `rope_theta=`/`rope_scaling=` arguments in. Other positions
        carry no `rope_parameters`: the value every earlier version saved (None or the defaults) is dropped, anything
        else raises ValueError, as it would change nothing."""
        rope = kwargs.pop("rope_parameters", None)
        if self.position_embedding_type == "rotary":
            self.rope_parameters = dict(rope) if rope is not None else None  # a copy: standardising fills it in
            return
        unused = {name: kwargs.pop(name) for name in ("rope_scaling", "rope_theta") if name in kwargs}
        unused = {name: value for name, value in unused.items() if value is not None}
        if rope not in (None, {}, DEFAULT_ROPE_PARAMETERS):
            unused["rope_parameters"] = rope
        if unused:
            given = ", ".join(f"`{name}`={value!r}" for name, value in unused.items())
            raise ValueError(
                f"{given} needs rotary positions, but this {type(self).model_type} config has "
                f"position_embedding_type={self.position_embedding_type!r}; set position_embedding_type='rotary' or "
                "leave the rotary settings out."
            )

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
