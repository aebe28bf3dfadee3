"""Weight converters between Hugging Face's native models and ours: `from_hf(hf_model)` and `to_hf(our_model)`.

Every converter is two explicit tables, in the spirit of nanoGPT's `GPT.from_pretrained`:

1. a **config translation** that maps each HF option to ours (and back) and refuses, with one ValueError listing
   everything that does not fit, any option our blocks cannot reproduce (e.g. GPT-2's `scale_attn_by_inverse_layer_idx`);
2. a **weight map**: a list of `Link(ours, theirs, transpose)` naming, for every tensor of our model, the HF tensor(s)
   it comes from. Several HF tensors are concatenated along dim 0 on our side (separate Q, K, V → our fused
   `qkv_proj`) and split again on the way back; `transpose` handles GPT-2's `Conv1D`, which stores (in, out).

The copy checks that every tensor on both sides is accounted for and that every shape matches, and reports all
problems at once. Supported pairs: GPT-2 (`GPT2LMHeadModel`, `GPT2Model`, `GPT2ForSequenceClassification`) ↔
scratch_gpt; BERT (`BertModel`, `BertForMaskedLM`, `BertForSequenceClassification`) ↔ scratch_bert; BART
(`BartForConditionalGeneration`, `BartModel`) and Marian (`MarianMTModel`, `MarianModel`) ↔ scratch_transformer.
Command line: `python -m scratchformers.convert <checkpoint dir> <out dir>` (direction auto-detected).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from torch import nn
from transformers import PreTrainedModel

from .configuration_common import DEFAULT_ROPE_PARAMETERS
from .configuration_scratch_bert import ScratchBertConfig
from .configuration_scratch_gpt import ScratchGPTConfig
from .configuration_scratch_transformer import ScratchTransformerConfig
from .embeddings import sinusoidal_position_encoding
from .folders import keeps_earlier_run, replace_later
from .modeling_scratch_bert import (
    ScratchBertForMaskedLM,
    ScratchBertForQuestionAnswering,
    ScratchBertForSequenceClassification,
    ScratchBertForTokenClassification,
    ScratchBertModel,
)
from .modeling_scratch_gpt import ScratchGPTForCausalLM, ScratchGPTForSequenceClassification, ScratchGPTModel
from .modeling_scratch_transformer import ScratchTransformerForConditionalGeneration, ScratchTransformerModel

__all__ = ["Link", "Table", "LLAMA_TABLE", "from_hf", "to_hf", "supported_conversions", "main"]


@dataclass(frozen=True)
class Link:
    """One tensor of ours ← one or more HF tensors (concatenated along dim 0 on our side, each transposed first if
    `transpose`). Keys are relative to the body/head prefixes of the pair being converted."""

    ours: str
    theirs: tuple[str, ...]
    transpose: bool = False


def _links(ours: str, theirs: str | Sequence[str], transpose: bool = False) -> Link:
    return Link(ours, (theirs,) if isinstance(theirs, str) else tuple(theirs), transpose)


class _Problems:
    """Collects everything that does not fit, so one ValueError lists it all."""

    def __init__(self, what: str):
        self.what = what
        self.items: list[str] = []

    def add(self, item: str) -> None:
        self.items.append(item)

    def raise_if_any(self) -> None:
        if self.items:
            listing = "\n  - ".join(self.items)
            raise ValueError(f"Cannot convert {self.what}; {len(self.items)} thing(s) do not fit:\n  - {listing}")


# ----------------------------------------------------------------------------------------------------------------
# GPT-2 ↔ scratch_gpt
# ----------------------------------------------------------------------------------------------------------------

# HF activation names → ours. "gelu_pytorch_tanh" is the same tanh approximation as "gelu_new", fused by torch.
_HF_ACTIVATIONS = {"gelu_new": "gelu_new", "gelu_pytorch_tanh": "gelu_new", "gelu": "gelu", "relu": "relu",
                   "silu": "silu", "swish": "silu"}
_SPECIAL_TOKENS = ("pad_token_id", "bos_token_id", "eos_token_id")


def _activation_from_hf(name: str, problems: _Problems, option: str) -> str:
    if name not in _HF_ACTIVATIONS:
        problems.add(f"`{option}`={name!r} is not supported; allowed values are {tuple(_HF_ACTIVATIONS)}")
        return "gelu_new"
    return _HF_ACTIVATIONS[name]


def _special_tokens(config) -> dict:
    return {name: getattr(config, name, None) for name in _SPECIAL_TOKENS}


def _classification_fields(config) -> dict:
    """Label names and problem type travel with the config in both directions."""
    return {"id2label": dict(config.id2label), "label2id": dict(config.label2id), "problem_type": config.problem_type}


def gpt2_config_from_hf(hf_model: PreTrainedModel) -> ScratchGPTConfig:
    """GPT2Config → ScratchGPTConfig: pre-LN, learned positions, biases everywhere, activation as given."""
    hf_config = hf_model.config
    problems = _Problems(f"GPT-2 config (model_type={hf_config.model_type!r})")
    if not hf_config.scale_attn_weights:
        problems.add("`scale_attn_weights`=False (unscaled QKᵀ): our attention always divides by √d_k")
    if hf_config.scale_attn_by_inverse_layer_idx:
        problems.add("`scale_attn_by_inverse_layer_idx`=True: our attention uses one scale 1/√d_k in every layer")
    if getattr(hf_config, "add_cross_attention", False):
        problems.add("`add_cross_attention`=True: scratch_gpt is decoder-only (use scratch_transformer)")
    activation = _activation_from_hf(hf_config.activation_function, problems, "activation_function")
    problems.raise_if_any()
    return ScratchGPTConfig(
        vocab_size=hf_config.vocab_size,
        hidden_size=hf_config.n_embd,
        num_hidden_layers=hf_config.n_layer,
        num_attention_heads=hf_config.n_head,
        intermediate_size=hf_config.n_inner if hf_config.n_inner is not None else 4 * hf_config.n_embd,
        max_position_embeddings=hf_config.n_positions,
        # One dropout rate covers embeddings and residuals in our blocks; HF's embd_pdrop is usually equal.
        hidden_dropout_prob=hf_config.resid_pdrop,
        attention_probs_dropout_prob=hf_config.attn_pdrop,
        layer_norm_eps=hf_config.layer_norm_epsilon,
        initializer_range=hf_config.initializer_range,
        activation=activation,
        norm_placement="pre",
        position_embedding_type="learned",
        tie_word_embeddings=hf_config.tie_word_embeddings,
        use_cache=hf_config.use_cache,
        **_classification_fields(hf_config),
        **_special_tokens(hf_config),
    )


def _require(config, expected: dict, target: str, problems: _Problems) -> None:
    """Add a problem for every option of ours that `target` can only express with the value in `expected`."""
    for name, value in expected.items():
        if getattr(config, name) != value:
            problems.add(f"`{name}`={getattr(config, name)!r}: {target} supports only {value!r}")


def _activation_to_hf(config, allowed: tuple[str, ...], target: str, problems: _Problems) -> str:
    if config.activation not in allowed:
        problems.add(f"`activation`={config.activation!r}: {target} supports {allowed}")
    return config.activation  # relu | gelu | gelu_new | silu are HF names too


def gpt2_config_to_hf(config) -> transformers.GPT2Config:
    """ScratchGPTConfig → GPT2Config; refuses options GPT-2 cannot express (post-LN, sinusoidal positions, …)."""
    problems = _Problems(f"scratch_gpt config to GPT-2 (model_type={config.model_type!r})")
    expected = {
        "norm_placement": "pre",
        "position_embedding_type": "learned",
        "scale_embedding": False,
        "embedding_layer_norm": False,
        "type_vocab_size": 0,
        "attention_bias": True,
        "ffn_bias": True,
    }
    _require(config, expected, "GPT-2", problems)
    problems.raise_if_any()
    return transformers.GPT2Config(
        vocab_size=config.vocab_size,
        n_embd=config.hidden_size,
        n_layer=config.num_hidden_layers,
        n_head=config.num_attention_heads,
        n_inner=config.intermediate_size,
        n_positions=config.max_position_embeddings,
        resid_pdrop=config.hidden_dropout_prob,
        embd_pdrop=config.hidden_dropout_prob,
        attn_pdrop=config.attention_probs_dropout_prob,
        layer_norm_epsilon=config.layer_norm_eps,
        initializer_range=config.initializer_range,
        activation_function=config.activation,  # relu | gelu | gelu_new | silu are HF names too
        tie_word_embeddings=config.tie_word_embeddings,
        use_cache=config.use_cache,
        **_classification_fields(config),
        **_special_tokens(config),
    )


def gpt2_links(config) -> list[Link]:
    """scratch_gpt body ← GPT-2 body (`transformer.`): Conv1D weights are (in, out), so they are transposed."""
    links = [
        _links("decoder.embeddings.tokens.weight", "wte.weight"),
        _links("decoder.embeddings.positions.weight", "wpe.weight"),
        _links("decoder.final_norm.weight", "ln_f.weight"),
        _links("decoder.final_norm.bias", "ln_f.bias"),
    ]
    for i in range(config.num_hidden_layers):
        ours, theirs = f"decoder.layers.{i}.", f"h.{i}."
        for a, b, transpose in (
            ("self_attn_residual.norm", "ln_1", False),
            ("self_attn.qkv_proj", "attn.c_attn", True),  # [W_q W_k W_v]: (C, 3C) in HF, (3C, C) ours
            ("self_attn.out_proj", "attn.c_proj", True),
            ("ffn_residual.norm", "ln_2", False),
            ("ffn.fc_in", "mlp.c_fc", True),
            ("ffn.fc_out", "mlp.c_proj", True),
        ):
            links.append(_links(f"{ours}{a}.weight", f"{theirs}{b}.weight", transpose))
            links.append(_links(f"{ours}{a}.bias", f"{theirs}{b}.bias"))
    return links


# ----------------------------------------------------------------------------------------------------------------
# BERT ↔ scratch_bert
# ----------------------------------------------------------------------------------------------------------------


def _bert_has_pooler(hf_model: PreTrainedModel) -> bool:
    body = getattr(hf_model, "bert", hf_model)
    return getattr(body, "pooler", None) is not None


def bert_config_from_hf(hf_model: PreTrainedModel) -> ScratchBertConfig:
    """BertConfig → ScratchBertConfig: post-LN, embedding LayerNorm, learned positions, token types."""
    hf_config = hf_model.config
    problems = _Problems(f"BERT config (model_type={hf_config.model_type!r})")
    if getattr(hf_config, "is_decoder", False) or getattr(hf_config, "add_cross_attention", False):
        problems.add("`is_decoder`/`add_cross_attention`=True: scratch_bert is a bidirectional encoder")
    if getattr(hf_config, "position_embedding_type", "absolute") != "absolute":
        problems.add(f"`position_embedding_type`={hf_config.position_embedding_type!r}: only 'absolute' is supported")
    activation = _activation_from_hf(hf_config.hidden_act, problems, "hidden_act")
    problems.raise_if_any()
    return ScratchBertConfig(
        vocab_size=hf_config.vocab_size,
        hidden_size=hf_config.hidden_size,
        num_hidden_layers=hf_config.num_hidden_layers,
        num_attention_heads=hf_config.num_attention_heads,
        intermediate_size=hf_config.intermediate_size,
        max_position_embeddings=hf_config.max_position_embeddings,
        hidden_dropout_prob=hf_config.hidden_dropout_prob,
        attention_probs_dropout_prob=hf_config.attention_probs_dropout_prob,
        layer_norm_eps=hf_config.layer_norm_eps,
        initializer_range=hf_config.initializer_range,
        activation=activation,
        type_vocab_size=hf_config.type_vocab_size,
        add_pooling_layer=_bert_has_pooler(hf_model),
        classifier_dropout=hf_config.classifier_dropout,
        tie_word_embeddings=hf_config.tie_word_embeddings,
        **_classification_fields(hf_config),
        **_special_tokens(hf_config),
    )


def bert_config_to_hf(config) -> transformers.BertConfig:
    """ScratchBertConfig → BertConfig; refuses options BERT cannot express (pre-LN, sinusoidal positions, …)."""
    problems = _Problems(f"scratch_bert config to BERT (model_type={config.model_type!r})")
    expected = {
        "norm_placement": "post",
        "position_embedding_type": "learned",
        "scale_embedding": False,
        "embedding_layer_norm": True,
        "attention_bias": True,
        "ffn_bias": True,
    }
    _require(config, expected, "BERT", problems)
    if config.type_vocab_size < 1:
        problems.add("`type_vocab_size`=0: BERT always has token-type embeddings (use >= 1)")
    activation = _activation_to_hf(config, ("gelu", "gelu_new", "relu", "silu"), "BERT", problems)
    problems.raise_if_any()
    return transformers.BertConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings,
        hidden_dropout_prob=config.hidden_dropout_prob,
        attention_probs_dropout_prob=config.attention_probs_dropout_prob,
        layer_norm_eps=config.layer_norm_eps,
        initializer_range=config.initializer_range,
        hidden_act=activation,
        type_vocab_size=config.type_vocab_size,
        classifier_dropout=config.classifier_dropout,
        tie_word_embeddings=config.tie_word_embeddings,
        **_classification_fields(config),
        **_special_tokens(config),
    )


def _layer_links(ours: str, theirs: str, pairs) -> list[Link]:
    """weight and bias links for each (our module, HF module(s)) pair; several HF modules are fused on our side."""
    links = []
    for a, b in pairs:
        b = (b,) if isinstance(b, str) else b
        links.append(_links(f"{ours}{a}.weight", [f"{theirs}{m}.weight" for m in b]))
        links.append(_links(f"{ours}{a}.bias", [f"{theirs}{m}.bias" for m in b]))
    return links


def bert_links(config) -> list[Link]:
    """scratch_bert body ← BERT body: separate query/key/value are concatenated into our fused `qkv_proj`."""
    links = [
        _links("encoder.embeddings.tokens.weight", "embeddings.word_embeddings.weight"),
        _links("encoder.embeddings.positions.weight", "embeddings.position_embeddings.weight"),
        _links("encoder.embeddings.token_types.weight", "embeddings.token_type_embeddings.weight"),
        *_layer_links("encoder.embeddings.", "embeddings.", [("norm", "LayerNorm")]),
    ]
    for i in range(config.num_hidden_layers):
        links += _layer_links(f"encoder.layers.{i}.", f"encoder.layer.{i}.", [
            ("self_attn.qkv_proj", ("attention.self.query", "attention.self.key", "attention.self.value")),
            ("self_attn.out_proj", "attention.output.dense"),
            ("self_attn_residual.norm", "attention.output.LayerNorm"),
            ("ffn.fc_in", "intermediate.dense"),
            ("ffn.fc_out", "output.dense"),
            ("ffn_residual.norm", "output.LayerNorm"),
        ])
    if config.add_pooling_layer:
        links += _layer_links("", "", [("pooler.dense", "pooler.dense")])
    return links


_BERT_MLM_HEAD = (
    *_layer_links("lm_head.", "cls.predictions.", [("dense", "transform.dense"), ("norm", "transform.LayerNorm")]),
    _links("lm_head.decoder.weight", "cls.predictions.decoder.weight"),
    # The output bias HF's forward adds is `decoder.bias`; `cls.predictions.bias` is the same tensor when tied.
    _links("lm_head.decoder.bias", "cls.predictions.decoder.bias"),
)
_CLASSIFIER = tuple(_layer_links("", "", [("classifier", "classifier")]))


# ----------------------------------------------------------------------------------------------------------------
# BART / Marian ↔ scratch_transformer
# ----------------------------------------------------------------------------------------------------------------

_SEQ2SEQ_TOKENS = (*_SPECIAL_TOKENS, "decoder_start_token_id")


def _seq2seq_config_from_hf(hf_config, problems: _Problems, name: str) -> dict:
    """The options BART and Marian share (post-LN encoder-decoder, one width and head count) → our field names.

    Training-only options with no counterpart in our blocks are dropped: `activation_dropout` (dropout inside the
    FFN), `encoder_layerdrop`/`decoder_layerdrop`; they do not change inference.
    """
    for what in ("ffn_dim", "attention_heads"):
        enc, dec = getattr(hf_config, f"encoder_{what}"), getattr(hf_config, f"decoder_{what}")
        if enc != dec:
            problems.add(f"`encoder_{what}`={enc} != `decoder_{what}`={dec}: scratch_transformer uses one value for "
                         f"both stacks")
    if getattr(hf_config, "is_decoder", False):
        problems.add(f"`is_decoder`=True ({name} as a decoder-only model): only the encoder-decoder converts")
    activation = _activation_from_hf(hf_config.activation_function, problems, "activation_function")
    return dict(
        vocab_size=hf_config.vocab_size,
        hidden_size=hf_config.d_model,
        encoder_layers=hf_config.encoder_layers,
        decoder_layers=hf_config.decoder_layers,
        num_attention_heads=hf_config.encoder_attention_heads,
        intermediate_size=hf_config.encoder_ffn_dim,
        max_position_embeddings=hf_config.max_position_embeddings,
        hidden_dropout_prob=hf_config.dropout,
        attention_probs_dropout_prob=hf_config.attention_dropout,
        layer_norm_eps=1e-5,  # BART and Marian use nn.LayerNorm's default eps
        initializer_range=hf_config.init_std,
        activation=activation,
        norm_placement="post",
        scale_embedding=bool(hf_config.scale_embedding),
        tie_word_embeddings=hf_config.tie_word_embeddings,
        use_cache=hf_config.use_cache,
        **{name: getattr(hf_config, name, None) for name in _SEQ2SEQ_TOKENS},
    )


def _seq2seq_config_to_hf(config, expected: dict, target: str, problems: _Problems) -> dict:
    """Our scratch_transformer fields → the BartConfig/MarianConfig arguments both share; refuses what they lack."""
    _require(config, {"norm_placement": "post", "type_vocab_size": 0, "attention_bias": True, "ffn_bias": True,
                      "layer_norm_eps": 1e-5, **expected}, target, problems)
    activation = _activation_to_hf(config, ("gelu", "gelu_new", "relu", "silu"), target, problems)
    return dict(
        vocab_size=config.vocab_size,
        d_model=config.hidden_size,
        encoder_layers=config.encoder_layers,
        decoder_layers=config.decoder_layers,
        encoder_attention_heads=config.num_attention_heads,
        decoder_attention_heads=config.num_attention_heads,
        encoder_ffn_dim=config.intermediate_size,
        decoder_ffn_dim=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings,
        dropout=config.hidden_dropout_prob,
        attention_dropout=config.attention_probs_dropout_prob,
        activation_dropout=0.0,
        init_std=config.initializer_range,
        activation_function=activation,
        scale_embedding=config.scale_embedding,
        tie_word_embeddings=config.tie_word_embeddings,
        use_cache=config.use_cache,
        forced_eos_token_id=None,  # a generation setting: travels in the generation config copied by to_hf
        **{name: getattr(config, name) for name in _SEQ2SEQ_TOKENS},
    )


def bart_config_from_hf(hf_model: PreTrainedModel) -> ScratchTransformerConfig:
    """BartConfig → ScratchTransformerConfig: post-LN, learned positions with offset 2 (separate encoder and decoder
    tables), LayerNorm on the embeddings, one token matrix shared by encoder, decoder and output layer (when tied),
    `final_logits_bias` on the generation head."""
    hf_config = hf_model.config
    problems = _Problems(f"BART config (model_type={hf_config.model_type!r})")
    fields = _seq2seq_config_from_hf(hf_config, problems, "BART")
    problems.raise_if_any()
    return ScratchTransformerConfig(
        **fields,
        position_embedding_type="learned",
        position_offset=2,
        embedding_layer_norm=True,
        final_logits_bias=isinstance(hf_model, transformers.BartForConditionalGeneration),
    )


def bart_config_to_hf(config) -> transformers.BartConfig:
    """ScratchTransformerConfig → BartConfig; refuses what BART cannot express (pre-LN, sinusoidal positions, …)."""
    problems = _Problems(f"scratch_transformer config to BART (model_type={config.model_type!r})")
    expected = {"position_embedding_type": "learned", "position_offset": 2, "embedding_layer_norm": True}
    fields = _seq2seq_config_to_hf(config, expected, "BART", problems)
    problems.raise_if_any()
    return transformers.BartConfig(**fields)


def _marian_positions_match(hf_model: PreTrainedModel, problems: _Problems) -> None:
    """Marian stores its fixed sinusoidal tables; ours computes them: check the stored ones are the formula."""
    for side in ("encoder", "decoder"):
        table = (hf_model.get_encoder() if side == "encoder" else hf_model.get_decoder()).embed_positions.weight
        expected = sinusoidal_position_encoding(torch.arange(table.shape[0]), table.shape[1], layout="split")
        if not torch.allclose(table.detach().float().cpu(), expected, atol=1e-4):
            problems.add(f"{side}.embed_positions.weight is not the sin|cos table our sinusoidal positions compute")


def marian_config_from_hf(hf_model: PreTrainedModel) -> ScratchTransformerConfig:
    """MarianConfig → ScratchTransformerConfig: post-LN, fixed sinusoidal positions laid out [sin | cos] (no offset),
    no LayerNorm on the embeddings, one shared vocabulary, `final_logits_bias` on the generation head."""
    hf_config = hf_model.config
    problems = _Problems(f"Marian config (model_type={hf_config.model_type!r})")
    fields = _seq2seq_config_from_hf(hf_config, problems, "Marian")
    if not hf_config.share_encoder_decoder_embeddings:
        problems.add("`share_encoder_decoder_embeddings`=False (separate source and target vocabularies): "
                     "scratch_transformer has one vocabulary")
    if hf_config.decoder_vocab_size not in (None, hf_config.vocab_size):
        problems.add(f"`decoder_vocab_size`={hf_config.decoder_vocab_size} != `vocab_size`={hf_config.vocab_size}")
    _marian_positions_match(hf_model, problems)
    problems.raise_if_any()
    return ScratchTransformerConfig(
        **fields,
        position_embedding_type="sinusoidal",
        sinusoidal_layout="split",
        final_logits_bias=isinstance(hf_model, transformers.MarianMTModel),
    )


def marian_config_to_hf(config) -> transformers.MarianConfig:
    """ScratchTransformerConfig → MarianConfig; refuses what Marian cannot express (learned positions, the
    interleaved sin/cos layout, a LayerNorm on the embeddings, …)."""
    problems = _Problems(f"scratch_transformer config to Marian (model_type={config.model_type!r})")
    expected = {"position_embedding_type": "sinusoidal", "sinusoidal_layout": "split", "position_offset": 0,
                "embedding_layer_norm": False}
    fields = _seq2seq_config_to_hf(config, expected, "Marian", problems)
    problems.raise_if_any()
    return transformers.MarianConfig(**fields, decoder_vocab_size=config.vocab_size,
                                     share_encoder_decoder_embeddings=True)


def _seq2seq_layer_links(config) -> list[Link]:
    """Encoder and decoder layers (BART and Marian name them alike): separate q/k/v → our fused `qkv_proj`;
    cross-attention k/v → our fused `kv_proj`."""
    links = []
    self_attn = [
        ("self_attn.qkv_proj", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")),
        ("self_attn.out_proj", "self_attn.out_proj"),
        ("self_attn_residual.norm", "self_attn_layer_norm"),
        ("ffn.fc_in", "fc1"),
        ("ffn.fc_out", "fc2"),
        ("ffn_residual.norm", "final_layer_norm"),
    ]
    cross_attn = [
        ("cross_attn.q_proj", "encoder_attn.q_proj"),
        ("cross_attn.kv_proj", ("encoder_attn.k_proj", "encoder_attn.v_proj")),
        ("cross_attn.out_proj", "encoder_attn.out_proj"),
        ("cross_attn_residual.norm", "encoder_attn_layer_norm"),
    ]
    for i in range(config.encoder_layers):
        links += _layer_links(f"encoder.layers.{i}.", f"encoder.layers.{i}.", self_attn)
    for i in range(config.decoder_layers):
        links += _layer_links(f"decoder.layers.{i}.", f"decoder.layers.{i}.", self_attn + cross_attn)
    return links


def _seq2seq_token_links(config) -> list[Link]:
    """Token embeddings. Tied: HF's `shared` is the source and encoder/decoder/lm_head are ties of it on both sides.
    Untied: each stack reads its own `embed_tokens` (HF's `shared` is then unused; see `_seq2seq_hf_ignored`)."""
    encoder_source = "shared.weight" if config.tie_word_embeddings else "encoder.embed_tokens.weight"
    return [
        _links("encoder.embeddings.tokens.weight", encoder_source),
        _links("decoder.embeddings.tokens.weight", "decoder.embed_tokens.weight"),
    ]


def bart_links(config) -> list[Link]:
    """scratch_transformer body ← BART body: tokens, one learned position table per stack, embedding LayerNorms."""
    return [
        *_seq2seq_token_links(config),
        _links("encoder.embeddings.positions.weight", "encoder.embed_positions.weight"),
        _links("decoder.embeddings.positions.weight", "decoder.embed_positions.weight"),
        *_layer_links("encoder.embeddings.", "encoder.", [("norm", "layernorm_embedding")]),
        *_layer_links("decoder.embeddings.", "decoder.", [("norm", "layernorm_embedding")]),
        *_seq2seq_layer_links(config),
    ]


def marian_links(config) -> list[Link]:
    """scratch_transformer body ← Marian body: tokens and layers; the sinusoidal tables are computed on our side."""
    return [*_seq2seq_token_links(config), *_seq2seq_layer_links(config)]


def _seq2seq_hf_ignored(prefix: str, static_positions: bool) -> Callable[[object], set[str]]:
    """HF tensors with no counterpart that no forward needs from us: the unused `shared` of an untied model, Marian's
    fixed sinusoidal tables, and `final_logits_bias` when our head has none (it then stays zero, which is exact)."""

    def ignored(config) -> set[str]:
        keys = set() if config.tie_word_embeddings else {f"{prefix}shared.weight"}
        if static_positions:
            keys |= {f"{prefix}encoder.embed_positions.weight", f"{prefix}decoder.embed_positions.weight"}
        if not config.final_logits_bias:
            keys.add("final_logits_bias")
        return keys

    return ignored


def _seq2seq_head_links(config) -> tuple[Link, ...]:
    """Output layer (usually tied to the token matrix) and, when our config has one, the final logits bias."""
    links = [_links("lm_head.weight", "lm_head.weight")]
    if config.final_logits_bias:
        links.append(_links("final_logits_bias", "final_logits_bias"))
    return tuple(links)


# ----------------------------------------------------------------------------------------------------------------
# The modern decoder: Llama, Qwen2, Mistral ↔ scratch_gpt (rotary, RMSNorm, SwiGLU, grouped-query attention)
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """One architecture as data: `top` and `layer` rows (ours, theirs, when) name each tensor of ours and the HF
    tensor(s) it is made of (several are concatenated along dim 0 on our side: separate q/k/v → our fused
    `qkv_proj`, gate/up → our fused SwiGLU `fc_in`); `when` names the option of our config that decides whether the
    tensor exists (a bias), or is None. `layer` rows are repeated for every layer i under `our_layer`/`hf_layer`.
    `config` maps our config fields to HF's, copied unchanged both ways."""

    top: tuple[tuple[str, str | tuple[str, ...], str | None], ...]
    layer: tuple[tuple[str, str | tuple[str, ...], str | None], ...]
    config: dict[str, str]
    our_layer: str = "decoder.layers.{i}."
    hf_layer: str = "layers.{i}."

    def links(self, config) -> list[Link]:
        """Every Link of a model with `config`: the top rows, then the layer rows for each layer."""
        def keep(when):
            return when is None or bool(_option(config, when))

        links = [_links(ours, theirs) for ours, theirs, when in self.top if keep(when)]
        for i in range(config.num_hidden_layers):
            ours_prefix, theirs_prefix = self.our_layer.format(i=i), self.hf_layer.format(i=i)
            for ours, theirs, when in self.layer:
                if keep(when):
                    theirs = (theirs,) if isinstance(theirs, str) else theirs
                    links.append(_links(ours_prefix + ours, [theirs_prefix + t for t in theirs]))
        return links


def _option(config, name: str):
    """An option of our config, with `attention_output_bias` None meaning "as `attention_bias`"."""
    if name == "attention_output_bias" and config.attention_output_bias is None:
        return config.attention_bias
    return getattr(config, name)


def _qkv(what: str) -> tuple[str, str, str]:
    return tuple(f"self_attn.{m}_proj.{what}" for m in "qkv")


# Llama's tensors; Qwen2 and Mistral name theirs the same (Qwen2 has q/k/v biases, Mistral none).
LLAMA_TABLE = Table(
    top=(
        ("decoder.embeddings.tokens.weight", "embed_tokens.weight", None),
        ("decoder.final_norm.weight", "norm.weight", None),
    ),
    layer=(
        ("self_attn_residual.norm.weight", "input_layernorm.weight", None),  # RMSNorm gain g
        ("self_attn.qkv_proj.weight", _qkv("weight"), None),  # [W_q; W_k; W_v]: (H + 2·H_kv)·D rows
        ("self_attn.qkv_proj.bias", _qkv("bias"), "attention_bias"),
        ("self_attn.out_proj.weight", "self_attn.o_proj.weight", None),
        ("self_attn.out_proj.bias", "self_attn.o_proj.bias", "attention_output_bias"),
        ("ffn_residual.norm.weight", "post_attention_layernorm.weight", None),
        ("ffn.fc_in.weight", ("mlp.gate_proj.weight", "mlp.up_proj.weight"), None),  # [W_gate; W_up]
        ("ffn.fc_in.bias", ("mlp.gate_proj.bias", "mlp.up_proj.bias"), "ffn_bias"),
        ("ffn.fc_out.weight", "mlp.down_proj.weight", None),  # W_down
        ("ffn.fc_out.bias", "mlp.down_proj.bias", "ffn_bias"),
    ),
    config={
        "vocab_size": "vocab_size", "hidden_size": "hidden_size", "num_hidden_layers": "num_hidden_layers",
        "num_attention_heads": "num_attention_heads", "num_key_value_heads": "num_key_value_heads",
        "intermediate_size": "intermediate_size", "max_position_embeddings": "max_position_embeddings",
        "layer_norm_eps": "rms_norm_eps", "attention_probs_dropout_prob": "attention_dropout",
        "initializer_range": "initializer_range", "tie_word_embeddings": "tie_word_embeddings",
        "use_cache": "use_cache",
    },
)
# What makes our shared blocks the modern decoder (and what the three HF classes always are).
_MODERN_DECODER = {"norm_placement": "pre", "norm_type": "rmsnorm", "ffn_type": "gated",
                   "position_embedding_type": "rotary", "position_offset": 0, "scale_embedding": False,
                   "embedding_layer_norm": False, "type_vocab_size": 0}
_HF_ROPE_TYPES = ("default", "linear", "llama3", "dynamic", "yarn")


def _rope_from_hf(hf_config, problems: _Problems) -> dict:
    """transformers' `rope_parameters` (older configs: `rope_theta` + `rope_scaling`) → ours, if we compute it."""
    rope = getattr(hf_config, "rope_parameters", None)
    if not rope:
        rope = dict(getattr(hf_config, "rope_scaling", None) or {}, rope_theta=getattr(hf_config, "rope_theta", 1e4))
    rope = dict(rope)
    rope.setdefault("rope_type", rope.pop("type", "default"))
    if rope["rope_type"] not in _HF_ROPE_TYPES:
        problems.add(f"rope_parameters['rope_type']={rope['rope_type']!r}: our rotary block computes {_HF_ROPE_TYPES}")
    if rope.get("partial_rotary_factor", 1.0) != 1.0:
        problems.add(f"partial_rotary_factor={rope['partial_rotary_factor']}: our rotary block rotates the whole head")
    if rope["rope_type"] == "yarn" and rope.get("factor") is None and rope.get("original_max_position_embeddings"):
        # transformers' YaRN then takes the ratio of the context lengths (DeepSeek-V3 style)
        rope["factor"] = hf_config.max_position_embeddings / rope["original_max_position_embeddings"]
    return rope


def _window_from_hf(hf_config) -> dict:
    """HF's sliding window → ours: `sliding_window` W and, when only some layers slide (Qwen2's
    `max_window_layers`), `layer_types`. Mistral's window applies to every layer; Qwen2 sets `sliding_window` to None
    unless `use_sliding_window`."""
    window = getattr(hf_config, "sliding_window", None)
    if window is None:
        return {"sliding_window": None}
    layer_types = getattr(hf_config, "layer_types", None)
    if layer_types is not None and "sliding_attention" not in layer_types:
        return {"sliding_window": None}  # a window no layer uses
    uniform = layer_types is None or set(layer_types) == {"sliding_attention"}
    return {"sliding_window": window, "layer_types": None if uniform else list(layer_types)}


def _modern_config_from_hf(hf_config, problems: _Problems, table: Table = LLAMA_TABLE) -> dict:
    """The fields Llama, Qwen2 and Mistral share → ours; refuses a head size other than hidden / heads and rope
    types we do not compute. A sliding window (Mistral, Qwen2) becomes ours (`_window_from_hf`)."""
    head_dim = getattr(hf_config, "head_dim", None)
    if head_dim not in (None, hf_config.hidden_size // hf_config.num_attention_heads):
        problems.add(f"`head_dim`={head_dim} != hidden_size / num_attention_heads: our heads split hidden_size")
    activation = _activation_from_hf(hf_config.hidden_act, problems, "hidden_act")
    fields = {ours: getattr(hf_config, theirs) for ours, theirs in table.config.items()}
    return dict(fields, **_MODERN_DECODER, activation=activation, hidden_dropout_prob=0.0,
                rope_parameters=_rope_from_hf(hf_config, problems), **_window_from_hf(hf_config),
                **_classification_fields(hf_config), **_special_tokens(hf_config))


def _modern_config_to_hf(config, problems: _Problems, target: str, table: Table = LLAMA_TABLE) -> dict:
    """Our fields → the arguments LlamaConfig, Qwen2Config and MistralConfig share; refuses what they lack.
    `hidden_dropout_prob` (training only) is dropped: these models have no residual dropout."""
    _require(config, _MODERN_DECODER, target, problems)
    activation = _activation_to_hf(config, ("silu", "gelu", "gelu_new", "relu"), target, problems)
    rope = dict(getattr(config, "rope_parameters", None) or DEFAULT_ROPE_PARAMETERS)  # (none: learned positions)
    fields = {theirs: getattr(config, ours) for ours, theirs in table.config.items()}
    return dict(fields, hidden_act=activation, rope_parameters=rope, **_classification_fields(config),
                **_special_tokens(config))


def llama_config_from_hf(hf_model: PreTrainedModel) -> ScratchGPTConfig:
    """LlamaConfig → ScratchGPTConfig: pre-RMSNorm, SwiGLU, rotary, grouped-query attention; `attention_bias`
    (q, k, v and o) and `mlp_bias` as given."""
    hf_config = hf_model.config
    problems = _Problems(f"Llama config (model_type={hf_config.model_type!r})")
    fields = _modern_config_from_hf(hf_config, problems)
    problems.raise_if_any()
    return ScratchGPTConfig(**fields, attention_bias=hf_config.attention_bias, ffn_bias=hf_config.mlp_bias)


def llama_config_to_hf(config) -> transformers.LlamaConfig:
    """ScratchGPTConfig → LlamaConfig; refuses what Llama cannot express (LayerNorm, learned positions, a bias on
    q/k/v but not on the output projection, …)."""
    problems = _Problems(f"scratch_gpt config to Llama (model_type={config.model_type!r})")
    fields = _modern_config_to_hf(config, problems, "Llama")
    if config.sliding_window is not None:
        problems.add(f"`sliding_window`={config.sliding_window}: Llama attends to every earlier token (Mistral and "
                     "Qwen2 take a window)")
    if _option(config, "attention_output_bias") != config.attention_bias:
        problems.add(f"`attention_output_bias`={config.attention_output_bias} != `attention_bias`="
                     f"{config.attention_bias}: Llama has one bias switch for q, k, v and o (Qwen2 fits q/k/v-only)")
    problems.raise_if_any()
    return transformers.LlamaConfig(**fields, attention_bias=config.attention_bias, mlp_bias=config.ffn_bias,
                                    head_dim=config.hidden_size // config.num_attention_heads)


def qwen2_config_from_hf(hf_model: PreTrainedModel) -> ScratchGPTConfig:
    """Qwen2Config → ScratchGPTConfig: Llama's blocks with a bias on q, k and v (none on o, none in the MLP)."""
    hf_config = hf_model.config
    problems = _Problems(f"Qwen2 config (model_type={hf_config.model_type!r})")
    fields = _modern_config_from_hf(hf_config, problems)
    problems.raise_if_any()
    return ScratchGPTConfig(**fields, attention_bias=True, attention_output_bias=False, ffn_bias=False)


def qwen2_config_to_hf(config) -> transformers.Qwen2Config:
    """ScratchGPTConfig → Qwen2Config; needs exactly Qwen2's biases (q/k/v yes, output and MLP no)."""
    problems = _Problems(f"scratch_gpt config to Qwen2 (model_type={config.model_type!r})")
    fields = _modern_config_to_hf(config, problems, "Qwen2")
    _require(config, {"attention_bias": True, "attention_output_bias": False, "ffn_bias": False}, "Qwen2", problems)
    problems.raise_if_any()
    window = config.sliding_window
    kinds = config.attention_layer_types()
    sliding = [i for i, kind in enumerate(kinds) if kind == "sliding_attention"]
    return transformers.Qwen2Config(
        **fields, use_sliding_window=window is not None, sliding_window=window, layer_types=kinds,
        max_window_layers=sliding[0] if sliding else config.num_hidden_layers,
    )


def mistral_config_from_hf(hf_model: PreTrainedModel) -> ScratchGPTConfig:
    """MistralConfig → ScratchGPTConfig: Llama's blocks without biases, with its sliding window if any (Mistral 7B
    v0.1: 4096; v0.2 on have none)."""
    hf_config = hf_model.config
    problems = _Problems(f"Mistral config (model_type={hf_config.model_type!r})")
    fields = _modern_config_from_hf(hf_config, problems)
    problems.raise_if_any()
    return ScratchGPTConfig(**fields, attention_bias=False, ffn_bias=False)


def mistral_config_to_hf(config) -> transformers.MistralConfig:
    """ScratchGPTConfig → MistralConfig (with our sliding window, which Mistral applies to every layer); refuses any
    bias."""
    problems = _Problems(f"scratch_gpt config to Mistral (model_type={config.model_type!r})")
    fields = _modern_config_to_hf(config, problems, "Mistral")
    if len(set(config.attention_layer_types())) > 1:
        problems.add(f"`layer_types`={config.layer_types}: Mistral's window applies to every layer (Qwen2 fits)")
    _require(config, {"attention_bias": False, "ffn_bias": False}, "Mistral", problems)
    if _option(config, "attention_output_bias"):
        problems.add("`attention_output_bias`=True: Mistral has no biases")
    problems.raise_if_any()
    return transformers.MistralConfig(**fields, sliding_window=config.sliding_window,
                                      head_dim=config.hidden_size // config.num_attention_heads)


# ----------------------------------------------------------------------------------------------------------------
# The registry of supported pairs and the generic copy
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pair:
    """One supported (HF class, our class) pair: prefixes of the body in each, and the head links on top."""

    hf_class: type[PreTrainedModel]
    our_class: type[PreTrainedModel]
    hf_body: str
    our_body: str
    config_from_hf: Callable
    config_to_hf: Callable
    body_links: Callable[[object], list[Link]]
    head_links: tuple[Link, ...] | Callable[[object], tuple[Link, ...]] = ()  # or a function of our config
    hf_kwargs: Callable[[object], dict] = lambda config: {}  # extra constructor arguments of the HF class
    hf_ignored: Callable[[object], set[str]] = lambda config: set()  # HF keys no forward reads from our side


_PAIRS: list[_Pair] = [
    _Pair(transformers.GPT2LMHeadModel, ScratchGPTForCausalLM, "transformer.", "model.", gpt2_config_from_hf,
          gpt2_config_to_hf, gpt2_links, (_links("lm_head.weight", "lm_head.weight"),)),
    _Pair(transformers.GPT2Model, ScratchGPTModel, "", "", gpt2_config_from_hf, gpt2_config_to_hf, gpt2_links),
    # The modern decoder: one table for three architectures; to_hf picks the first whose config accepts ours.
    *(
        _Pair(hf_class, our_class, hf_body, our_body, from_hf_config, to_hf_config, LLAMA_TABLE.links, head)
        for from_hf_config, to_hf_config, classes in (
            (llama_config_from_hf, llama_config_to_hf,
             (transformers.LlamaForCausalLM, transformers.LlamaModel, transformers.LlamaForSequenceClassification)),
            (qwen2_config_from_hf, qwen2_config_to_hf,
             (transformers.Qwen2ForCausalLM, transformers.Qwen2Model, transformers.Qwen2ForSequenceClassification)),
            (mistral_config_from_hf, mistral_config_to_hf,
             (transformers.MistralForCausalLM, transformers.MistralModel, transformers.MistralForSequenceClassification)),
        )
        for hf_class, our_class, hf_body, our_body, head in zip(
            classes,
            (ScratchGPTForCausalLM, ScratchGPTModel, ScratchGPTForSequenceClassification),
            ("model.", "", "model."), ("model.", "", "model."),
            ((_links("lm_head.weight", "lm_head.weight"),), (), (_links("score.weight", "score.weight"),)),
        )
    ),
    _Pair(transformers.GPT2ForSequenceClassification, ScratchGPTForSequenceClassification, "transformer.", "model.",
          gpt2_config_from_hf, gpt2_config_to_hf, gpt2_links, (_links("score.weight", "score.weight"),)),
    _Pair(transformers.BertModel, ScratchBertModel, "", "", bert_config_from_hf, bert_config_to_hf, bert_links,
          hf_kwargs=lambda config: {"add_pooling_layer": config.add_pooling_layer}),
    _Pair(transformers.BertForMaskedLM, ScratchBertForMaskedLM, "bert.", "model.", bert_config_from_hf,
          bert_config_to_hf, bert_links, _BERT_MLM_HEAD),
    _Pair(transformers.BertForSequenceClassification, ScratchBertForSequenceClassification, "bert.", "model.",
          bert_config_from_hf, bert_config_to_hf, bert_links, _CLASSIFIER),
    _Pair(transformers.BertForTokenClassification, ScratchBertForTokenClassification, "bert.", "model.",
          bert_config_from_hf, bert_config_to_hf, bert_links, _CLASSIFIER),
    _Pair(transformers.BertForQuestionAnswering, ScratchBertForQuestionAnswering, "bert.", "model.",
          bert_config_from_hf, bert_config_to_hf, bert_links, tuple(_layer_links("", "", [("classifier", "qa_outputs")]))),
    _Pair(transformers.BartForConditionalGeneration, ScratchTransformerForConditionalGeneration, "model.", "model.",
          bart_config_from_hf, bart_config_to_hf, bart_links, _seq2seq_head_links,
          hf_ignored=_seq2seq_hf_ignored("model.", static_positions=False)),
    _Pair(transformers.BartModel, ScratchTransformerModel, "", "", bart_config_from_hf, bart_config_to_hf, bart_links,
          hf_ignored=_seq2seq_hf_ignored("", static_positions=False)),
    _Pair(transformers.MarianMTModel, ScratchTransformerForConditionalGeneration, "model.", "model.",
          marian_config_from_hf, marian_config_to_hf, marian_links, _seq2seq_head_links,
          hf_ignored=_seq2seq_hf_ignored("model.", static_positions=True)),
    _Pair(transformers.MarianModel, ScratchTransformerModel, "", "", marian_config_from_hf, marian_config_to_hf,
          marian_links, hf_ignored=_seq2seq_hf_ignored("", static_positions=True)),
]


def supported_conversions() -> dict[str, str]:
    """{HF class name: our class name} for every pair `from_hf`/`to_hf` can convert."""
    return {p.hf_class.__name__: p.our_class.__name__ for p in _PAIRS}


def _pair_for(model: nn.Module, side: str) -> _Pair:
    for pair in _PAIRS:
        if type(model) is (pair.hf_class if side == "hf" else pair.our_class):
            return pair
    allowed = tuple(supported_conversions()) if side == "hf" else tuple(dict.fromkeys(supported_conversions().values()))
    raise TypeError(f"Cannot convert a {type(model).__name__}; supported classes are {allowed}.")


def _target_for(model: nn.Module, hf_class: type[PreTrainedModel] | None) -> tuple[_Pair, object]:
    """The pair and HF config for exporting `model`. One of our classes can match several HF architectures
    (scratch_transformer → BART or Marian): the first whose config translation accepts our config wins, unless
    `hf_class` names one; when none accepts, one ValueError gives each candidate's reasons."""
    _pair_for(model, "ours")  # TypeError for a class with no converter at all
    candidates = [p for p in _PAIRS if type(model) is p.our_class and (hf_class is None or p.hf_class is hf_class)]
    if not candidates:
        allowed = [p.hf_class.__name__ for p in _PAIRS if type(model) is p.our_class]
        raise TypeError(f"`hf_class`={getattr(hf_class, '__name__', hf_class)!r} is not a conversion target of "
                        f"{type(model).__name__}; allowed: {allowed}.")
    errors = []
    for pair in candidates:
        try:
            return pair, pair.config_to_hf(model.config)
        except ValueError as error:
            errors.append(str(error))
    if len(errors) == 1:
        raise ValueError(errors[0])
    raise ValueError(f"{type(model).__name__} fits none of its HF architectures:\n" + "\n".join(errors))


def _all_links(pair: _Pair, config) -> list[Link]:
    """Body links with their prefixes, then the head's."""
    body = [
        Link(pair.our_body + link.ours, tuple(pair.hf_body + t for t in link.theirs), link.transpose)
        for link in pair.body_links(config)
    ]
    head = pair.head_links(config) if callable(pair.head_links) else pair.head_links
    return body + list(head)


def _tied_keys(model: nn.Module) -> set[str]:
    """State-dict keys whose tensor is the same storage as an earlier key (tied weights): copied through their source."""
    seen, tied = {}, set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        ptr = tensor.data_ptr()
        if ptr in seen:
            tied.add(name)
        seen.setdefault(ptr, name)
    return tied


def _ignored_hf_keys(state: dict) -> set[str]:
    """HF tensors that no forward reads: GPT-2's precomputed mask buffers (older versions), and BERT's
    `cls.predictions.bias`, which is the output bias only through its tie to `cls.predictions.decoder.bias`."""
    return {k for k in state if k.endswith((".attn.bias", ".attn.masked_bias")) or k == "cls.predictions.bias"}


def _copy(
    links: list[Link], ours: nn.Module, theirs: nn.Module, direction: str, what: str, ignored: set[str] = frozenset()
) -> None:
    """Copy every linked tensor in `direction` ("from_hf" or "to_hf"), after checking every key and shape; HF keys
    in `ignored` may stay unlinked."""
    our_state, their_state = ours.state_dict(), theirs.state_dict()
    problems = _Problems(what)
    tied_ours, tied_theirs = _tied_keys(ours), _tied_keys(theirs)
    used_ours, used_theirs = set(), set()
    plan = []
    for link in links:
        if link.ours in tied_ours and all(t in tied_theirs or t not in their_state for t in link.theirs):
            used_ours.add(link.ours)
            used_theirs.update(link.theirs)
            continue  # tied on both sides (e.g. lm_head ≡ token embedding): the source tensor carries it
        missing = [k for k in (link.ours,) if k not in our_state] + [t for t in link.theirs if t not in their_state]
        if missing:
            problems.add(f"missing tensor(s) {missing}")
            continue
        used_ours.add(link.ours)
        used_theirs.update(link.theirs)
        parts = [their_state[t].t() if link.transpose else their_state[t] for t in link.theirs]
        expected = (sum(p.shape[0] for p in parts), *parts[0].shape[1:])
        if tuple(our_state[link.ours].shape) != tuple(expected) or any(p.shape[1:] != parts[0].shape[1:] for p in parts):
            shapes = [tuple(their_state[t].shape) for t in link.theirs]
            problems.add(f"shape of {link.ours} {tuple(our_state[link.ours].shape)} does not fit {list(link.theirs)} "
                         f"{shapes}" + (" (transposed)" if link.transpose else ""))
            continue
        plan.append((link, [p.shape[0] for p in parts]))
    for key in sorted(set(our_state) - used_ours - tied_ours):
        problems.add(f"our tensor {key} has no HF counterpart")
    for key in sorted(set(their_state) - used_theirs - tied_theirs - _ignored_hf_keys(their_state) - set(ignored)):
        problems.add(f"HF tensor {key} has no counterpart in our model")
    problems.raise_if_any()
    with torch.no_grad():
        for link, sizes in plan:
            if direction == "from_hf":
                parts = [their_state[t].t() if link.transpose else their_state[t] for t in link.theirs]
                our_state[link.ours].copy_(torch.cat(parts, dim=0) if len(parts) > 1 else parts[0])
            else:
                for t, part in zip(link.theirs, our_state[link.ours].split(sizes, dim=0)):
                    their_state[t].copy_(part.t() if link.transpose else part)


def _copy_generation_config(source: PreTrainedModel, target: PreTrainedModel) -> None:
    if getattr(source, "generation_config", None) is not None and target.can_generate():
        target.generation_config = source.generation_config.__class__.from_dict(source.generation_config.to_dict())


def from_hf(hf_model: PreTrainedModel, attn_implementation: str | None = None) -> PreTrainedModel:
    """Convert a native transformers model to ours with the same weights, so logits agree to float rounding.

    `attn_implementation` defaults to the source model's. Raises TypeError for an unsupported class and ValueError
    listing every option or tensor that does not fit.
    """
    pair = _pair_for(hf_model, "hf")
    config = pair.config_from_hf(hf_model)
    model = pair.our_class._from_config(
        config, attn_implementation=attn_implementation or hf_model.config._attn_implementation, dtype=torch.float32
    )
    _copy(_all_links(pair, config), model, hf_model, "from_hf", f"{type(hf_model).__name__} → {pair.our_class.__name__}",
          pair.hf_ignored(config))
    _copy_generation_config(hf_model, model)
    return model.to(hf_model.dtype).train(hf_model.training)


def to_hf(
    model: PreTrainedModel, attn_implementation: str | None = None, hf_class: type[PreTrainedModel] | None = None
) -> PreTrainedModel:
    """Convert one of our models to the native transformers class of the same architecture (e.g. GPT2LMHeadModel).

    A scratch_transformer model goes to BART or Marian, whichever its config fits (learned positions with offset 2
    → BART; split sinusoidal positions → Marian); `hf_class` (e.g. `transformers.MarianMTModel`) forces one.
    """
    pair, hf_config = _target_for(model, hf_class)
    hf_model = pair.hf_class._from_config(
        hf_config,
        attn_implementation=attn_implementation or model.config._attn_implementation,
        dtype=torch.float32,
        **pair.hf_kwargs(model.config),
    )
    _copy(_all_links(pair, model.config), model, hf_model, "to_hf", f"{type(model).__name__} → {pair.hf_class.__name__}",
          pair.hf_ignored(model.config))
    _copy_generation_config(model, hf_model)
    return hf_model.to(model.dtype).train(model.training)


# ----------------------------------------------------------------------------------------------------------------
# Command line: convert a local checkpoint folder or a Hub model
# ----------------------------------------------------------------------------------------------------------------

# Everything a tokenizer folder can hold (what `save_pretrained` writes, and the SentencePiece models of Llama 2,
# Mistral, T5, Marian, XLM-R); the chat template travels as its own file (`chat_template.jinja`, transformers ≥ 4.50),
# inside tokenizer_config.json (older saves) or as named templates (`additional_chat_templates/`).
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "vocab.txt",
                    "merges.txt", "added_tokens.json", "source.spm", "target.spm", "spiece.model", "tokenizer.model",
                    "sentencepiece.bpe.model", "chat_template.jinja", "chat_template.json")
_TOKENIZER_FOLDERS = ("additional_chat_templates",)
# What `convert` fetches of a Hub model: config, weights, tokenizer, card (not other frameworks' weights, GGUF or
# the original/ consolidated checkpoints).
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.spm", "README.md",
                 "additional_chat_templates/*"]


def _resolve_checkpoint(name: str) -> Path:
    """A local folder as it is; otherwise a Hub model id, downloaded with `huggingface_hub.snapshot_download`
    (config, safetensors — else PyTorch .bin — weights, tokenizer files). ValueError in one sentence when it is
    neither a folder nor a model the Hub gives (no network, HF_HUB_OFFLINE, a private or missing repo)."""
    path = Path(name)
    if path.exists():
        return path
    import huggingface_hub
    from huggingface_hub.utils import HFValidationError

    if name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        raise ValueError(f"{name}: no such folder (and not a Hub model id such as 'HuggingFaceTB/SmolLM2-135M')")
    try:
        folder = Path(huggingface_hub.snapshot_download(name, allow_patterns=_HUB_PATTERNS))
        if not any(folder.glob("*.safetensors")):  # an older repo with PyTorch weights only
            folder = Path(huggingface_hub.snapshot_download(name, allow_patterns=[*_HUB_PATTERNS, "*.bin"]))
    except HFValidationError as err:
        raise ValueError(f"{name}: no such folder, and not a valid Hub model id ({err})") from err
    except Exception as err:  # offline, unreachable, gated, missing: one line, the id and the reason
        reason = " ".join(str(err).split())[:300] or type(err).__name__
        raise ValueError(f"{name}: no such folder, and could not download it from the Hugging Face Hub "
                         f"({type(err).__name__}: {reason}); pass a local folder, or run where the Hub is reachable"
                         ) from err
    return folder


def _copy_tokenizer(source: Path, out_dir: Path) -> list[str]:
    """Copy the tokenizer files (and chat templates) of `source` into `out_dir`; returns the names copied."""
    copied = [name for name in _TOKENIZER_FILES if (source / name).is_file()]
    for name in copied:
        shutil.copy2(source / name, out_dir / name)
    for name in _TOKENIZER_FOLDERS:
        if (source / name).is_dir():
            shutil.copytree(source / name, out_dir / name, dirs_exist_ok=True)
            copied.append(name + "/")
    return copied


def _load_checkpoint(directory: Path) -> tuple[PreTrainedModel, str]:
    """Load a local checkpoint with the class named in its config's `architectures`; returns (model, side)."""
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{directory} is not a checkpoint folder: it has no config.json.")
    config = transformers.AutoConfig.from_pretrained(directory, local_files_only=True)
    names = list(getattr(config, "architectures", None) or [])
    for pair in _PAIRS:
        for side, cls in (("hf", pair.hf_class), ("ours", pair.our_class)):
            if cls.__name__ in names:
                return cls.from_pretrained(directory, local_files_only=True), side
    allowed = sorted(set(supported_conversions()) | set(supported_conversions().values()))
    raise ValueError(f"{directory}: architectures {names} cannot be converted; supported classes are {allowed}.")


# class-name suffix → model-card task, for our classes and transformers' (GPT2LMHeadModel, MarianMTModel)
_CARD_TASKS = {"ForCausalLM": "causal-lm", "LMHeadModel": "causal-lm", "ForMaskedLM": "masked-lm",
               "ForConditionalGeneration": "translation", "MTModel": "translation",
               "ForSequenceClassification": "text-classification"}


def _write_card(source: Path, out_dir: Path, model: PreTrainedModel, converted: PreTrainedModel) -> bool:
    """A model card for a converted checkpoint (either direction), so `push --check` passes on it: the task from the
    class, the datasets/language/licence the source's own card states (none claimed when it has none), and a line
    saying where the weights came from. False for classes without a card task (the bare models, QA, tagging)."""
    from huggingface_hub import ModelCard

    from .model_card import write_model_card

    task = next((t for suffix, t in _CARD_TASKS.items() if type(converted).__name__.endswith(suffix)), None)
    if task is None:
        return False
    data = ModelCard.load(source / "README.md").data if (source / "README.md").is_file() else None
    datasets = list(getattr(data, "datasets", None) or []) or ["unrecorded"]
    write_model_card(
        out_dir, {}, datasets=datasets, base_config=str(source), task=task,
        language=getattr(data, "language", None), license=getattr(data, "license", None),
        training_summary=f"weights converted unchanged from `{source}` ({type(model).__name__}) with "
        "`scratchformers convert`; the training data is that of the source checkpoint"
        + ("." if data is not None and data.datasets else " (its card does not name it)."),
    )
    return True


@keeps_earlier_run
def main(argv: Sequence[str] | None = None) -> int:
    """`scratchformers convert <checkpoint dir or Hub id> <out dir>`: HF-native → ours, or ours → HF-native
    (auto-detected).

    The converted folder gets the source's tokenizer files, chat template included (so `scratchformers chat OUT`
    works on it) and a model card (upload-complete for `scratchformers push`, in either direction). A
    checkpoint that is not an existing path is taken as a Hub model id (`_resolve_checkpoint`). An out_dir that is a
    file, or a folder that already holds files, is refused (ValueError) unless ``--overwrite``.
    """
    from .examples.arguments import convert_parser  # (shared with the light `convert --help`)

    args = convert_parser().parse_args(argv)
    if args.out_dir.exists() and not args.out_dir.is_dir():
        raise ValueError(f"out_dir {str(args.out_dir)!r} is a file; give a folder path")
    replace = args.out_dir.is_dir() and any(args.out_dir.iterdir())
    if replace and not args.overwrite:
        raise ValueError(f"out_dir {str(args.out_dir)!r} already holds files; pass --overwrite to replace them "
                         "or choose another folder")
    source = _resolve_checkpoint(args.checkpoint)  # (a failed download leaves an existing out_dir as it was)
    if replace:
        replace_later(args.out_dir)  # deleted when the conversion succeeds, put back when it fails
    model, side = _load_checkpoint(source)
    converted = from_hf(model) if side == "hf" else to_hf(model)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    converted.save_pretrained(args.out_dir)
    copied = _copy_tokenizer(source, args.out_dir)
    carded = _write_card(source, args.out_dir, model, converted)
    print(f"{type(model).__name__} → {type(converted).__name__}: wrote {args.out_dir}"
          + (f" (+ tokenizer files {copied})" if copied else "") + (" and a model card" if carded else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
