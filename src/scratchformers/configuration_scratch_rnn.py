"""Configuration of the recurrent seq2seq family: LSTM/GRU encoder-decoders with optional attention.

Sutskever et al. (2014) without attention; Bahdanau et al. (2015) with additive attention; Luong et al. (2015) with
"dot"/"general" scores. Token embeddings have `hidden_size` dimensions and are shared by encoder, decoder and output.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from .checks import check_bool, check_positive, check_positive_number, check_probability, check_token_id
from .configuration_common import check_assignment, choice_check, family_takes, resolve_aliases
from .recurrent import ATTENTION_CHOICES, CELL_CHOICES, LUONG_SCORE_CHOICES

#: Single-field checks, run when the config is built and whenever a field (or its alias) is assigned.
RNN_FIELD_CHECKS = {
    **dict.fromkeys(("vocab_size", "hidden_size", "num_hidden_layers"), check_positive),
    "cell": choice_check(CELL_CHOICES),
    "attention": choice_check(ATTENTION_CHOICES),
    "luong_score": choice_check(LUONG_SCORE_CHOICES),
    "dropout": check_probability,
    "initializer_range": lambda name, value: check_positive_number(name, value, allow_zero=True),
    "embedding_init_std": check_positive_number,
    **dict.fromkeys(("bidirectional_encoder", "use_cache", "tie_word_embeddings"), check_bool),
    **dict.fromkeys(("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"), check_token_id),
}


@strict
class ScratchRNNConfig(PreTrainedConfig):
    """Options of `ScratchRNNForConditionalGeneration`.

    `cell` ∈ lstm | gru; `attention` ∈ None (the decoder sees only the encoder's final state) | bahdanau | luong;
    `luong_score` ∈ dot | general (used when attention="luong"); `bidirectional_encoder` gives each direction
    hidden_size/2 units; `dropout` between layers and on embeddings/outputs; `embedding_init_std` is the N(0, σ)
    init of the shared embedding (small σ stalls a tied LSTM at the unigram plateau).
    Example: `ScratchRNNConfig(vocab_size=8000, hidden_size=256, cell="gru", attention="luong", luong_score="dot")`.
    """

    model_type = "scratch_rnn"
    keys_to_ignore_at_inference = ["cache"]
    attribute_map = {
        "num_layers": "num_hidden_layers",
        "d_model": "hidden_size",
        "hidden_dropout_prob": "dropout",
    }

    vocab_size: int = 8192
    hidden_size: int = 256
    num_hidden_layers: int = 1
    cell: str = "lstm"
    attention: str | None = None
    luong_score: str = "general"
    bidirectional_encoder: bool = False
    dropout: float | int = 0.1
    initializer_range: float = 0.08
    embedding_init_std: float = 1.0
    use_cache: bool = True
    tie_word_embeddings: bool = True
    is_encoder_decoder: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    decoder_start_token_id: int | None = None

    def __setattr__(self, key: str, value: Any) -> None:
        """`config.num_layers = 0` is checked like `config.num_hidden_layers = 0` (single-field checks); an option of
        the Transformer families only (`config.sliding_window = 2`, `num_key_value_heads`, …) raises ValueError."""
        name = type(self).attribute_map.get(key, key)
        if not family_takes(self, name, value):
            self.__dict__.pop(name, None)  # None: the option is off, and this config does not carry it
            return
        check_assignment(self, RNN_FIELD_CHECKS, key, value)
        super().__setattr__(key, value)

    def __post_init__(self, **kwargs):
        """Reject unknown cells/attention kinds and impossible sizes when the config is built; the aliases
        (`num_layers`, `d_model`, `hidden_dropout_prob`) are validated like the fields they stand for."""
        resolve_aliases(self, kwargs)
        for name, check in RNN_FIELD_CHECKS.items():
            check(name, getattr(self, name))
        if self.pad_token_id is not None and self.pad_token_id >= self.vocab_size:  # it is the embedding's padding_idx
            raise ValueError(f"`pad_token_id`={self.pad_token_id} is outside the vocabulary [0, {self.vocab_size - 1}].")
        if self.bidirectional_encoder and self.hidden_size % 2:
            raise ValueError(
                f"`hidden_size`={self.hidden_size} must be even with `bidirectional_encoder=True` "
                "(each direction gets hidden_size / 2 units)."
            )
        if self.decoder_start_token_id is None:
            self.decoder_start_token_id = self.bos_token_id if self.bos_token_id is not None else self.pad_token_id
        super().__post_init__(**kwargs)
