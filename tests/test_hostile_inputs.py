"""Hostile input, tried systematically with hypothesis.

Valid configs of every family (random sizes and options): forward, loss and generate run and give finite numbers,
also under fp16/bf16 autocast. Invalid configs and inputs: each raises ValueError/TypeError naming the field —
never an IndexError/RuntimeError from inside torch. docs/robustness.md lists every case tried and what it gets.

Adding a family is one entry in FAMILIES.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from scratchformers import (
    ScratchGPTConfig,
    ScratchGPTForCausalLM,
    ScratchGPTForSequenceClassification,
    ScratchGPTModel,
)
from scratchformers.configuration_common import ACTIVATION_CHOICES, NORM_PLACEMENT_CHOICES, POSITION_EMBEDDING_CHOICES

SETTINGS = settings(max_examples=15, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def lm_inputs(config, ids: torch.Tensor, mask: torch.Tensor) -> dict:
    """Inputs of a decoder-only LM: the ids are also the labels (the model shifts them)."""
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def classification_inputs(config, ids: torch.Tensor, mask: torch.Tensor) -> dict:
    labels = torch.arange(ids.shape[0]) % config.num_labels
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def body_inputs(config, ids: torch.Tensor, mask: torch.Tensor) -> dict:
    return {"input_ids": ids, "attention_mask": mask}


@dataclass
class Family:
    """What the property tests need of a family: its config, its model classes with an input builder each, and which
    of them generate. `padding_side` is where pad tokens go for that family's inputs."""

    config_class: type
    models: list[tuple[type, Callable]]
    generators: list[type] = field(default_factory=list)
    padding_side: str = "left"


FAMILIES = [
    Family(
        ScratchGPTConfig,
        [(ScratchGPTForCausalLM, lm_inputs), (ScratchGPTForSequenceClassification, classification_inputs),
         (ScratchGPTModel, body_inputs)],
        generators=[ScratchGPTForCausalLM],
    ),
]
FAMILY_IDS = [f.config_class.model_type for f in FAMILIES]


@st.composite
def valid_configs(draw, config_class):
    """Random tiny configs over every option the shared config offers."""
    heads = draw(st.sampled_from([1, 2, 4]))
    return config_class(
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
def valid_batches(draw, config, padding_side: str = "left"):
    """(ids, mask): 1–3 rows of 1…max_position_embeddings tokens, each row padded by a random amount (a row may be
    all padding)."""
    B = draw(st.integers(1, 3))
    T = draw(st.integers(1, config.max_position_embeddings))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, config.vocab_size, (B, T), generator=g)
    real = [draw(st.integers(0, T)) for _ in range(B)]
    mask = torch.zeros(B, T, dtype=torch.long)
    for row, n in enumerate(real):
        if padding_side == "left":
            mask[row, T - n :] = 1
        else:
            mask[row, :n] = 1
    return ids.masked_fill(mask == 0, config.pad_token_id), mask


def build(model_class, config, seed: int):
    torch.manual_seed(seed)
    return model_class(config).eval()


def finite_outputs(out) -> list[torch.Tensor]:
    return [t for t in out.values() if isinstance(t, torch.Tensor) and t.is_floating_point()]


# ---- valid configs: forward, loss and generate give finite numbers ------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
@SETTINGS
@given(data=st.data())
def test_random_valid_config_forward_and_loss_are_finite(family, data):
    config = data.draw(valid_configs(family.config_class))
    ids, mask = data.draw(valid_batches(config, family.padding_side))
    for model_class, make_inputs in family.models:
        model = build(model_class, config, data.draw(st.integers(0, 100)))
        inputs = make_inputs(config, ids, mask)
        out = model(**inputs)
        for tensor in finite_outputs(out):
            assert torch.isfinite(tensor).all(), f"{model_class.__name__}: non-finite output for {config}"
        if "labels" in inputs:
            assert out.loss.dim() == 0 and torch.isfinite(out.loss)
            out.loss.backward()  # gradients are finite too
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
@SETTINGS
@given(data=st.data())
def test_random_valid_config_generates_in_vocabulary_tokens(family, data):
    config = data.draw(valid_configs(family.config_class))
    ids, mask = data.draw(valid_batches(config, family.padding_side))
    # the last generated token is never fed back, so a learned table of P positions allows P − T + 1 new tokens
    room = config.max_position_embeddings - ids.shape[1] + 1
    new = data.draw(st.integers(1, room))
    for model_class in family.generators:
        model = build(model_class, config, data.draw(st.integers(0, 100)))
        if config.position_embedding_type == "learned":  # one more token than fits: a clear error, not a crash
            with pytest.raises(ValueError, match="max_position_embeddings"):
                model.generate(ids, attention_mask=mask, max_new_tokens=room + 1, min_new_tokens=room + 1,
                               pad_token_id=config.pad_token_id)
        do_sample = data.draw(st.booleans())
        out = model.generate(ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, do_sample=do_sample,
                             pad_token_id=config.pad_token_id)
        assert out.shape == (ids.shape[0], ids.shape[1] + new)
        assert torch.equal(out[:, : ids.shape[1]], ids)
        assert int(out.min()) >= 0 and int(out.max()) < config.vocab_size


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
@settings(max_examples=8, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate], suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_autocast_with_padding_stays_finite(family, dtype, data):
    """Half-precision autocast with fully padded positions and large embeddings: masks use the dtype's lowest
    value (not -inf) and softmax runs in float32, so nothing turns into NaN."""
    config = data.draw(valid_configs(family.config_class))
    ids, mask = data.draw(valid_batches(config, family.padding_side))
    for model_class, make_inputs in family.models:
        model = build(model_class, config, 0)
        with torch.no_grad():
            model.get_input_embeddings().weight.mul_(data.draw(st.sampled_from([1.0, 1e3, 3e4])))
        with torch.autocast("cpu", dtype=dtype):
            out = model(**make_inputs(config, ids, mask))
        for tensor in finite_outputs(out):
            assert torch.isfinite(tensor).all(), f"{model_class.__name__} under {dtype}: non-finite output"


# ---- invalid configs: ValueError naming the field ------------------------------------------------------------------

INVALID_CONFIG_VALUES = {
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
INVALID_CONFIG_CASES = [(name, value) for name, values in INVALID_CONFIG_VALUES.items() for value in values]


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
@SETTINGS
@given(case=st.sampled_from(INVALID_CONFIG_CASES), data=st.data())
def test_invalid_config_value_is_an_error_naming_the_field(family, case, data):
    name, value = case
    base = data.draw(valid_configs(family.config_class)).to_dict()
    kwargs = {k: base[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                   "intermediate_size", "max_position_embeddings")}
    kwargs[name] = value
    with pytest.raises((ValueError, TypeError)) as error:
        family.config_class(**kwargs)
    assert name in str(error.value) or (name == "hidden_size" and "num_attention_heads" in str(error.value)), (
        f"{name}={value!r}: message does not name the field: {error.value}"
    )


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
def test_every_invalid_config_case_is_rejected(family):
    """The exhaustive pass over the table (hypothesis samples it; this makes sure no row is ever skipped)."""
    base = dict(vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
                max_position_embeddings=8)
    for name, value in INVALID_CONFIG_CASES:
        with pytest.raises((ValueError, TypeError), match=name if name != "hidden_size" else "hidden_size|heads"):
            family.config_class(**{**base, name: value})


# ---- invalid inputs: ValueError/TypeError naming the argument -------------------------------------------------------


def _with(inputs: dict, **changes) -> dict:
    return {**inputs, **changes}


# (case, how to break a valid input dict, expected error, the argument the message must name)
INVALID_INPUTS: list[tuple[str, Callable, type, str]] = [
    ("id = vocab_size", lambda c, x: _with(x, input_ids=x["input_ids"].clone().fill_(c.vocab_size)), ValueError,
     "input_ids"),
    ("id far out of range", lambda c, x: _with(x, input_ids=x["input_ids"] + 10**6), ValueError, "input_ids"),
    ("negative id", lambda c, x: _with(x, input_ids=x["input_ids"] - c.vocab_size - 1), ValueError, "input_ids"),
    ("float ids", lambda c, x: _with(x, input_ids=x["input_ids"].float()), TypeError, "input_ids"),
    ("bool ids", lambda c, x: _with(x, input_ids=x["input_ids"] > 0), TypeError, "input_ids"),
    ("uint8 ids", lambda c, x: _with(x, input_ids=x["input_ids"].to(torch.uint8)), TypeError, "input_ids"),
    ("ids as a list", lambda c, x: _with(x, input_ids=x["input_ids"].tolist()), TypeError, "input_ids"),
    ("1-D ids", lambda c, x: _with(x, input_ids=x["input_ids"][0], attention_mask=None), ValueError, "input_ids"),
    ("3-D ids", lambda c, x: _with(x, input_ids=x["input_ids"][None]), ValueError, "input_ids"),
    ("empty batch", lambda c, x: _with(x, input_ids=x["input_ids"][:0], attention_mask=None), ValueError,
     "input_ids"),
    ("zero-length sequence", lambda c, x: _with(x, input_ids=x["input_ids"][:, :0], attention_mask=None),
     ValueError, "input_ids"),
    ("no ids and no embeddings", lambda c, x: _with(x, input_ids=None), ValueError, "input_ids"),
    ("mask one column short", lambda c, x: _with(x, attention_mask=x["attention_mask"][:, 1:]), ValueError,
     "attention_mask"),
    ("mask with the wrong batch", lambda c, x: _with(x, attention_mask=torch.cat([x["attention_mask"]] * 2)),
     ValueError, "attention_mask"),
    ("mask of 2s", lambda c, x: _with(x, attention_mask=x["attention_mask"] * 2), ValueError, "attention_mask"),
    ("mask as a list", lambda c, x: _with(x, attention_mask=x["attention_mask"].tolist()), TypeError,
     "attention_mask"),
    ("position_ids out of range", lambda c, x: _with(x, position_ids=torch.full_like(x["input_ids"], 10**4)),
     ValueError, "position_ids"),
    ("negative position_ids", lambda c, x: _with(x, position_ids=torch.full_like(x["input_ids"], -1)), ValueError,
     "position_ids"),
    ("position_ids of the wrong shape", lambda c, x: _with(x, position_ids=torch.zeros(5, 1, dtype=torch.long)),
     ValueError, "position_ids"),
    ("float position_ids", lambda c, x: _with(x, position_ids=torch.zeros_like(x["input_ids"]).float()), TypeError,
     "position_ids"),
    ("NaN inputs_embeds", lambda c, x: _with(x, input_ids=None,
                                             inputs_embeds=torch.full((*x["input_ids"].shape, c.hidden_size), float("nan"))),
     ValueError, "inputs_embeds"),
    ("inputs_embeds of the wrong width", lambda c, x: _with(x, input_ids=None,
                                                            inputs_embeds=torch.zeros(*x["input_ids"].shape, c.hidden_size + 1)),
     ValueError, "inputs_embeds"),
    ("integer inputs_embeds", lambda c, x: _with(x, input_ids=None,
                                                 inputs_embeds=torch.zeros(*x["input_ids"].shape, c.hidden_size, dtype=torch.long)),
     TypeError, "inputs_embeds"),
]
TOO_LONG = ("too long for the position table",
            lambda c, x: _with(x, input_ids=torch.zeros(1, c.max_position_embeddings + 1, dtype=torch.long),
                               attention_mask=None, labels=None),
            ValueError, "max_position_embeddings")
LABEL_CASES: list[tuple[str, Callable, type, str]] = [
    ("labels out of range", lambda c, x: _with(x, labels=x["labels"].clamp(min=0) + 10**4), ValueError, "labels"),
    ("negative labels (not -100)", lambda c, x: _with(x, labels=torch.full_like(x["labels"], -5)), ValueError,
     "labels"),
    ("labels of the wrong shape", lambda c, x: _with(x, labels=x["labels"][:1].repeat(4, *[1] * (x["labels"].dim() - 1))),
     ValueError, "labels"),
    ("labels as a list", lambda c, x: _with(x, labels=x["labels"].tolist()), TypeError, "labels"),
]


def _cases_for(config, inputs: dict) -> list[tuple[str, Callable, type, str]]:
    cases = list(INVALID_INPUTS)
    if config.position_embedding_type == "learned":
        cases.append(TOO_LONG)
    if "labels" in inputs and config.num_labels > 1 or "labels" in inputs and inputs["labels"].dim() == 2:
        cases += LABEL_CASES
    return cases


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
@settings(max_examples=25, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate], suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_invalid_input_is_an_error_naming_the_argument(family, data):
    config = data.draw(valid_configs(family.config_class))
    ids, mask = data.draw(valid_batches(config, family.padding_side))
    model_class, make_inputs = data.draw(st.sampled_from(family.models))
    inputs = make_inputs(config, ids, mask)
    name, breaks, error_type, argument = data.draw(st.sampled_from(_cases_for(config, inputs)))
    model = build(model_class, config, 0)
    with pytest.raises((ValueError, TypeError)) as error:
        model(**breaks(config, inputs))
    assert isinstance(error.value, error_type), f"{name}: {type(error.value).__name__}: {error.value}"
    assert argument in str(error.value), f"{name}: the message does not name `{argument}`: {error.value}"


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
def test_every_invalid_input_case_is_rejected(family):
    """Each row of the table once, on a fixed config (hypothesis samples rows; this pins that none is skipped)."""
    config = family.config_class(vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=8, max_position_embeddings=8, num_labels=3, pad_token_id=0)
    ids = torch.randint(1, 16, (2, 5))
    mask = torch.ones_like(ids)
    for model_class, make_inputs in family.models:
        model = build(model_class, config, 0)
        inputs = make_inputs(config, ids, mask)
        for name, breaks, error_type, argument in _cases_for(config, inputs):
            with pytest.raises(error_type, match=argument) as error:
                model(**breaks(config, inputs))
            assert type(error.value) in (ValueError, TypeError), (model_class.__name__, name)


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
def test_generate_rejects_empty_and_out_of_range_prompts(family):
    config = family.config_class(vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=8, max_position_embeddings=8, pad_token_id=0)
    for model_class in family.generators:
        model = build(model_class, config, 0)
        with pytest.raises(ValueError, match="input_ids.*empty"):
            model.generate(torch.zeros(2, 0, dtype=torch.long), max_new_tokens=2)
        with pytest.raises(ValueError, match="input_ids.*outside the vocabulary"):
            model.generate(torch.full((1, 3), 99), max_new_tokens=2)
        with pytest.raises(ValueError, match="max_position_embeddings"):
            model.generate(torch.ones(1, 6, dtype=torch.long), max_new_tokens=5, min_new_tokens=5)


def test_loss_without_labelled_tokens_is_zero_not_nan():
    """A one-token sequence has nothing to predict (or every label is -100): the loss is 0 with zero gradients."""
    config = ScratchGPTConfig(vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                              intermediate_size=8, max_position_embeddings=8)
    model = build(ScratchGPTForCausalLM, config, 0)
    for ids, labels in [(torch.tensor([[3]]), torch.tensor([[3]])), (torch.tensor([[3, 4]]), torch.tensor([[-100] * 2]))]:
        loss = model(ids, labels=labels).loss
        assert loss.item() == 0.0
        loss.backward()
        assert all(float(p.grad.abs().max()) == 0.0 for p in model.parameters() if p.grad is not None)


def test_regression_loss_with_one_example_is_the_squared_error():
    config = ScratchGPTConfig(vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                              intermediate_size=8, max_position_embeddings=8, num_labels=1)
    model = build(ScratchGPTForSequenceClassification, config, 0)
    out = model(torch.tensor([[3, 4]]), labels=torch.tensor([2.0]))
    torch.testing.assert_close(out.loss, (out.logits.reshape(()) - 2.0) ** 2)
