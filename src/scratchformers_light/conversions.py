"""One spec per Hugging Face architecture our blocks express, as data. `scratchformers.convert` is the one engine that
reads them in both directions; export formats read the same rows (`WeightMap.by_ours` / `by_theirs` find a tensor
by either side's name). Standard library only: `scratchformers convert --help` lists the conversions from here.

A spec (reversible rows as in transformers' `conversion_mapping.py`, a weight map per architecture as in LitGPT) says,
for one HF architecture and one family of ours:

- `renames`: our config option → HF's, used both ways. A tuple of HF names takes our one value on export and must
  agree on import (BART's `encoder_ffn_dim`, `decoder_ffn_dim` → our `intermediate_size`). HF values of `activation`
  go through `ACTIVATIONS`.
- `fixed`: what the HF architecture always is in our options: `from_hf` sets them, `to_hf` refuses any other value.
  `our_defaults` / `hf_defaults` are set one way only (training-only options the other side lacks).
- `refuse_hf` / `refuse_ours`: (test, reason) on that side's config; the reason is a format string over its fields
  (and `{architecture}`, the spec's name).
- `weights`: groups of `Row`s. A row names one tensor of ours and the HF tensor(s) it is made of, concatenated along
  dim 0 on our side (q, k, v → our fused `qkv_proj`), each transposed first for GPT-2's Conv1D; `when` names the
  option of ours that decides whether it exists. A layer group repeats its rows for i = 0 … config.<count> − 1.
- `classes`: one `Head` per task class: both class names, where the body sits in each, the head's rows, and the
  options that class fixes (BART's generation head adds `final_logits_bias`).
- `from_hf(hf_model, problems)` / `to_hf(config, problems)`: the escape hatch for the few real computations
  (rotary scaling, sliding windows, whether BERT has a pooler); they return options and may add problems.

Adding an architecture our blocks express is one spec here and one test row (`tests/checkpoints/test_convert.py`,
`SPEC_MODELS`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

Check = tuple[Callable[[Any], Any], str]  # (test on a config, reason: a format string over that config's fields)
Hatch = Callable[[Any, list], dict]  # (HF model or our config, problems) → options


@dataclass(frozen=True)
class Row:
    """One tensor of ours ← the HF tensor(s) `theirs` (several: concatenated along dim 0 on our side, each transposed
    first if `transpose`). `kind` "ignore": an HF tensor no forward needs from us (`ours` is None); "sinusoids": a
    fixed table HF stores and our module `ours` computes (checked on import, never copied). `when`: the option of our
    config that decides whether the row applies ("not x": unless x), or None."""

    ours: str | None
    theirs: tuple[str, ...]
    transpose: bool = False
    when: str | None = None
    kind: str = "copy"


def tensor(ours: str, theirs: str | Sequence[str], transpose: bool = False, when: str | None = None) -> Row:
    return Row(ours, (theirs,) if isinstance(theirs, str) else tuple(theirs), transpose, when)


def linear(ours: str, theirs: str | Sequence[str], transpose: bool = False, when: str | None = None) -> tuple[Row, ...]:
    """A Linear or LayerNorm: weight (transposed if `transpose`) and bias; several HF modules are fused on our side."""
    modules = (theirs,) if isinstance(theirs, str) else tuple(theirs)
    return tuple(tensor(f"{ours}.{p}", [f"{m}.{p}" for m in modules], transpose and p == "weight", when)
                 for p in ("weight", "bias"))


def ignore(theirs: str, when: str | None = None) -> Row:
    return Row(None, (theirs,), when=when, kind="ignore")


def sinusoids(ours: str, theirs: str) -> Row:
    return Row(ours, (theirs,), kind="sinusoids")


@dataclass(frozen=True)
class Group:
    """Rows under a prefix on each side; with `count` (our option holding a layer count) the rows repeat for every
    layer, `{i}` in the prefixes standing for its index."""

    ours: str
    theirs: str
    rows: tuple[Row, ...]
    count: str | None = None


@dataclass(frozen=True)
class Head:
    """One task class on each side: where the body sits (`hf_body`, `our_body`), the head's rows (no prefix), what this
    class fixes in our options on import (`options`), and our options its HF constructor takes (`hf_kwargs`)."""

    hf: str
    ours: str
    hf_body: str = ""
    our_body: str = ""
    rows: tuple[Row, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    hf_kwargs: tuple[str, ...] = ()


@dataclass(frozen=True)
class WeightMap:
    """Every row of one class pair for one config, with the layer index and prefixes filled in."""

    rows: tuple[Row, ...]

    @property
    def by_ours(self) -> dict[str, Row]:
        return {row.ours: row for row in self.rows if row.ours is not None}

    @property
    def by_theirs(self) -> dict[str, Row]:
        return {name: row for row in self.rows for name in row.theirs}


@dataclass(frozen=True)
class Spec:
    """One HF architecture (`name`, its config class `hf_config`) ↔ one family of ours (`family` = its model_type)."""

    name: str
    family: str
    hf_config: str
    renames: Mapping[str, str | tuple[str, ...]]
    weights: tuple[Group, ...]
    classes: tuple[Head, ...]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    refuse_hf: tuple[Check, ...] = ()
    refuse_ours: tuple[Check, ...] = ()
    our_defaults: Mapping[str, Any] = field(default_factory=dict)
    hf_defaults: Mapping[str, Any] = field(default_factory=dict)
    from_hf: Hatch | None = None
    to_hf: Hatch | None = None

    def weight_map(self, head: Head, config) -> WeightMap:
        """The rows of `head`'s class pair for our `config`: body groups under the body prefixes, then the head's."""
        rows = []
        for group in self.weights:
            for i in range(getattr(config, group.count) if group.count else 1):
                ours, theirs = (head.our_body + group.ours).format(i=i), (head.hf_body + group.theirs).format(i=i)
                rows += [replace(row, ours=None if row.ours is None else ours + row.ours,
                                 theirs=tuple(theirs + t for t in row.theirs)) for row in group.rows]
        return WeightMap(tuple(row for row in [*rows, *head.rows] if applies(row.when, config)))


def option(config, name: str) -> Any:
    """An option of our config; `attention_output_bias` None means "as `attention_bias`"."""
    if name == "attention_output_bias" and config.attention_output_bias is None:
        return config.attention_bias
    return getattr(config, name)


def applies(when: str | None, config) -> bool:
    """Whether a row with this `when` ("x", "not x" or None) exists for our `config`."""
    if when is None:
        return True
    if when.startswith("not "):
        return not option(config, when.removeprefix("not "))
    return bool(option(config, when))


def same(*names: str) -> dict[str, str]:
    """Options HF spells as we do."""
    return {name: name for name in names}


# HF activation names → ours ("gelu_pytorch_tanh" is gelu_new's tanh approximation, fused by torch). Ours are HF names.
ACTIVATIONS = {"gelu_new": "gelu_new", "gelu_pytorch_tanh": "gelu_new", "gelu": "gelu", "relu": "relu", "silu": "silu",
               "swish": "silu"}
SHARED = same("vocab_size", "initializer_range", "tie_word_embeddings")
TOKENS = same("pad_token_id", "bos_token_id", "eos_token_id")
LABELS = same("id2label", "label2id", "problem_type")  # label names and problem type travel both ways
LM_HEAD = (tensor("lm_head.weight", "lm_head.weight"),)

# ---------------------------------------------------------------------------------------------- GPT-2 ↔ scratch_gpt

GPT2 = Spec(
    name="GPT-2", family="scratch_gpt", hf_config="GPT2Config",
    renames={**SHARED, "hidden_size": "n_embd", "num_hidden_layers": "n_layer", "num_attention_heads": "n_head",
             "intermediate_size": "n_inner", "max_position_embeddings": "n_positions", "use_cache": "use_cache",
             "hidden_dropout_prob": "resid_pdrop", "attention_probs_dropout_prob": "attn_pdrop",
             "layer_norm_eps": "layer_norm_epsilon", "activation": "activation_function", **LABELS, **TOKENS},
    fixed={"norm_placement": "pre", "position_embedding_type": "learned", "scale_embedding": False,
           "embedding_layer_norm": False, "type_vocab_size": 0, "attention_bias": True, "ffn_bias": True},
    refuse_hf=(
        (lambda c: not c.scale_attn_weights,
         "`scale_attn_weights`=False (unscaled QKᵀ): our attention always divides by √d_k"),
        (lambda c: c.scale_attn_by_inverse_layer_idx,
         "`scale_attn_by_inverse_layer_idx`=True: our attention uses one scale 1/√d_k in every layer"),
        (lambda c: getattr(c, "add_cross_attention", False),
         "`add_cross_attention`=True: scratch_gpt is decoder-only (use scratch_transformer)"),
    ),
    from_hf=lambda hf, problems: {"intermediate_size": hf.config.n_inner or 4 * hf.config.n_embd},
    to_hf=lambda config, problems: {"embd_pdrop": config.hidden_dropout_prob},  # our one rate: embeddings, residuals
    weights=(
        Group("decoder.", "", (tensor("embeddings.embed_tokens.weight", "wte.weight"),
                               tensor("embeddings.positions.weight", "wpe.weight"), *linear("final_norm", "ln_f"))),
        Group("decoder.layers.{i}.", "h.{i}.", count="num_hidden_layers", rows=(  # Conv1D stores (in, out): transposed
            *linear("self_attn_residual.norm", "ln_1"),
            *linear("self_attn.qkv_proj", "attn.c_attn", transpose=True),  # [W_q W_k W_v]: (C, 3C) in HF, (3C, C) ours
            *linear("self_attn.out_proj", "attn.c_proj", transpose=True),
            *linear("ffn_residual.norm", "ln_2"),
            *linear("ffn.fc_in", "mlp.c_fc", transpose=True),
            *linear("ffn.fc_out", "mlp.c_proj", transpose=True),
            ignore("attn.bias"), ignore("attn.masked_bias"),  # older saves: mask buffers no forward reads
        )),
    ),
    classes=(
        Head("GPT2LMHeadModel", "ScratchGPTForCausalLM", "transformer.", "model.", LM_HEAD),
        Head("GPT2Model", "ScratchGPTModel"),
        Head("GPT2ForSequenceClassification", "ScratchGPTForSequenceClassification", "transformer.", "model.",
             (tensor("score.weight", "score.weight"),)),
    ),
)

# --------------------------------------------------------------------------------------------- BERT ↔ scratch_bert

BERT = Spec(
    name="BERT", family="scratch_bert", hf_config="BertConfig",
    renames={**SHARED, **same("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                              "max_position_embeddings", "hidden_dropout_prob", "attention_probs_dropout_prob",
                              "layer_norm_eps", "type_vocab_size", "classifier_dropout"),
             "activation": "hidden_act", **LABELS, **TOKENS},
    fixed={"norm_placement": "post", "position_embedding_type": "learned", "scale_embedding": False,
           "embedding_layer_norm": True, "attention_bias": True, "ffn_bias": True},
    refuse_hf=(
        (lambda c: getattr(c, "is_decoder", False) or getattr(c, "add_cross_attention", False),
         "`is_decoder`/`add_cross_attention`=True: scratch_bert is a bidirectional encoder"),
        (lambda c: getattr(c, "position_embedding_type", "absolute") != "absolute",
         "`position_embedding_type`={position_embedding_type!r}: only 'absolute' is supported")),
    refuse_ours=((lambda c: c.type_vocab_size < 1,
                  "`type_vocab_size`=0: BERT always has token-type embeddings (use >= 1)"),),
    from_hf=lambda hf, problems: {"add_pooling_layer": getattr(getattr(hf, "bert", hf), "pooler", None) is not None},
    weights=(
        Group("encoder.embeddings.", "embeddings.", (
            tensor("embed_tokens.weight", "word_embeddings.weight"), tensor("positions.weight", "position_embeddings.weight"),
            tensor("token_types.weight", "token_type_embeddings.weight"), *linear("norm", "LayerNorm"))),
        Group("encoder.layers.{i}.", "encoder.layer.{i}.", count="num_hidden_layers", rows=(
            *linear("self_attn.qkv_proj", ("attention.self.query", "attention.self.key", "attention.self.value")),
            *linear("self_attn.out_proj", "attention.output.dense"),
            *linear("self_attn_residual.norm", "attention.output.LayerNorm"),
            *linear("ffn.fc_in", "intermediate.dense"), *linear("ffn.fc_out", "output.dense"),
            *linear("ffn_residual.norm", "output.LayerNorm"))),
        Group("", "", linear("pooler.dense", "pooler.dense", when="add_pooling_layer")),
    ),
    classes=(
        Head("BertModel", "ScratchBertModel", hf_kwargs=("add_pooling_layer",)),
        Head("BertForMaskedLM", "ScratchBertForMaskedLM", "bert.", "model.", (
            *linear("lm_head.dense", "cls.predictions.transform.dense"),
            *linear("lm_head.norm", "cls.predictions.transform.LayerNorm"),
            *linear("lm_head.decoder", "cls.predictions.decoder"),  # the output bias HF's forward adds
            ignore("cls.predictions.bias"))),  # the same tensor as `decoder.bias` through their tie
        *(Head(f"BertFor{task}", f"ScratchBertFor{task}", "bert.", "model.", linear("classifier", theirs))
          for task, theirs in (("SequenceClassification", "classifier"), ("TokenClassification", "classifier"),
                               ("QuestionAnswering", "qa_outputs"))),
    ),
)

# ------------------------------------------------------------------------- BART / Marian ↔ scratch_transformer


def seq2seq_classes(generation: str, body: str) -> tuple[Head, ...]:
    """The generation model (output layer, and `final_logits_bias` when ours has one: left zero otherwise, which is
    exact) and the bare encoder-decoder."""
    head = (*LM_HEAD, tensor("final_logits_bias", "final_logits_bias", when="final_logits_bias"),
            ignore("final_logits_bias", when="not final_logits_bias"))
    return (Head(generation, "ScratchTransformerForConditionalGeneration", "model.", "model.", head,
                 options={"final_logits_bias": True}),
            Head(body, "ScratchTransformerModel"))


SELF_ATTENTION_LAYER = (  # BART and Marian name their layers alike
    *linear("self_attn.qkv_proj", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")),
    *linear("self_attn.out_proj", "self_attn.out_proj"), *linear("self_attn_residual.norm", "self_attn_layer_norm"),
    *linear("ffn.fc_in", "fc1"), *linear("ffn.fc_out", "fc2"), *linear("ffn_residual.norm", "final_layer_norm"),
)
CROSS_ATTENTION = (
    *linear("cross_attn.q_proj", "encoder_attn.q_proj"),
    *linear("cross_attn.kv_proj", ("encoder_attn.k_proj", "encoder_attn.v_proj")),
    *linear("cross_attn.out_proj", "encoder_attn.out_proj"),
    *linear("cross_attn_residual.norm", "encoder_attn_layer_norm"),
)
# Tied: HF's `shared` is the source and both stacks and lm_head are ties of it. Untied: each stack reads its own
# `embed_tokens`, and HF's `shared` is read by no forward.
SEQ2SEQ_WEIGHTS = (
    Group("", "", (
        tensor("encoder.embeddings.embed_tokens.weight", "shared.weight", when="tie_word_embeddings"),
        tensor("encoder.embeddings.embed_tokens.weight", "encoder.embed_tokens.weight", when="not tie_word_embeddings"),
        tensor("decoder.embeddings.embed_tokens.weight", "decoder.embed_tokens.weight"),
        ignore("shared.weight", when="not tie_word_embeddings"))),
    Group("encoder.layers.{i}.", "encoder.layers.{i}.", SELF_ATTENTION_LAYER, count="encoder_layers"),
    Group("decoder.layers.{i}.", "decoder.layers.{i}.", SELF_ATTENTION_LAYER + CROSS_ATTENTION, count="decoder_layers"),
)

# The options BART and Marian share: post-LN, one width and head count for both stacks, nn.LayerNorm's eps.
# Training-only options our blocks lack are dropped on import and written as 0 on export (`activation_dropout`,
# `encoder_layerdrop`, `decoder_layerdrop`); they do not change inference.
BART = Spec(
    name="BART", family="scratch_transformer", hf_config="BartConfig",
    renames={**SHARED, **same("encoder_layers", "decoder_layers", "max_position_embeddings", "scale_embedding",
                              "use_cache", "decoder_start_token_id"),
             "hidden_size": "d_model", "num_attention_heads": ("encoder_attention_heads", "decoder_attention_heads"),
             "intermediate_size": ("encoder_ffn_dim", "decoder_ffn_dim"), "hidden_dropout_prob": "dropout",
             "attention_probs_dropout_prob": "attention_dropout", "initializer_range": "init_std",
             "activation": "activation_function", **TOKENS},
    fixed={"norm_placement": "post", "type_vocab_size": 0, "attention_bias": True, "ffn_bias": True,
           "layer_norm_eps": 1e-5, "position_embedding_type": "learned", "position_offset": 2,
           "embedding_layer_norm": True},
    hf_defaults={"activation_dropout": 0.0, "forced_eos_token_id": None},  # (a generation setting: in generation config)
    refuse_hf=((lambda c: getattr(c, "is_decoder", False),
                "`is_decoder`=True ({architecture} as a decoder-only model): only the encoder-decoder converts"),),
    weights=(
        *SEQ2SEQ_WEIGHTS,  # + one learned position table (offset 2) and one embedding LayerNorm per stack
        Group("encoder.", "encoder.", (tensor("embeddings.positions.weight", "embed_positions.weight"),
                                       *linear("embeddings.norm", "layernorm_embedding"))),
        Group("decoder.", "decoder.", (tensor("embeddings.positions.weight", "embed_positions.weight"),
                                       *linear("embeddings.norm", "layernorm_embedding"))),
    ),
    classes=seq2seq_classes("BartForConditionalGeneration", "BartModel"),
)

MARIAN = replace(  # BART's blocks with fixed [sin | cos] positions (stored by HF, computed by ours), no embedding norm
    BART, name="Marian", hf_config="MarianConfig",
    renames={**BART.renames, "vocab_size": ("vocab_size", "decoder_vocab_size")},  # one vocabulary for both stacks
    fixed={**BART.fixed, "position_embedding_type": "sinusoidal", "sinusoidal_layout": "split", "position_offset": 0,
           "embedding_layer_norm": False},
    hf_defaults={**BART.hf_defaults, "share_encoder_decoder_embeddings": True},
    refuse_hf=(*BART.refuse_hf, (lambda c: not c.share_encoder_decoder_embeddings,
                                 "`share_encoder_decoder_embeddings`=False (separate source and target vocabularies): "
                                 "scratch_transformer has one vocabulary")),
    weights=(*SEQ2SEQ_WEIGHTS, Group("", "", (sinusoids("encoder.embeddings.positions", "encoder.embed_positions.weight"),
                                              sinusoids("decoder.embeddings.positions", "decoder.embed_positions.weight")))),
    classes=seq2seq_classes("MarianMTModel", "MarianModel"),
)

# ------------------------------------------ the modern decoder: Llama, Qwen2, Mistral ↔ scratch_gpt (rotary, RMSNorm,
# SwiGLU, grouped-query attention)


def decoder_classes(arch: str) -> tuple[Head, ...]:
    """{arch}ForCausalLM, {arch}Model and {arch}ForSequenceClassification ↔ our three scratch_gpt classes."""
    return (Head(f"{arch}ForCausalLM", "ScratchGPTForCausalLM", "model.", "model.", LM_HEAD),
            Head(f"{arch}Model", "ScratchGPTModel"),
            Head(f"{arch}ForSequenceClassification", "ScratchGPTForSequenceClassification", "model.", "model.",
                 (tensor("score.weight", "score.weight"),)))


ROPE_TYPES = ("default", "linear", "llama3", "dynamic", "yarn")  # what our rotary block computes


def rope_from_hf(hf_config, problems: list) -> dict:
    """transformers' `rope_parameters` (older configs: `rope_theta` + `rope_scaling`) → ours, if we compute it."""
    rope = getattr(hf_config, "rope_parameters", None)
    if not rope:
        rope = dict(getattr(hf_config, "rope_scaling", None) or {}, rope_theta=getattr(hf_config, "rope_theta", 1e4))
    rope = dict(rope)
    rope.setdefault("rope_type", rope.pop("type", "default"))
    if rope["rope_type"] not in ROPE_TYPES:
        problems.append(f"rope_parameters['rope_type']={rope['rope_type']!r}: our rotary block computes {ROPE_TYPES}")
    if rope.get("partial_rotary_factor", 1.0) != 1.0:
        problems.append(f"partial_rotary_factor={rope['partial_rotary_factor']}: our rotary block rotates the whole head")
    if rope["rope_type"] == "yarn" and rope.get("factor") is None and rope.get("original_max_position_embeddings"):
        # transformers' YaRN then takes the ratio of the context lengths (DeepSeek-V3 style)
        rope["factor"] = hf_config.max_position_embeddings / rope["original_max_position_embeddings"]
    return rope


def window_from_hf(hf_config) -> dict:
    """HF's sliding window → ours: `sliding_window` W and, when only some layers slide (Qwen2's `max_window_layers`),
    `layer_types`. Mistral's window applies to every layer; Qwen2 sets `sliding_window` to None unless
    `use_sliding_window`."""
    window = getattr(hf_config, "sliding_window", None)
    layer_types = getattr(hf_config, "layer_types", None)
    if window is None or (layer_types is not None and "sliding_attention" not in layer_types):
        return {"sliding_window": None}  # no window, or one no layer uses
    uniform = layer_types is None or set(layer_types) == {"sliding_attention"}
    return {"sliding_window": window, "layer_types": None if uniform else list(layer_types)}


def modern_from_hf(hf, problems: list) -> dict:
    return {"rope_parameters": rope_from_hf(hf.config, problems), **window_from_hf(hf.config)}


def rope_to_hf(config) -> dict:
    """Our RoPE settings as transformers' (a config without rotary positions carries none: the defaults, while the
    fixed `position_embedding_type="rotary"` reports the mismatch)."""
    return dict(getattr(config, "rope_parameters", None) or {"rope_type": "default", "rope_theta": 10000.0})


def qwen2_window_to_hf(config) -> dict:
    """Our window as Qwen2's: `use_sliding_window`, and the layers from `max_window_layers` on slide."""
    kinds = config.attention_layer_types()
    sliding = [i for i, kind in enumerate(kinds) if kind == "sliding_attention"]
    return {"use_sliding_window": config.sliding_window is not None, "sliding_window": config.sliding_window,
            "layer_types": kinds, "max_window_layers": sliding[0] if sliding else config.num_hidden_layers}


# What makes our shared blocks the modern decoder (and what the three HF classes always are). Residual dropout: none
# in these models, so none on import; a rate of ours is training-only and not refused on export.
MODERN_DECODER = {"norm_placement": "pre", "norm_type": "rmsnorm", "ffn_type": "gated",
                  "position_embedding_type": "rotary", "position_offset": 0, "scale_embedding": False,
                  "embedding_layer_norm": False, "type_vocab_size": 0}
MODERN_WEIGHTS = (
    Group("decoder.", "", (tensor("embeddings.embed_tokens.weight", "embed_tokens.weight"),
                           tensor("final_norm.weight", "norm.weight"))),
    Group("decoder.layers.{i}.", "layers.{i}.", count="num_hidden_layers", rows=(
        tensor("self_attn_residual.norm.weight", "input_layernorm.weight"),  # RMSNorm gain g
        tensor("self_attn.qkv_proj.weight", [f"self_attn.{m}_proj.weight" for m in "qkv"]),  # (H + 2·H_kv)·D rows
        tensor("self_attn.qkv_proj.bias", [f"self_attn.{m}_proj.bias" for m in "qkv"], when="attention_bias"),
        tensor("self_attn.out_proj.weight", "self_attn.o_proj.weight"),
        tensor("self_attn.out_proj.bias", "self_attn.o_proj.bias", when="attention_output_bias"),
        tensor("ffn_residual.norm.weight", "post_attention_layernorm.weight"),
        tensor("ffn.fc_in.weight", ("mlp.gate_proj.weight", "mlp.up_proj.weight")),  # [W_gate; W_up]
        tensor("ffn.fc_in.bias", ("mlp.gate_proj.bias", "mlp.up_proj.bias"), when="ffn_bias"),
        tensor("ffn.fc_out.weight", "mlp.down_proj.weight"),  # W_down
        tensor("ffn.fc_out.bias", "mlp.down_proj.bias", when="ffn_bias"),
    )),
)

LLAMA = Spec(
    name="Llama", family="scratch_gpt", hf_config="LlamaConfig",
    renames={**SHARED, **same("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                              "intermediate_size", "max_position_embeddings", "use_cache", "attention_bias"),
             "layer_norm_eps": "rms_norm_eps", "attention_probs_dropout_prob": "attention_dropout",
             "activation": "hidden_act", "ffn_bias": "mlp_bias", **LABELS, **TOKENS},
    fixed=MODERN_DECODER,
    our_defaults={"hidden_dropout_prob": 0.0},
    refuse_hf=((lambda c: getattr(c, "head_dim", None) not in (None, c.hidden_size // c.num_attention_heads),
                "`head_dim`={head_dim} != hidden_size / num_attention_heads: our heads split hidden_size"),),
    refuse_ours=(
        (lambda c: c.sliding_window is not None,
         "`sliding_window`={sliding_window}: Llama attends to every earlier token (Mistral and Qwen2 take a window)"),
        (lambda c: option(c, "attention_output_bias") != c.attention_bias,
         "`attention_output_bias`={attention_output_bias} != `attention_bias`={attention_bias}: Llama has one bias "
         "switch for q, k, v and o (Qwen2 fits q/k/v-only)"),
    ),
    from_hf=modern_from_hf,
    to_hf=lambda config, problems: {"rope_parameters": rope_to_hf(config),
                                    "head_dim": config.hidden_size // config.num_attention_heads},
    weights=MODERN_WEIGHTS,
    classes=decoder_classes("Llama"),
)

QWEN2 = replace(  # Llama's blocks with a bias on q, k and v (none on o, none in the MLP), some layers with a window
    LLAMA, name="Qwen2", hf_config="Qwen2Config",
    renames={k: v for k, v in LLAMA.renames.items() if k not in ("attention_bias", "ffn_bias")},
    fixed={**MODERN_DECODER, "attention_bias": True, "attention_output_bias": False, "ffn_bias": False},
    refuse_ours=(),
    to_hf=lambda config, problems: {"rope_parameters": rope_to_hf(config), **qwen2_window_to_hf(config)},
    classes=decoder_classes("Qwen2"),
)

MISTRAL = replace(  # Llama's blocks without biases, with its sliding window if any (7B v0.1: 4096; v0.2 on: none)
    QWEN2, name="Mistral", hf_config="MistralConfig",
    fixed={**MODERN_DECODER, "attention_bias": False, "ffn_bias": False},
    refuse_ours=(
        (lambda c: len(set(c.attention_layer_types())) > 1,
         "`layer_types`={layer_types}: Mistral's window applies to every layer (Qwen2 fits)"),
        (lambda c: option(c, "attention_output_bias"), "`attention_output_bias`=True: Mistral has no biases"),
    ),
    to_hf=lambda config, problems: {"rope_parameters": rope_to_hf(config), "sliding_window": config.sliding_window,
                                    "head_dim": config.hidden_size // config.num_attention_heads},
    classes=decoder_classes("Mistral"),
)

#: Every spec, in the order `to_hf` tries them for one of our classes (the first whose config accepts ours wins).
SPECS: tuple[Spec, ...] = (GPT2, LLAMA, QWEN2, MISTRAL, BERT, BART, MARIAN)


def conversions() -> dict[str, str]:
    """{HF class name: our class name} for every class pair of every spec."""
    return {head.hf: head.ours for spec in SPECS for head in spec.classes}
