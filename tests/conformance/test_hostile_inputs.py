"""Hostile input, tried systematically with hypothesis, over all four families.

Valid configs of every family (random sizes and options): forward, loss and generate run and give finite numbers of
the right shapes, also under fp16/bf16 autocast. Invalid configs and inputs (encoder and decoder side): each raises
ValueError/TypeError naming the field — never an IndexError/RuntimeError from inside torch. docs/robustness.md lists
every case tried and what it gets.

Adding a family is one entry in FAMILIES: its name in the tests' family table (tests/families.py: its config class and
model classes), a config strategy, and the family's own invalid config values; each model class gets its inputs from
INPUTS by the task its name ends in.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch
from families import FAMILIES as REGISTRY
from families import family_of
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from scratchformers import (
    ScratchBertConfig,
    ScratchBertForMaskedLM,
    ScratchBertForQuestionAnswering,
    ScratchBertForTokenClassification,
    ScratchGPTConfig,
    ScratchGPTForCausalLM,
    ScratchGPTForSequenceClassification,
    ScratchRNNConfig,
    ScratchRNNForConditionalGeneration,
    ScratchTransformerConfig,
)
from scratchformers.configuration_common import ACTIVATION_CHOICES, NORM_PLACEMENT_CHOICES, POSITION_EMBEDDING_CHOICES
from scratchformers.recurrent import ATTENTION_CHOICES, CELL_CHOICES, LUONG_SCORE_CHOICES
from scratchformers.seq2seq import shift_tokens_right


def _settings(n: int) -> settings:
    return settings(max_examples=n, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


SETTINGS = _settings(12)


# ---- valid configs --------------------------------------------------------------------------------------------------


def _shared_options(draw) -> dict:
    """Random tiny values of every option the shared ScratchConfig offers (GPT, BERT, Transformer)."""
    heads = draw(st.sampled_from([1, 2, 4]))
    return dict(
        vocab_size=draw(st.integers(4, 40)),
        hidden_size=heads * draw(st.sampled_from([2, 4, 8])),
        num_hidden_layers=draw(st.integers(1, 2)),
        num_attention_heads=heads,
        intermediate_size=draw(st.integers(1, 24)),
        max_position_embeddings=draw(st.integers(2, 12)),
        activation=draw(st.sampled_from(ACTIVATION_CHOICES)),
        norm_placement=draw(st.sampled_from(NORM_PLACEMENT_CHOICES)),
        position_embedding_type=draw(st.sampled_from(POSITION_EMBEDDING_CHOICES)),
        scale_embedding=draw(st.booleans()),
        embedding_layer_norm=draw(st.booleans()),
        attention_bias=draw(st.booleans()),
        ffn_bias=draw(st.booleans()),
        tie_word_embeddings=draw(st.booleans()),
        num_labels=draw(st.integers(1, 4)),
        hidden_dropout_prob=draw(st.sampled_from([0.0, 0.1])),
        attention_probs_dropout_prob=draw(st.sampled_from([0.0, 0.1])),
        pad_token_id=0,
        eos_token_id=None,
    )


@st.composite
def gpt_configs(draw) -> ScratchGPTConfig:
    return ScratchGPTConfig(**_shared_options(draw))


@st.composite
def bert_configs(draw) -> ScratchBertConfig:
    return ScratchBertConfig(**_shared_options(draw), type_vocab_size=draw(st.integers(0, 2)),
                             add_pooling_layer=draw(st.booleans()),
                             classifier_dropout=draw(st.sampled_from([None, 0.0, 0.2])))


@st.composite
def transformer_configs(draw) -> ScratchTransformerConfig:
    return ScratchTransformerConfig(**_shared_options(draw), encoder_layers=draw(st.integers(1, 2)),
                                    decoder_layers=draw(st.integers(1, 2)))


@st.composite
def rnn_configs(draw) -> ScratchRNNConfig:
    bidirectional = draw(st.booleans())
    return ScratchRNNConfig(
        vocab_size=draw(st.integers(4, 40)),
        hidden_size=draw(st.sampled_from([2, 4, 8, 12])) + (0 if bidirectional else draw(st.integers(0, 1))),
        num_hidden_layers=draw(st.integers(1, 2)),
        cell=draw(st.sampled_from(CELL_CHOICES)),
        attention=draw(st.sampled_from(ATTENTION_CHOICES)),
        luong_score=draw(st.sampled_from(LUONG_SCORE_CHOICES)),
        bidirectional_encoder=bidirectional,
        dropout=draw(st.sampled_from([0.0, 0.1])),
        tie_word_embeddings=draw(st.booleans()),
        pad_token_id=0,
        eos_token_id=None,
    )


def _max_length(config) -> int:
    """The longest sequence a config accepts (learned positions) or a small cap (sinusoidal, recurrent)."""
    if getattr(config, "position_embedding_type", None) == "learned":
        return config.max_position_embeddings
    return 8


@st.composite
def valid_batches(draw, config, padding_side: str = "left") -> dict:
    """A batch: `ids`, `mask` (1–3 rows of 1…max tokens, each padded by a random amount on `padding_side`, a row may
    be all padding) and a right-padded target `target`/`target_mask` (1…max tokens, at least one real) for seq2seq."""
    B = draw(st.integers(1, 3))
    T = draw(st.integers(1, _max_length(config)))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    ids = torch.randint(0, config.vocab_size, (B, T), generator=g)
    mask = torch.zeros(B, T, dtype=torch.long)
    for row in range(B):
        n = draw(st.integers(0, T))
        if padding_side == "left":
            mask[row, T - n :] = 1
        else:
            mask[row, :n] = 1
    Tt = draw(st.integers(1, _max_length(config)))
    target = torch.randint(0, config.vocab_size, (B, Tt), generator=g)
    target_mask = torch.zeros(B, Tt, dtype=torch.long)
    for row in range(B):
        target_mask[row, : draw(st.integers(1, Tt))] = 1
    return {"ids": ids.masked_fill(mask == 0, config.pad_token_id), "mask": mask,
            "target": target.masked_fill(target_mask == 0, config.pad_token_id), "target_mask": target_mask}


# ---- input builders: one per model class -----------------------------------------------------------------------------


def lm_inputs(config, b: dict) -> dict:
    """Decoder-only LM: the ids are also the labels (the model shifts them)."""
    return {"input_ids": b["ids"], "attention_mask": b["mask"], "labels": b["ids"].masked_fill(b["mask"] == 0, -100)}


def classification_inputs(config, b: dict) -> dict:
    labels = torch.arange(b["ids"].shape[0]) % config.num_labels
    return {"input_ids": b["ids"], "attention_mask": b["mask"], "labels": labels, **_token_types(config, b)}


def body_inputs(config, b: dict) -> dict:
    return {"input_ids": b["ids"], "attention_mask": b["mask"]}


def _token_types(config, b: dict) -> dict:
    if getattr(config, "type_vocab_size", 0) > 0:
        return {"token_type_ids": torch.arange(b["ids"].shape[1]).expand_as(b["ids"]) % config.type_vocab_size}
    return {}


def mlm_inputs(config, b: dict) -> dict:
    """Masked LM: every real token is a target (which ones are masked does not matter to robustness)."""
    return {"input_ids": b["ids"], "attention_mask": b["mask"], "labels": b["ids"].masked_fill(b["mask"] == 0, -100),
            **_token_types(config, b)}


def token_classification_inputs(config, b: dict) -> dict:
    labels = (b["ids"] % config.num_labels).masked_fill(b["mask"] == 0, -100)
    return {"input_ids": b["ids"], "attention_mask": b["mask"], "labels": labels, **_token_types(config, b)}


def qa_inputs(config, b: dict) -> dict:
    B, T = b["ids"].shape
    return {"input_ids": b["ids"], "attention_mask": b["mask"], "start_positions": torch.arange(B) % T,
            "end_positions": (torch.arange(B) + 1) % T, **_token_types(config, b)}


def seq2seq_label_inputs(config, b: dict) -> dict:
    """Source + labels only: the model shifts the labels into decoder inputs."""
    labels = b["target"].masked_fill(b["target_mask"] == 0, -100)
    return {"input_ids": b["ids"], "attention_mask": b["mask"], "labels": labels}


def seq2seq_decoder_inputs(config, b: dict) -> dict:
    """Source + explicit decoder_input_ids/decoder_attention_mask + labels."""
    labels = b["target"].masked_fill(b["target_mask"] == 0, -100)
    return {"input_ids": b["ids"], "attention_mask": b["mask"], "labels": labels,
            "decoder_input_ids": shift_tokens_right(labels, config.pad_token_id, config.decoder_start_token_id),
            "decoder_attention_mask": b["target_mask"]}


#: The inputs each kind of model class gets, by the end of its class name (a seq2seq model: labels only, then explicit
#: decoder inputs too).
INPUTS = {
    "ForCausalLM": (lm_inputs,),
    "ForSequenceClassification": (classification_inputs,),
    "Model": (body_inputs,),
    "ForMaskedLM": (mlm_inputs,),
    "ForTokenClassification": (token_classification_inputs,),
    "ForQuestionAnswering": (qa_inputs,),
    "ForConditionalGeneration": (seq2seq_label_inputs, seq2seq_decoder_inputs),
}


@dataclass
class Family:
    """What the property tests need of a family: its entry `of` in the tests' family table (config class, model
    classes), a strategy of valid configs, a small fixed config, where pad tokens go, and its own invalid config
    values. `with_body`: the bare body is tried too (it takes input ids alone)."""

    of: str
    configs: Callable[[], st.SearchStrategy]
    fixed: dict
    padding_side: str = "left"
    invalid_config_values: dict = field(default_factory=dict)
    with_body: bool = False

    @property
    def name(self) -> str:
        return self.config_class.model_type

    @property
    def config_class(self) -> type:
        return REGISTRY[self.of].config_class

    @property
    def seq2seq(self) -> bool:
        return self.config_class().is_encoder_decoder

    @property
    def models(self) -> list[tuple[type, Callable]]:
        """Each model class of the family with each input builder it takes."""
        family = REGISTRY[self.of]
        classes = [family.lm, *family.heads, *([family.body] if self.with_body else [])]
        return [(cls, make) for cls in classes for suffix, makes in INPUTS.items()
                if cls.__name__.endswith(suffix) for make in makes]

    @property
    def generators(self) -> list[type]:
        return [REGISTRY[self.of].lm] if REGISTRY[self.of].lm.can_generate() else []

    def __repr__(self) -> str:
        return self.name


SHARED_FIXED = dict(vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
                    max_position_embeddings=8, num_labels=3, pad_token_id=0)


SHARED_INVALID_CONFIG_VALUES = {
    "vocab_size": [0, -3, 2.5, "64", None, True],
    "hidden_size": [0, -8, 7.0, "32"],  # 7.0: not an int
    "num_hidden_layers": [0, -1, 1.5],
    "num_attention_heads": [0, -2, "4"],
    "intermediate_size": [0, -1],
    "max_position_embeddings": [0, -16],
    "hidden_dropout_prob": [-0.1, 1.0, 1.5, "0.1"],
    "attention_probs_dropout_prob": [-0.5, 1.0, 2],
    "layer_norm_eps": [0.0, -1e-5, float("nan"), float("inf")],
    "initializer_range": [-0.02, float("nan")],
    "activation": ["relu6", "GELU", "", None, 3],
    "norm_placement": ["middle", "Pre", None],
    "position_embedding_type": ["rope", "alibi", "absolute"],
    "type_vocab_size": [-1],
    "scale_embedding": ["yes", 1, None],
    "embedding_layer_norm": ["false"],
    "attention_bias": ["true", 0],
    "ffn_bias": [None],
    "tie_word_embeddings": ["no"],
    "pad_token_id": [-1, "0", 1.5],
    "bos_token_id": [-2],
    "eos_token_id": [-1, [1, -1]],
    "num_labels": [0, -2],
}

FAMILIES = [
    Family("gpt", gpt_configs, fixed=SHARED_FIXED, invalid_config_values=SHARED_INVALID_CONFIG_VALUES, with_body=True),
    Family(
        "bert", bert_configs, fixed=SHARED_FIXED, padding_side="right",
        invalid_config_values={**SHARED_INVALID_CONFIG_VALUES, "classifier_dropout": [-0.1, 1.0, "0.1"],
                               "add_pooling_layer": ["yes"]},
    ),
    Family(
        "transformer", transformer_configs, fixed=SHARED_FIXED, padding_side="right",
        invalid_config_values={**SHARED_INVALID_CONFIG_VALUES, "encoder_layers": [0, -1, 1.5],
                               "decoder_layers": [0, "2"], "decoder_start_token_id": [-1, 10**6],
                               "is_encoder_decoder": [False]},
    ),
    Family(
        "rnn", rnn_configs, fixed={"vocab_size": 16, "hidden_size": 8, "num_hidden_layers": 1, "pad_token_id": 0},
        padding_side="right",
        invalid_config_values={
            "vocab_size": [0, -3, 2.5, "64", None, True],
            "hidden_size": [0, -8, 7.0, "32"],
            "num_hidden_layers": [0, -1, 1.5],
            "cell": ["transformer", "LSTM", "rnn", None],
            "attention": ["general", "dot", "Bahdanau", 1],
            "luong_score": ["concat", None],
            "dropout": [-0.1, 1.0, "0.1"],
            "initializer_range": [-0.08, float("nan")],
            "embedding_init_std": [0.0, -1.0, float("inf")],
            "bidirectional_encoder": ["yes"],
            "tie_word_embeddings": ["no"],
            "pad_token_id": [-1, 10**6],  # 10**6: before, `AssertionError: Padding_idx must be within num_embeddings`
            "decoder_start_token_id": [-1],
        },
    ),
]
FAMILY_IDS = [f.name for f in FAMILIES]


def fixed_config(family: Family, **changes):
    """The family's small fixed config (smaller than the tests' tiny one: a learned table of 8 positions), with
    `changes`."""
    return family.config_class(**{**family.fixed, **changes})


def build(model_class, config, seed: int):
    torch.manual_seed(seed)
    return model_class(config).eval()


def float_outputs(out) -> dict[str, torch.Tensor]:
    return {k: t for k, t in out.items() if isinstance(t, torch.Tensor) and t.is_floating_point()}


def expected_logits_shape(model_class, config, inputs: dict) -> tuple[int, ...] | None:
    """The shape the main output must have, from the inputs alone (None: not a logits model)."""
    B, T = inputs["input_ids"].shape
    name = model_class.__name__
    if name.endswith(("CausalLM", "MaskedLM")):
        return (B, T, config.vocab_size)
    if name.endswith("ConditionalGeneration"):
        return (B, inputs["labels"].shape[1], config.vocab_size)
    if name.endswith("SequenceClassification"):
        return (B, config.num_labels)
    if name.endswith("TokenClassification"):
        return (B, T, config.num_labels)
    return None


# ---- valid configs: forward, loss and generate give finite numbers of the right shapes ---------------------------


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
@SETTINGS
@given(data=st.data())
def test_random_valid_config_forward_and_loss_are_finite(family, data):
    config = data.draw(family.configs())
    batch = data.draw(valid_batches(config, family.padding_side))
    for model_class, make_inputs in family.models:
        model = build(model_class, config, data.draw(st.integers(0, 100)))
        inputs = make_inputs(config, batch)
        out = model(**inputs)
        for key, tensor in float_outputs(out).items():
            assert torch.isfinite(tensor).all(), f"{model_class.__name__}.{key}: non-finite output for {config}"
        shape = expected_logits_shape(model_class, config, inputs)
        if shape is not None:
            assert tuple(out.logits.shape) == shape
        if model_class is ScratchBertForQuestionAnswering:
            assert out.start_logits.shape == out.end_logits.shape == inputs["input_ids"].shape
        if out.get("loss") is not None:
            assert out.loss.dim() == 0 and torch.isfinite(out.loss)
            out.loss.backward()  # gradients are finite too
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("family", [f for f in FAMILIES if f.generators], ids=[f.name for f in FAMILIES if f.generators])
@SETTINGS
@given(data=st.data())
def test_random_valid_config_generates_in_vocabulary_tokens(family, data):
    config = data.draw(family.configs())
    batch = data.draw(valid_batches(config, family.padding_side))
    ids, mask = batch["ids"], batch["mask"]
    learned = getattr(config, "position_embedding_type", None) == "learned"
    # the last generated token is never fed back, so a learned table of P positions allows P − T + 1 new tokens
    # (a decoder starts from one start token: P new tokens). Positions count real tokens only (left padding is not
    # given one) and the limit is on the positions, so T is the longest real prompt.
    prompt_length = 1 if family.seq2seq else ids.shape[1]
    real_length = 1 if family.seq2seq else int(mask.sum(-1).max())
    room = config.max_position_embeddings - real_length + 1 if learned else 6
    new = data.draw(st.integers(1, min(room, 6)))
    for model_class in family.generators:
        model = build(model_class, config, data.draw(st.integers(0, 100)))
        if learned:  # one more token than fits: a clear error, not a crash
            with pytest.raises(ValueError, match="max_position_embeddings"):
                model.generate(ids, attention_mask=mask, max_new_tokens=room + 1, min_new_tokens=room + 1,
                               pad_token_id=config.pad_token_id)
        do_sample = data.draw(st.booleans())
        out = model.generate(ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, do_sample=do_sample,
                             pad_token_id=config.pad_token_id)
        assert out.shape == (ids.shape[0], prompt_length + new)
        if family.seq2seq:
            assert (out[:, 0] == config.decoder_start_token_id).all()
        else:
            assert torch.equal(out[:, : ids.shape[1]], ids)
        assert int(out.min()) >= 0 and int(out.max()) < config.vocab_size


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
@_settings(6)
@given(data=st.data())
def test_autocast_with_padding_stays_finite(family, dtype, data):
    """Half-precision autocast on CPU with fully padded positions and large input embeddings: masks use the dtype's
    lowest value (not -inf) and softmax/losses run in float32, so nothing turns into NaN. A tied output layer keeps
    its unscaled copy (logits of 3·10⁴ × 3·10⁴ are out of fp16's range whatever the model does)."""
    config = data.draw(family.configs())
    batch = data.draw(valid_batches(config, family.padding_side))
    for model_class, make_inputs in family.models:
        model = build(model_class, config, 0)
        embedding, output = model.get_input_embeddings(), model.get_output_embeddings()
        if output is not None and output.weight is embedding.weight:  # fp16 logits beyond ±65504 are inf by
            output.weight = torch.nn.Parameter(embedding.weight.detach().clone())  # definition: keep their scale
        with torch.no_grad():
            embedding.weight.mul_(data.draw(st.sampled_from([1.0, 1e3, 3e4])))
        with torch.autocast("cpu", dtype=dtype):
            out = model(**make_inputs(config, batch))
        for key, tensor in float_outputs(out).items():
            assert torch.isfinite(tensor).all(), f"{model_class.__name__}.{key} under {dtype}: non-finite output"


# ---- invalid configs: ValueError/TypeError naming the field --------------------------------------------------------


def _invalid_config_cases(family: Family) -> list[tuple[str, object]]:
    return [(name, value) for name, values in family.invalid_config_values.items() for value in values]


def _names_field(name: str, message: str) -> bool:
    return name in message or (name == "hidden_size" and "num_attention_heads" in message)


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
@SETTINGS
@given(data=st.data())
def test_invalid_config_value_is_an_error_naming_the_field(family, data):
    name, value = data.draw(st.sampled_from(_invalid_config_cases(family)))
    base = data.draw(family.configs()).to_dict()
    kwargs = {k: base[k] for k in family.fixed if k not in ("num_labels", "pad_token_id")}
    kwargs[name] = value
    with pytest.raises((ValueError, TypeError)) as error:
        family.config_class(**kwargs)
    assert _names_field(name, str(error.value)), f"{name}={value!r}: message does not name the field: {error.value}"


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
def test_every_invalid_config_case_is_rejected(family):
    """The exhaustive pass over the table (hypothesis samples it; this makes sure no row is ever skipped)."""
    for name, value in _invalid_config_cases(family):
        with pytest.raises((ValueError, TypeError)) as error:
            fixed_config(family, **{name: value})
        assert _names_field(name, str(error.value)), f"{name}={value!r}: {error.value}"


# ---- invalid inputs: ValueError/TypeError naming the argument -------------------------------------------------------


def _with(inputs: dict, **changes) -> dict:
    return {**inputs, **changes}


@dataclass
class Case:
    """One way to break a valid input dict: `breaks(config, inputs)`, the error it must raise, a regex the message
    must match (the argument it names), and what it applies to (`needs`: an input key or forward parameter)."""

    name: str
    breaks: Callable
    error: type
    names: str
    needs: str = "input_ids"
    learned_only: bool = False


def _embeds(c, x, **kw):
    return _with(x, input_ids=None, inputs_embeds=torch.zeros(*x["input_ids"].shape, c.hidden_size, **kw))


INVALID_INPUTS: list[Case] = [
    Case("id = vocab_size", lambda c, x: _with(x, input_ids=x["input_ids"].clone().fill_(c.vocab_size)), ValueError,
         "`input_ids` contains id"),
    Case("id far out of range", lambda c, x: _with(x, input_ids=x["input_ids"] + 10**6), ValueError, "`input_ids`"),
    Case("negative id", lambda c, x: _with(x, input_ids=x["input_ids"] - c.vocab_size - 1), ValueError,
         "`input_ids`"),
    Case("float ids", lambda c, x: _with(x, input_ids=x["input_ids"].float()), TypeError, "`input_ids`"),
    Case("bool ids", lambda c, x: _with(x, input_ids=x["input_ids"] > 0), TypeError, "`input_ids`"),
    Case("uint8 ids", lambda c, x: _with(x, input_ids=x["input_ids"].to(torch.uint8)), TypeError, "`input_ids`"),
    Case("ids as a list", lambda c, x: _with(x, input_ids=x["input_ids"].tolist()), TypeError, "`input_ids`"),
    Case("1-D ids", lambda c, x: _with(x, input_ids=x["input_ids"][0], attention_mask=None), ValueError,
         "`input_ids`"),
    Case("3-D ids", lambda c, x: _with(x, input_ids=x["input_ids"][None]), ValueError, "`input_ids`"),
    Case("empty batch", lambda c, x: _with(x, input_ids=x["input_ids"][:0], attention_mask=None), ValueError,
         "`input_ids` is empty"),
    Case("zero-length sequence", lambda c, x: _with(x, input_ids=x["input_ids"][:, :0], attention_mask=None),
         ValueError, "`input_ids` is empty"),
    Case("no ids and no embeddings", lambda c, x: _with(x, input_ids=None), ValueError, "`input_ids`"),
    Case("mask one column short", lambda c, x: _with(x, attention_mask=x["attention_mask"][:, 1:]), ValueError,
         "`attention_mask`"),
    Case("mask with the wrong batch", lambda c, x: _with(x, attention_mask=torch.cat([x["attention_mask"]] * 2)),
         ValueError, "`attention_mask`"),
    Case("mask of 2s", lambda c, x: _with(x, attention_mask=x["attention_mask"] * 2), ValueError, "`attention_mask`"),
    Case("mask as a list", lambda c, x: _with(x, attention_mask=x["attention_mask"].tolist()), TypeError,
         "`attention_mask`"),
    Case("NaN inputs_embeds", lambda c, x: _with(_embeds(c, x), inputs_embeds=_embeds(c, x)["inputs_embeds"] / 0),
         ValueError, "`inputs_embeds`", needs="inputs_embeds"),
    Case("inputs_embeds of the wrong width",
         lambda c, x: _with(x, input_ids=None, inputs_embeds=torch.zeros(*x["input_ids"].shape, c.hidden_size + 1)),
         ValueError, "`inputs_embeds`", needs="inputs_embeds"),
    Case("integer inputs_embeds", lambda c, x: _embeds(c, x, dtype=torch.long), TypeError, "`inputs_embeds`",
         needs="inputs_embeds"),
    Case("too long for the position table",
         lambda c, x: {"input_ids": torch.zeros(1, c.max_position_embeddings + 1, dtype=torch.long)}, ValueError,
         "max_position_embeddings", learned_only=True),
    Case("position_ids out of range", lambda c, x: _with(x, position_ids=torch.full_like(x["input_ids"], 10**4)),
         ValueError, "`position_ids`", needs="position_ids", learned_only=True),  # sinusoidal: any position >= 0
    Case("negative position_ids", lambda c, x: _with(x, position_ids=torch.full_like(x["input_ids"], -1)),
         ValueError, "`position_ids`", needs="position_ids"),
    Case("position_ids of the wrong shape", lambda c, x: _with(x, position_ids=torch.zeros(5, 1, dtype=torch.long)),
         ValueError, "`position_ids`", needs="position_ids"),
    Case("float position_ids", lambda c, x: _with(x, position_ids=torch.zeros_like(x["input_ids"]).float()),
         TypeError, "`position_ids`", needs="position_ids"),
    Case("token_type_ids out of range", lambda c, x: _with(x, token_type_ids=x["token_type_ids"] + 5), ValueError,
         "`token_type_ids`", needs="token_type_ids"),
    Case("token_type_ids of the wrong shape", lambda c, x: _with(x, token_type_ids=x["token_type_ids"][:, :1].repeat(1, 99)),
         ValueError, "`token_type_ids`", needs="token_type_ids"),
    # labels: token labels (B, T) or (B, T_target), class labels (B,)
    Case("labels out of range", lambda c, x: _with(x, labels=x["labels"].clamp(min=0) + 10**4), ValueError,
         "`labels`", needs="labels"),
    Case("negative labels (not -100)", lambda c, x: _with(x, labels=torch.full_like(x["labels"], -5)), ValueError,
         "`labels`", needs="labels"),
    Case("labels of the wrong shape",
         lambda c, x: _with(x, labels=x["labels"][:1].repeat(4, *[1] * (x["labels"].dim() - 1))), ValueError,
         "`labels`", needs="labels"),
    Case("labels as a list", lambda c, x: _with(x, labels=x["labels"].tolist()), TypeError, "`labels`",
         needs="labels"),
    # extractive QA
    Case("start_positions as a list", lambda c, x: _with(x, start_positions=x["start_positions"].tolist()), TypeError,
         "`start_positions`", needs="start_positions"),
    Case("float end_positions", lambda c, x: _with(x, end_positions=x["end_positions"].float()), (TypeError, ValueError),
         "`end_positions`", needs="start_positions"),
    Case("only start_positions", lambda c, x: _with(x, end_positions=None), ValueError, "`end_positions`",
         needs="start_positions"),
    # the decoder side of seq2seq models
    Case("decoder id = vocab_size",
         lambda c, x: _with(x, decoder_input_ids=x["decoder_input_ids"].clone().fill_(c.vocab_size)), ValueError,
         "`decoder_input_ids` contains id", needs="decoder_input_ids"),
    Case("negative decoder id", lambda c, x: _with(x, decoder_input_ids=x["decoder_input_ids"] - c.vocab_size - 1),
         ValueError, "`decoder_input_ids`", needs="decoder_input_ids"),
    Case("float decoder ids", lambda c, x: _with(x, decoder_input_ids=x["decoder_input_ids"].float()), TypeError,
         "`decoder_input_ids`", needs="decoder_input_ids"),
    Case("zero-length decoder input",
         lambda c, x: _with(x, decoder_input_ids=x["decoder_input_ids"][:, :0], decoder_attention_mask=None,
                            labels=None), ValueError, "`decoder_input_ids` is empty", needs="decoder_input_ids"),
    Case("decoder batch differs from the source batch",
         lambda c, x: _with(x, decoder_input_ids=torch.cat([x["decoder_input_ids"]] * 2), decoder_attention_mask=None,
                            labels=None), ValueError, "`decoder_input_ids`", needs="decoder_input_ids"),
    Case("decoder_attention_mask one column short",
         lambda c, x: _with(x, decoder_attention_mask=x["decoder_attention_mask"][:, 1:]), ValueError,
         "`decoder_attention_mask`", needs="decoder_attention_mask"),
    Case("decoder_attention_mask with the wrong batch",
         lambda c, x: _with(x, decoder_attention_mask=torch.cat([x["decoder_attention_mask"]] * 2)), ValueError,
         "`decoder_attention_mask`", needs="decoder_attention_mask"),
    Case("decoder_attention_mask of 2s",
         lambda c, x: _with(x, decoder_attention_mask=x["decoder_attention_mask"] * 2), ValueError,
         "`decoder_attention_mask`", needs="decoder_attention_mask"),
    Case("decoder input too long for the position table",
         lambda c, x: _with(x, decoder_input_ids=torch.zeros(x["input_ids"].shape[0], c.max_position_embeddings + 1,
                                                             dtype=torch.long), decoder_attention_mask=None,
                            labels=None), ValueError, "max_position_embeddings", needs="decoder_input_ids",
         learned_only=True),
]


def _cases_for(model_class, config, inputs: dict) -> list[Case]:
    """The rows of INVALID_INPUTS that apply to this model, config and input dict."""
    parameters = inspect.signature(model_class.forward).parameters
    learned = getattr(config, "position_embedding_type", None) == "learned"
    cases = []
    for case in INVALID_INPUTS:
        if case.needs not in inputs and case.needs not in parameters:
            continue
        if case.needs in ("labels", "token_type_ids", "start_positions", "decoder_input_ids",
                          "decoder_attention_mask") and case.needs not in inputs:
            continue
        if case.learned_only and not learned:
            continue
        if case.needs == "labels" and inputs["labels"].dim() == 1 and config.num_labels == 1:
            continue  # regression: any float is a target
        cases.append(case)
    return cases


def _assert_rejected(model, case: Case, config, inputs: dict) -> None:
    with pytest.raises((ValueError, TypeError)) as error:
        model(**case.breaks(config, inputs))
    assert isinstance(error.value, case.error), f"{case.name}: {type(error.value).__name__}: {error.value}"
    assert type(error.value) in (ValueError, TypeError), f"{case.name}: {type(error.value)}"
    import re

    assert re.search(case.names, str(error.value)), f"{case.name}: the message does not name {case.names}: {error.value}"


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
@_settings(20)
@given(data=st.data())
def test_invalid_input_is_an_error_naming_the_argument(family, data):
    config = data.draw(family.configs())
    batch = data.draw(valid_batches(config, family.padding_side))
    model_class, make_inputs = data.draw(st.sampled_from(family.models))
    inputs = make_inputs(config, batch)
    case = data.draw(st.sampled_from(_cases_for(model_class, config, inputs)))
    _assert_rejected(build(model_class, config, 0), case, config, inputs)


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
@pytest.mark.parametrize("position_embedding_type", ["learned", "sinusoidal"])
def test_every_invalid_input_case_is_rejected(family, position_embedding_type):
    """Each row of the table once per model class, on a fixed config (hypothesis samples rows; this pins that none
    is skipped)."""
    if family.name == "scratch_rnn" and position_embedding_type == "sinusoidal":
        pytest.skip("the recurrent family has no positions")
    extra = {} if family.name == "scratch_rnn" else {"position_embedding_type": position_embedding_type}
    config = fixed_config(family, **extra)
    g = torch.Generator().manual_seed(0)
    batch = {"ids": torch.randint(1, 16, (2, 5), generator=g), "mask": torch.ones(2, 5, dtype=torch.long),
             "target": torch.randint(1, 16, (2, 4), generator=g), "target_mask": torch.ones(2, 4, dtype=torch.long)}
    for model_class, make_inputs in family.models:
        model = build(model_class, config, 0)
        inputs = make_inputs(config, batch)
        for case in _cases_for(model_class, config, inputs):
            _assert_rejected(model, case, config, inputs)


@pytest.mark.parametrize("family", [f for f in FAMILIES if f.generators], ids=[f.name for f in FAMILIES if f.generators])
def test_generate_rejects_empty_and_out_of_range_prompts(family):
    extra = {} if family.name == "scratch_rnn" else {"position_embedding_type": "learned"}
    config = fixed_config(family, **extra)
    for model_class in family.generators:
        model = build(model_class, config, 0)
        with pytest.raises(ValueError, match="input_ids.*empty"):
            model.generate(torch.zeros(2, 0, dtype=torch.long), max_new_tokens=2)
        with pytest.raises(ValueError, match="input_ids.*outside the vocabulary"):
            model.generate(torch.full((1, 3), 99), max_new_tokens=2)
        with pytest.raises(ValueError, match="input_ids.*outside the vocabulary"):
            model.generate(torch.full((1, 3), -1), max_new_tokens=2)
        if family.name != "scratch_rnn":  # a learned table of 8 positions: 9 tokens do not fit
            length = 6 if not family.seq2seq else 1
            with pytest.raises(ValueError, match="max_position_embeddings"):
                model.generate(torch.ones(1, length, dtype=torch.long), max_new_tokens=9 - length + 1,
                               min_new_tokens=9 - length + 1)


def test_loss_without_labelled_tokens_is_zero_not_nan():
    """A one-token sequence has nothing to predict (or every label is -100): the loss is 0 with zero gradients."""
    config = fixed_config(FAMILIES[0])
    model = build(ScratchGPTForCausalLM, config, 0)
    for ids, labels in [(torch.tensor([[3]]), torch.tensor([[3]])), (torch.tensor([[3, 4]]), torch.tensor([[-100] * 2]))]:
        loss = model(ids, labels=labels).loss
        assert loss.item() == 0.0
        loss.backward()
        assert all(float(p.grad.abs().max()) == 0.0 for p in model.parameters() if p.grad is not None)


def test_regression_loss_with_one_example_is_the_squared_error():
    config = fixed_config(FAMILIES[0], num_labels=1)
    model = build(ScratchGPTForSequenceClassification, config, 0)
    out = model(torch.tensor([[3, 4]]), labels=torch.tensor([2.0]))
    torch.testing.assert_close(out.loss, (out.logits.reshape(()) - 2.0) ** 2)
    assert math.isfinite(out.loss.item())


# ---- regressions: the failing examples the properties found, pinned ------------------------------------------------


def _seq2seq(family_name: str, **changes):
    family = next(f for f in FAMILIES if f.name == family_name)
    model_class = family.generators[0]
    return build(model_class, fixed_config(family, **changes), 0)


@pytest.mark.parametrize("head", [c for f in REGISTRY.values() for c in (f.lm, *f.heads)
                                  if "labels" in inspect.signature(c.forward).parameters], ids=lambda c: c.__name__)
def test_regression_labels_that_are_not_a_tensor_are_a_type_error_naming_labels(head):
    """Before (sequence classification with num_labels > 1 and no problem_type): `AttributeError: 'list' object has
    no attribute 'dtype'` from the problem-type inference, which read labels.dtype before the type check."""
    family = family_of(head)
    model = head(family.config(num_labels=3)).eval()
    assert model.config.problem_type is None
    ids = torch.tensor([[3, 4, 5]])
    with pytest.raises(TypeError, match=r"`labels` must be (a|an integer) torch\.Tensor"):
        model(ids, labels=[[3, 4, 5]] if head is family.lm or "Token" in head.__name__ else [1])


@pytest.mark.parametrize("family_name", ["scratch_transformer", "scratch_rnn"])
def test_regression_labels_are_checked_before_they_are_shifted_into_decoder_inputs(family_name):
    """Before: an out-of-range label was reported as `decoder_input_ids` (RNN) or `input_ids` (Transformer) — the
    tensor it had been shifted into — and a list of labels gave a ValueError about its shape."""
    model = _seq2seq(family_name)
    src = torch.tensor([[3, 4, 5]])
    with pytest.raises(ValueError, match=r"`labels` contains 99, outside \[0, 15\]"):
        model(src, labels=torch.tensor([[99, 4]]))
    with pytest.raises(ValueError, match="`labels` contains -5"):
        model(src, labels=torch.tensor([[-5, 4]]))
    with pytest.raises(TypeError, match="`labels` must be a torch.Tensor, got list"):
        model(src, labels=[[3, 4]])
    assert torch.isfinite(model(src, labels=torch.tensor([[3, -100]])).loss)  # -100 stays allowed


@pytest.mark.parametrize("family_name", ["scratch_transformer", "scratch_rnn"])
def test_regression_decoder_batch_differing_from_the_source_batch_is_a_value_error(family_name):
    """Before (Transformer): `RuntimeError: The size of tensor a (4) must match the size of tensor b (2)` from inside
    the cross-attention."""
    model = _seq2seq(family_name)
    src = torch.tensor([[3, 4, 5], [6, 7, 8]])
    with pytest.raises(ValueError, match=r"decoder batch \(4.*`decoder_input_ids`.*`labels`.*encoder batch.*\(2\)"):
        model(src, labels=torch.ones(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"decoder batch \(1.*encoder batch.*\(2\)"):
        model(src, decoder_input_ids=torch.ones(1, 2, dtype=torch.long))


def test_regression_transformer_decoder_errors_name_the_decoder_arguments():
    """Before: a bad decoder input was reported as `input_ids` / `attention_mask` (the names inside the shared stack),
    pointing the user at the source."""
    model = _seq2seq("scratch_transformer")
    src, tgt = torch.tensor([[3, 4, 5]]), torch.tensor([[1, 2]])
    with pytest.raises(ValueError, match="`decoder_input_ids` contains id 17"):
        model(src, decoder_input_ids=tgt + 15)
    with pytest.raises(ValueError, match=r"`decoder_attention_mask` must have shape .* = \(1, 2\), got \(1, 3\)"):
        model(src, decoder_input_ids=tgt, decoder_attention_mask=torch.ones(1, 3))
    with pytest.raises(ValueError, match=r"`attention_mask` must have shape .* = \(1, 3\), got \(1, 2\)"):
        model(src, attention_mask=torch.ones(1, 2), decoder_input_ids=tgt)  # the source mask keeps its own name


def test_regression_rnn_checks_the_decoder_attention_mask_it_does_not_use():
    """Before: `decoder_attention_mask` was never passed to the body, so any tensor (or a list) was silently accepted."""
    model = _seq2seq("scratch_rnn")
    src, tgt = torch.tensor([[3, 4, 5]]), torch.tensor([[1, 2]])
    reference = model(src, decoder_input_ids=tgt).logits
    torch.testing.assert_close(model(src, decoder_input_ids=tgt, decoder_attention_mask=torch.ones(1, 2)).logits,
                               reference)  # a correct one changes nothing
    for bad in (torch.ones(1, 3), torch.ones(2, 2), torch.full((1, 2), 2)):
        with pytest.raises(ValueError, match="`decoder_attention_mask`"):
            model(src, decoder_input_ids=tgt, decoder_attention_mask=bad)


@pytest.mark.parametrize("attention", [None, "bahdanau", "luong"])
def test_regression_rnn_lstm_runs_under_cpu_float16_autocast(attention):
    """Before: `RuntimeError: could not create a primitive descriptor for the LSTM forward propagation primitive`
    (torch has no CPU float16 LSTM kernel); the LSTM now runs in float32 there and matches the float32 model."""
    model = _seq2seq("scratch_rnn", cell="lstm", attention=attention, bidirectional_encoder=True)
    src, mask = torch.tensor([[3, 4, 5], [6, 7, 0]]), torch.tensor([[1, 1, 1], [1, 1, 0]])
    labels = torch.tensor([[1, 2, 3], [4, 5, -100]])
    reference = model(src, attention_mask=mask, labels=labels).loss
    with torch.autocast("cpu", dtype=torch.float16):
        out = model(src, attention_mask=mask, labels=labels)
        generated = model.generate(src, attention_mask=mask, max_new_tokens=3, min_new_tokens=3)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.loss)
    torch.testing.assert_close(out.loss, reference, atol=2e-2, rtol=2e-2)  # only the non-LSTM parts ran in fp16
    assert generated.shape == (2, 4)


_AVX2_ONLY_BF16_AUTOCAST = """
import torch
from scratchformers import ScratchRNNConfig, ScratchRNNForConditionalGeneration
torch.manual_seed(0)
config = ScratchRNNConfig(vocab_size=16, hidden_size=8, num_hidden_layers=2, cell="lstm", attention="{attention}",
                          bidirectional_encoder=True, dropout=0.0, pad_token_id=0, bos_token_id=1, eos_token_id=2)
model = ScratchRNNForConditionalGeneration(config).eval()
src, mask = torch.tensor([[3, 4, 5], [6, 7, 0]]), torch.tensor([[1, 1, 1], [1, 1, 0]])
labels = torch.tensor([[1, 2, 3], [4, 5, -100]])
reference = model(src, attention_mask=mask, labels=labels).loss
with torch.autocast("cpu", dtype=torch.bfloat16):
    out = model(src, attention_mask=mask, labels=labels)
    generated = model.generate(src, attention_mask=mask, max_new_tokens=3, min_new_tokens=3)
assert out.logits.dtype == torch.bfloat16, out.logits.dtype  # the rest of the model still ran in bfloat16
assert torch.isfinite(out.logits).all() and generated.shape == (2, 4)
# bfloat16 keeps 8 significant bits (relative step 2^-8 = 3.9e-3); a loss of ~2.8 over a few bf16 layers moves by a
# few such steps, so 3e-2 separates rounding from a wrong computation (a wrong state or mask moves it by > 0.1).
torch.testing.assert_close(out.loss.float(), reference, atol=3e-2, rtol=3e-2)
print("ok")
"""


@pytest.mark.parametrize("attention", ["none", "bahdanau"])
def test_regression_rnn_lstm_runs_under_bf16_autocast_on_an_avx2_only_cpu(attention):
    """Before: on a CPU without AVX-512-BF16 (most laptops), bf16 autocast on an LSTM ended in oneDNN's
    `RuntimeError: could not create a primitive descriptor for the LSTM forward propagation primitive`. The recurrence
    now runs in float32 where the CPU has no bf16 LSTM kernel, the rest in bf16. `ONEDNN_MAX_CPU_ISA=AVX2` makes any
    x86 machine behave like such a CPU, in a fresh process (oneDNN reads it once)."""
    import os
    import subprocess
    import sys

    code = _AVX2_ONLY_BF16_AUTOCAST.format(attention=attention).replace('"none"', "None")
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


@pytest.mark.parametrize(("family_name", "name", "value"), [
    ("scratch_rnn", "tie_word_embeddings", "no"),  # before: accepted, and "no" is truthy — the weights were tied
    ("scratch_rnn", "bidirectional_encoder", "yes"),
    ("scratch_rnn", "pad_token_id", -1),
    ("scratch_rnn", "pad_token_id", 16),  # before: AssertionError from nn.Embedding (padding_idx) at construction
    ("scratch_rnn", "decoder_start_token_id", -1),
    ("scratch_rnn", "initializer_range", float("nan")),
    ("scratch_rnn", "embedding_init_std", 0.0),
    ("scratch_bert", "add_pooling_layer", "yes"),
    ("scratch_transformer", "num_hidden_layers", 0),  # before: reported as `encoder_layers`
])
def test_regression_config_values_accepted_or_misnamed_before(family_name, name, value):
    family = next(f for f in FAMILIES if f.name == family_name)
    with pytest.raises(ValueError, match=f"`{name}`"):
        fixed_config(family, **{name: value})


def test_regression_bert_labels_and_positions_of_the_wrong_type_are_type_errors():
    """Before: `start_positions` as a list → `AttributeError: 'list' object has no attribute 'dtype'`; token labels as
    a list → ValueError."""
    family = next(f for f in FAMILIES if f.name == "scratch_bert")
    config = fixed_config(family)
    ids = torch.tensor([[2, 3, 4]])
    with pytest.raises(TypeError, match="`start_positions` must be a torch.Tensor"):
        build(ScratchBertForQuestionAnswering, config, 0)(ids, start_positions=[0], end_positions=torch.tensor([1]))
    for model_class in (ScratchBertForMaskedLM, ScratchBertForTokenClassification):
        with pytest.raises(TypeError, match="`labels`"):
            build(model_class, config, 0)(ids, labels=[[0, 1, 2]])


@pytest.mark.parametrize("model_class", [REGISTRY["gpt"].lm, REGISTRY["gpt"].body, REGISTRY["bert"].lm,
                                         ScratchBertForQuestionAnswering, REGISTRY["rnn"].lm],
                         ids=lambda c: c.__name__)
def test_a_misspelt_keyword_argument_is_named_not_ignored(model_class):
    model = model_class(family_of(model_class).config()).eval()
    ids = torch.randint(3, model.config.vocab_size, (1, 5))
    extra = {"decoder_input_ids": ids} if isinstance(model, ScratchRNNForConditionalGeneration) else {}
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['attention_masks'\].*'attention_mask'"):
        model(input_ids=ids, attention_masks=torch.ones_like(ids), **extra)
    # what transformers itself passes (Trainer's num_items_in_batch, generate()'s cache_position) is accepted
    out = model(input_ids=ids, num_items_in_batch=3, cache_position=torch.arange(5), **extra)
    reference = model(input_ids=ids, **extra)
    assert torch.equal(out[0], reference[0])
