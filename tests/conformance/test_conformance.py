"""Conformance: the contract checks transformers runs on its own models (`tests/test_modeling_common.py`,
`tests/generation/test_utils.py`), run on every family at once.

Each check compares against a reference that can disagree: the model before saving, an uncached or unpadded run, the
model without checkpointing, greedy decoding, the formula. Where a family legitimately refuses a feature (the recurrent
family is stateful: no assisted decoding, no prompt lookup, no gradient checkpointing), the test asserts
a clear ValueError/TypeError naming it instead of skipping; the refusals are listed in `REFUSALS` and in
docs/robustness.md.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from families import FAMILIES as REGISTRY
from families import TINY, family_of
from transformers import AutoModelForCausalLM, PreTrainedConfig
from transformers.cache_utils import Cache

from scratchformers import (
    ScratchBertConfig,
    ScratchBertForSequenceClassification,
    ScratchGPTConfig,
    ScratchTransformerConfig,
)
from scratchformers.attention import MultiHeadAttention
from scratchformers.compat import CACHE_NAME
from scratchformers.configuration_common import FAMILY_OPTIONS, ScratchConfig

NEW_TOKENS = 5

#: (family, feature) → the words the refusal's message must contain. Not a skip list: each entry is asserted.
REFUSALS = {
    ("rnn", "gradient_checkpointing"): "(gradient|activation) checkpointing",
    ("rnn", "assistant_model"): "assisted generation .* stateful",
    ("rnn", "prompt_lookup"): "assisted generation .* stateful",
}
# Not refused, but worth knowing: with `cache_implementation="static"` transformers logs that the recurrent family
# "does not support `Cache` instances" and ignores the setting; the tokens equal the dynamic run's (tested below).


@dataclass(frozen=True)
class Family:
    """One model class under test, a class of one family of the tests' family table (tests/families.py): built from
    that family's tiny config (with `options`), loaded by its Auto class; what kind of model it is."""

    name: str
    model_class: type
    options: tuple[tuple[str, object], ...] = ()  # config options of this class's tests (num_labels)

    def build(self, **overrides) -> torch.nn.Module:
        """A fresh model from the family's tiny config with `options` and `overrides`."""
        return self.model_class(family_of(self.model_class).config(**{**dict(self.options), **overrides}))

    @property
    def auto(self) -> type:
        family = family_of(self.model_class)
        return family.auto_lm if self.model_class is family.lm else family.heads[self.model_class]

    @property
    def kind(self) -> str:
        """What kind of model: "decoder" (causal LM) | "encoder" (bidirectional) | "seq2seq"."""
        if self.auto is AutoModelForCausalLM:
            return "decoder"
        return "seq2seq" if family_of(self.model_class).config().is_encoder_decoder else "encoder"

    @property
    def layers(self) -> int:
        """Layers per stack."""
        return family_of(self.model_class).tiny["num_hidden_layers"]

    @property
    def heads(self) -> int | None:
        """Attention heads (None: the recurrent family's single additive "head")."""
        return family_of(self.model_class).tiny.get("num_attention_heads")

    def __repr__(self) -> str:
        return self.name


def spread(model: torch.nn.Module) -> torch.nn.Module:
    """Wider random weights than the init, so a tiny random model does not repeat one token forever and a wrong cache,
    mask or position shows up as different tokens."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.eos_token_id = None  # every run makes NEW_TOKENS tokens: equal lengths to compare
    return model.eval()


FAMILIES = [
    Family("gpt", REGISTRY["gpt"].lm),
    Family("bert_mlm", REGISTRY["bert"].lm),
    Family("bert_cls", ScratchBertForSequenceClassification, (("num_labels", 3),)),
    Family("transformer", REGISTRY["transformer"].lm),
    Family("rnn", REGISTRY["rnn"].lm),
]
GENERATIVE = [f for f in FAMILIES if f.kind != "encoder"]
SEQ2SEQ = [f for f in FAMILIES if f.kind == "seq2seq"]
WITH_LM_HEAD = [f for f in FAMILIES if f.name != "bert_cls"]


def family_params(families, xfail: dict[str, pytest.MarkDecorator] | None = None):
    """pytest params over `families`, with a mark on the named ones."""
    xfail = xfail or {}
    return [pytest.param(f, id=f.name, marks=[xfail[f.name]] if f.name in xfail else []) for f in families]


def make(family: Family, **overrides) -> torch.nn.Module:
    return spread(family.build(**overrides))


def tokens(b: int, t: int) -> torch.Tensor:
    """Random ids avoiding the special ids 0 (pad), 1 (bos), 2 (eos)."""
    return torch.randint(3, 64, (b, t))


def batch(family: Family, b: int = 2, t: int = 6, s: int = 7) -> dict[str, torch.Tensor]:
    """A forward batch: source/decoder ids for seq2seq, ids for the others; attention masks all ones."""
    if family.kind == "seq2seq":
        return dict(input_ids=tokens(b, s), attention_mask=torch.ones(b, s, dtype=torch.long),
                    decoder_input_ids=torch.cat([torch.ones(b, 1, dtype=torch.long), tokens(b, t - 1)], 1))
    return dict(input_ids=tokens(b, t), attention_mask=torch.ones(b, t, dtype=torch.long))


def labels_for(family: Family, inputs: dict) -> torch.Tensor:
    if family.name == "bert_cls":
        return torch.tensor([0, 2, 1, 1][: inputs["input_ids"].shape[0]])
    if family.kind == "seq2seq":
        return tokens(*inputs["decoder_input_ids"].shape)
    labels = inputs["input_ids"].clone()
    if family.kind == "encoder":
        labels[:, ::2] = -100  # MLM: only some positions scored
    return labels


def logits_of(family: Family, model, inputs: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs, use_cache=False).logits if family.kind != "encoder" else model(**inputs).logits


def tied_pairs(model: torch.nn.Module) -> list[tuple[str, str]]:
    """Every (target, source) of `_tied_weights_keys` in the model and its submodules, as full parameter names."""
    pairs = []
    for prefix, module in model.named_modules():
        keys = getattr(type(module), "_tied_weights_keys", None)
        if isinstance(keys, dict) and getattr(module.config, "tie_word_embeddings", False):
            dot = f"{prefix}." if prefix else ""
            pairs += [(dot + target, dot + source) for target, source in keys.items()]
    return pairs


def assert_tied(model: torch.nn.Module) -> None:
    pairs = tied_pairs(model)
    for target, source in pairs:
        assert model.get_parameter(target) is model.get_parameter(source), f"{target} is no longer tied to {source}"


def refused(family: Family, feature: str, call: Callable[[], object]) -> bool:
    """If `feature` is in REFUSALS for `family`, assert `call` raises a clear error naming it and return True."""
    if (family.name, feature) not in REFUSALS:
        return False
    with pytest.raises((ValueError, TypeError), match=f"(?i){REFUSALS[(family.name, feature)]}"):
        call()
    return True


@dataclass
class Generated:
    """What one greedy `generate()` call produced: the new tokens (B, N) and the logits each was chosen from (B, N, V).
    Tiny random models often repeat one token, so the logits are compared too: a wrong cache or mask changes them."""

    tokens: torch.Tensor
    logits: torch.Tensor

    def assert_same(self, other: Generated, rows: slice = slice(None), other_rows: slice = slice(None)) -> None:
        assert self.tokens[rows].tolist() == other.tokens[other_rows].tolist()
        torch.testing.assert_close(self.logits[rows], other.logits[other_rows], rtol=1e-4, atol=1e-4)


def generate(model, **kwargs) -> Generated:
    """Greedy `generate()` of NEW_TOKENS tokens."""
    out = model.generate(
        **kwargs, max_new_tokens=NEW_TOKENS, do_sample=False, return_dict_in_generate=True, output_logits=True
    )
    return Generated(out.sequences[:, -NEW_TOKENS:], torch.stack(out.logits, 1))


def assert_same_nested(a, b, where="output"):
    if isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=where)
    elif isinstance(a, (tuple, list)):
        assert isinstance(b, (tuple, list)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_nested(x, y, f"{where}[{i}]")
    else:
        assert type(a) is type(b), where


# --- save / load ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("family", family_params(FAMILIES))
def test_save_and_auto_load_round_trip_keeps_logits_and_ties(family, tie, tmp_path):
    model = make(family, tie_word_embeddings=tie)
    inputs = batch(family)
    model.save_pretrained(tmp_path)
    loaded = family.auto.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model)
    for (name, saved), (_, reloaded) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(saved, reloaded), f"{name} changed on save/load"  # the weights themselves: bit for bit
    # The logits: the same weights, but the loaded ones sit in the safetensors buffer at other memory offsets, and the
    # CPU matmul kernels (oneDNN/BLAS) pick their vectorisation, hence their summation order, by alignment. A float32
    # sum of K products re-associated differs by at most ~K·eps·Σ|terms| (eps = 1.2e-7); for these tiny models
    # (K ≤ 64, |logits| ≲ 1) that is a few ulps, seen up to 3e-8. atol 1e-6 allows that and nothing a wrong weight,
    # tie or config would give (those move logits by > 1e-3).
    torch.testing.assert_close(logits_of(family, loaded, inputs), logits_of(family, model, inputs), rtol=0, atol=1e-6)
    assert_tied(loaded)
    if family.name == "bert_cls":  # no output layer over the vocabulary
        return
    assert bool(tied_pairs(loaded)) == tie
    shared = loaded.get_output_embeddings().weight is loaded.get_input_embeddings().weight
    assert shared == tie, "untied output and input embeddings must load as separate tensors"


# --- cache == no cache ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", family_params(GENERATIVE))
def test_step_by_step_cached_decoding_matches_the_full_forward(family):
    model = make(family)
    inputs = batch(family, t=7)
    full = logits_of(family, model, inputs)
    ids_name = "decoder_input_ids" if family.kind == "seq2seq" else "input_ids"
    ids = inputs[ids_name]
    fixed = {k: v for k, v in inputs.items() if k not in (ids_name, "attention_mask")}
    if family.kind == "seq2seq":
        fixed["attention_mask"] = inputs["attention_mask"]

    def step(part: torch.Tensor, cache, seen: int):
        extra = {} if family.kind == "seq2seq" else {"attention_mask": torch.ones(ids.shape[0], seen + part.shape[1])}
        with torch.no_grad():
            out = model(**fixed, **{ids_name: part}, **extra, **{CACHE_NAME: cache}, use_cache=True)
        return out.logits, out[CACHE_NAME]

    logits, cache = step(ids[:, :3], None, 0)  # prefill
    pieces = [logits]
    for t in range(3, ids.shape[1]):
        logits, cache = step(ids[:, t : t + 1], cache, t)
        pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=1e-4, atol=1e-5)


# --- padding -------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", family_params(FAMILIES))
def test_padded_batch_row_matches_the_unpadded_row(family):
    """Decoder-only and encoder: right padding; seq2seq: a padded source. The padded row's real positions give the
    logits of that row run alone."""
    model = make(family)
    inputs = batch(family)
    name = "input_ids"
    real = 4
    mask = inputs["attention_mask"].clone()
    mask[1, real:] = 0
    padded = dict(inputs, attention_mask=mask, **{name: inputs[name].masked_fill(mask == 0, 0)})
    alone = {k: v[1:2] for k, v in padded.items()}
    alone[name], alone["attention_mask"] = alone[name][:, :real], alone["attention_mask"][:, :real]
    got, want = logits_of(family, model, padded)[1:2], logits_of(family, model, alone)
    if family.kind == "decoder" or family.name == "bert_mlm":
        got = got[:, :real]
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", family_params(GENERATIVE))
def test_padded_batch_generation_matches_each_prompt_alone(family):
    """Decoder-only: a left-padded prompt; seq2seq: a right-padded source. Each row generates what it does alone."""
    model = make(family)
    long, short = tokens(1, 6), tokens(1, 3)
    pad = torch.zeros(1, 3, dtype=torch.long)
    if family.kind == "decoder":
        ids = torch.cat([long, torch.cat([pad, short], 1)])
        mask = (torch.arange(6) >= torch.tensor([[0], [3]])).long()
    else:
        ids = torch.cat([long, torch.cat([short, pad], 1)])
        mask = (torch.arange(6) < torch.tensor([[6], [3]])).long()
    together = generate(model, input_ids=ids, attention_mask=mask)
    for row, alone_ids in enumerate((long, short)):
        together.assert_same(generate(model, input_ids=alone_ids), slice(row, row + 1))


# --- attentions and hidden states ----------------------------------------------------------------------------------------


def attention_fields(family: Family) -> dict[str, tuple[int, str, str]]:
    """Output field → (count, query side, key side); sides name the input whose length they have."""
    if family.name == "rnn":  # additive attention: one alignment αᵢⱼ (target × source), one "head"
        return {"cross_attentions": (1, "decoder_input_ids", "input_ids")}
    if family.kind == "seq2seq":
        return {
            "encoder_attentions": (family.layers, "input_ids", "input_ids"),
            "decoder_attentions": (family.layers, "decoder_input_ids", "decoder_input_ids"),
            "cross_attentions": (family.layers, "decoder_input_ids", "input_ids"),
        }
    return {"attentions": (family.layers, "input_ids", "input_ids")}


@pytest.mark.parametrize("family", family_params(FAMILIES))
def test_output_attentions_counts_shapes_and_rows_summing_to_one(family):
    """On the default backend (sdpa where declared), `output_attentions=True` returns real weights: one per layer,
    (B, H, T_query, T_key), each row a distribution that gives padded keys zero weight."""
    model = make(family)
    inputs = batch(family)
    inputs["attention_mask"][1, -2:] = 0  # padded keys in row 1
    with torch.no_grad():
        out = model(**inputs, output_attentions=True)
    for field, (count, query, key) in attention_fields(family).items():
        maps = out[field]
        assert len(maps) == count, field
        B, Tq = inputs[query].shape
        Tk = inputs[key].shape[1]
        for a in maps:
            assert a.shape == (B, family.heads or 1, Tq, Tk), field
            torch.testing.assert_close(a.sum(-1), torch.ones(B, family.heads or 1, Tq), rtol=0, atol=1e-5)
            if key == "input_ids":
                assert a[1, ..., -2:].abs().max() == 0, f"{field}: padded source keys get weight"


def hidden_state_fields(family: Family) -> dict[str, str]:
    """Output field → the input whose length the states have."""
    if family.kind == "seq2seq":
        return {"encoder_hidden_states": "input_ids", "decoder_hidden_states": "decoder_input_ids"}
    return {"hidden_states": "input_ids"}


def head_input(family: Family, model, out, inputs) -> torch.Tensor:
    """The head's input recomputed by the reference path: the body's `last_hidden_state`."""
    with torch.no_grad():
        if family.name == "bert_cls":
            return model.model(**inputs).last_hidden_state
        return model.model(**inputs, use_cache=False).last_hidden_state if family.kind != "encoder" else \
            model.model(**inputs).last_hidden_state


@pytest.mark.parametrize("family", family_params(FAMILIES))
def test_output_hidden_states_are_embeddings_plus_one_per_layer(family):
    model = make(family)
    inputs = batch(family)
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    C = model.config.hidden_size
    for field, source in hidden_state_fields(family).items():
        states = out[field]
        assert len(states) == family.layers + 1, f"{field}: embeddings + one per layer"
        for h in states:
            assert h.shape == (*inputs[source].shape, C), field
        assert not torch.allclose(states[0], states[1]), f"{field}: the first entry should be the embeddings"
    last = out["decoder_hidden_states" if family.kind == "seq2seq" else "hidden_states"][-1]
    torch.testing.assert_close(last, head_input(family, model, out, inputs), rtol=0, atol=0)
    if family.kind == "seq2seq":
        torch.testing.assert_close(out.encoder_hidden_states[-1], out.encoder_last_hidden_state, rtol=0, atol=0)
    if family.name in ("gpt", "rnn"):
        torch.testing.assert_close(out.logits, model.lm_head(last), rtol=0, atol=1e-6)
    elif family.name == "transformer":
        torch.testing.assert_close(out.logits, model.output_logits(last), rtol=0, atol=1e-6)
    elif family.name == "bert_mlm":
        torch.testing.assert_close(out.logits, model.lm_head(last), rtol=0, atol=1e-6)


@pytest.mark.parametrize("family", family_params(FAMILIES))
def test_config_output_flags_act_like_the_arguments(family):
    """`config.output_hidden_states` and `config.return_dict` are the defaults of the forward arguments (HF reads
    both; `config.output_attentions` is refused by transformers itself on the sdpa backend)."""
    model = make(family)
    inputs = batch(family)
    with torch.no_grad():
        by_argument = model(**inputs, output_hidden_states=True, return_dict=False)
        model.config.output_hidden_states = True
        model.config.return_dict = False
        by_config = model(**inputs)
    assert isinstance(by_config, tuple)
    assert_same_nested(by_config, by_argument)


@pytest.mark.parametrize("family", family_params(FAMILIES))
def test_inputs_embeds_match_input_ids(family):
    """The embedding matrix's rows for the ids, passed as `inputs_embeds` (and `decoder_inputs_embeds`), give the
    logits of the ids."""
    model = make(family)
    inputs = batch(family)
    embed = model.get_input_embeddings()
    as_embeds = dict(inputs)
    for name in ("input_ids", "decoder_input_ids"):
        if name in inputs:
            as_embeds[name.replace("input_ids", "inputs_embeds")] = embed(as_embeds.pop(name)).detach()
    torch.testing.assert_close(logits_of(family, model, as_embeds), logits_of(family, model, inputs), rtol=0, atol=1e-6)


@pytest.mark.parametrize("family", family_params(FAMILIES))
def test_hidden_states_and_attentions_are_part_of_the_graph(family):
    """As transformers' `test_retain_grad_hidden_states_attentions`: the returned tensors are the ones the output was
    computed from (gradients reach them), not detached copies. The RNN's alignment is the exception by construction:
    the recurrent decoder computes αᵢ one step at a time and returns their stack, so only its encoder states are checked
    (its per-layer hidden states wait for branch small)."""
    model = make(family).train()
    inputs = batch(family)
    out = model(**inputs, output_hidden_states=True, output_attentions=True)
    if family.name == "rnn":
        checked = [out.encoder_hidden_states[-1]]
    else:
        checked = [out[field][0] for field in [*hidden_state_fields(family), *attention_fields(family)]]
    for tensor in checked:
        tensor.retain_grad()
    out.logits.pow(2).sum().backward()
    for tensor in checked:
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0


# --- resized embeddings --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("new_size", [72, 60], ids=["grow", "shrink"])
@pytest.mark.parametrize("family", family_params(FAMILIES))
def test_resize_token_embeddings_keeps_old_rows_and_ties(family, new_size, tie):
    model = make(family, tie_word_embeddings=tie)
    old_vocab = model.config.vocab_size
    inputs = {k: v.clamp(max=new_size - 1) if k.endswith("input_ids") else v for k, v in batch(family).items()}
    old_logits = logits_of(family, model, inputs)
    matrices = [m for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m is not None]
    old_rows = [m.weight.detach().clone() for m in matrices]
    model.resize_token_embeddings(new_size)
    assert model.config.vocab_size == new_size
    kept = min(old_vocab, new_size)
    matrices = [m for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m is not None]
    for matrix, old in zip(matrices, old_rows):
        assert matrix.weight.shape[0] == new_size
        torch.testing.assert_close(matrix.weight[:kept], old[:kept], rtol=0, atol=0)
    assert_tied(model)
    logits = logits_of(family, model, inputs)
    if family.name == "bert_cls":
        torch.testing.assert_close(logits, old_logits, rtol=0, atol=1e-6)
    else:
        assert logits.shape[-1] == new_size
        if new_size > old_vocab:  # the old tokens' logits are unchanged
            torch.testing.assert_close(logits[..., :old_vocab], old_logits, rtol=0, atol=1e-5)
    if new_size > old_vocab:  # the new ids are usable
        inputs["input_ids"][0, 1] = new_size - 1
        assert logits_of(family, model, inputs).isfinite().all()


# --- gradient checkpointing ----------------------------------------------------------------------------------------------


def loss_and_grads(family: Family, model, inputs, labels) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad()
    loss = model(**inputs, labels=labels).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("reentrant", [True, False], ids=["reentrant", "non_reentrant"])
@pytest.mark.parametrize("family", family_params(FAMILIES))
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(family, reentrant):
    model = make(family).train()  # dropout is 0 in the tiny configs: train mode is deterministic
    inputs = batch(family)
    labels = labels_for(family, inputs)
    loss, grads = loss_and_grads(family, model, inputs, labels)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert grads.keys() == trainable, "every parameter should get a gradient (DDP's unused-parameter check)"
    if refused(family, "gradient_checkpointing", model.gradient_checkpointing_enable):
        return
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
    layer = next(m for m in model.modules() if getattr(m, "gradient_checkpointing", False))
    calls = []  # a sublayer of a checkpointed layer runs twice: in forward, and again in backward
    next(layer.children()).register_forward_hook(lambda *_: calls.append(1))
    loss_ckpt, grads_ckpt = loss_and_grads(family, model, inputs, labels)
    assert len(calls) == 2, "the checkpointed layer should run again in backward"
    torch.testing.assert_close(loss_ckpt, loss, rtol=0, atol=0)
    assert grads_ckpt.keys() == grads.keys()
    for name in grads:
        torch.testing.assert_close(grads_ckpt[name], grads[name], rtol=1e-5, atol=1e-6, msg=name)


# --- return_dict=False ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", family_params(FAMILIES))
def test_return_dict_false_gives_the_tuple_of_the_dict_output(family):
    model = make(family)
    inputs = batch(family)
    labels = labels_for(family, inputs)
    options = dict(labels=labels, output_hidden_states=True, output_attentions=True)
    if family.kind != "encoder":
        options["use_cache"] = False
    with torch.no_grad():
        as_dict = model(**inputs, **options)
        as_tuple = model(**inputs, **options, return_dict=False)
    assert isinstance(as_tuple, tuple)
    assert_same_nested(as_dict.to_tuple(), as_tuple)
    torch.testing.assert_close(as_tuple[0], as_dict.loss, rtol=0, atol=0)
    torch.testing.assert_close(as_tuple[1], as_dict.logits, rtol=0, atol=0)


# --- generate(): every entry point ---------------------------------------------------------------------------------------


def prompt(family: Family, b: int = 1) -> dict[str, torch.Tensor]:
    """A prompt / source with repeated n-grams (so prompt lookup finds candidates)."""
    ids = torch.tensor([[5, 6, 7, 8, 5, 6, 7, 8, 5, 6]]).repeat(b, 1)
    if b > 1:
        ids[1:] = tokens(b - 1, ids.shape[1])
    return dict(input_ids=ids, attention_mask=torch.ones_like(ids))


def greedy_reference(family: Family, model, inputs: dict) -> Generated:
    """Greedy decoding written out: the argmax of a full, uncached forward, one token at a time."""
    if family.kind == "seq2seq":
        seq = torch.full((inputs["input_ids"].shape[0], 1), model.config.decoder_start_token_id)
    else:
        seq = inputs["input_ids"]
    steps = []
    for _ in range(NEW_TOKENS):
        with torch.no_grad():
            if family.kind == "seq2seq":
                logits = model(**inputs, decoder_input_ids=seq, use_cache=False).logits
            else:
                logits = model(input_ids=seq, attention_mask=torch.ones_like(seq), use_cache=False).logits
        steps.append(logits[:, -1])
        seq = torch.cat([seq, logits[:, -1:].argmax(-1)], 1)
    return Generated(seq[:, -NEW_TOKENS:], torch.stack(steps, 1))


@pytest.mark.parametrize("family", family_params(GENERATIVE))
def test_generate_from_input_ids_is_greedy_decoding(family):
    model = make(family)
    inputs = prompt(family, b=2)
    generate(model, **inputs).assert_same(greedy_reference(family, model, inputs))


@pytest.mark.parametrize("family", family_params(GENERATIVE))
def test_generate_from_inputs_embeds_matches_input_ids(family):
    model = make(family)
    inputs = prompt(family, b=2)
    embeds = model.get_input_embeddings()(inputs["input_ids"]).detach()
    if family.kind == "decoder":
        sequences = model.generate(inputs_embeds=embeds, attention_mask=inputs["attention_mask"], max_new_tokens=2)
        assert sequences.shape[1] == 2, "from inputs_embeds a decoder-only generate() returns only the new tokens"
    got = generate(model, inputs_embeds=embeds, attention_mask=inputs["attention_mask"])
    got.assert_same(generate(model, **inputs))


@pytest.mark.parametrize("family", family_params(SEQ2SEQ))
def test_generate_from_encoder_outputs_matches_input_ids(family):
    model = make(family)
    inputs = prompt(family, b=2)
    with torch.no_grad():
        encoded = model.get_encoder()(**inputs, return_dict=True)
    got = generate(model, encoder_outputs=encoded, attention_mask=inputs["attention_mask"])
    got.assert_same(generate(model, **inputs))


@pytest.mark.parametrize("family", family_params(GENERATIVE))
def test_assisted_generation_gives_the_greedy_tokens(family):
    model = make(family)
    torch.manual_seed(1)
    assistant = make(family)  # other weights: its drafts are sometimes rejected
    inputs = prompt(family)
    if refused(family, "assistant_model", lambda: generate(model, **inputs, assistant_model=assistant)):
        return
    generate(model, **inputs, assistant_model=assistant).assert_same(generate(model, **inputs))


@pytest.mark.parametrize("family", family_params(GENERATIVE))
def test_prompt_lookup_generation_gives_the_greedy_tokens(family):
    model = make(family)
    inputs = prompt(family)
    if refused(family, "prompt_lookup", lambda: generate(model, **inputs, prompt_lookup_num_tokens=2)):
        return
    generate(model, **inputs, prompt_lookup_num_tokens=2).assert_same(generate(model, **inputs))


@pytest.mark.parametrize("family", family_params(GENERATIVE))
def test_static_cache_generation_matches_the_dynamic_cache(family):
    model = make(family)
    inputs = prompt(family, b=2)
    if refused(family, "static_cache", lambda: generate(model, **inputs, cache_implementation="static")):
        return
    generate(model, **inputs, cache_implementation="static").assert_same(generate(model, **inputs))


@pytest.mark.parametrize("family", family_params(GENERATIVE))
def test_generation_continues_from_a_returned_cache(family):
    """3 tokens, then 2 more from the returned cache and the whole sequence so far, give the 5 of one call (as in
    transformers' `test_generate_continue_from_past_key_values`: the mask covers the whole sequence, so generate()
    feeds only the tokens the cache has not seen)."""
    model = make(family)
    inputs = prompt(family, b=2)
    full = generate(model, **inputs)
    first = model.generate(**inputs, max_new_tokens=3, do_sample=False, return_dict_in_generate=True, output_logits=True)
    sequence = first.sequences
    if family.kind == "seq2seq":
        more = dict(inputs, decoder_input_ids=sequence, decoder_attention_mask=torch.ones_like(sequence))
    else:
        more = dict(input_ids=sequence, attention_mask=torch.ones_like(sequence))
    rest = model.generate(
        **more, **{CACHE_NAME: first[CACHE_NAME]}, max_new_tokens=2, do_sample=False, return_dict_in_generate=True,
        output_logits=True,
    )
    both = Generated(rest.sequences[:, -NEW_TOKENS:], torch.stack(first.logits + rest.logits, 1))
    both.assert_same(full)


def sequence_log_prob(family: Family, model, inputs: dict, row: int, sequence: torch.Tensor) -> torch.Tensor:
    """log p(generated tokens | input) from one full uncached forward."""
    source = {k: v[row : row + 1] for k, v in inputs.items()}
    with torch.no_grad():
        if family.kind == "seq2seq":
            logits = model(**source, decoder_input_ids=sequence[None, :-1], use_cache=False).logits
        else:
            logits = model(input_ids=sequence[None, :-1], use_cache=False).logits
    logp = logits[0, -NEW_TOKENS:].log_softmax(-1)
    return logp.gather(-1, sequence[-NEW_TOKENS:, None]).sum()


@pytest.mark.parametrize("family", family_params(GENERATIVE))
def test_beam_search_returns_distinct_sequences_with_their_log_probabilities(family):
    model = make(family)
    inputs = prompt(family, b=2)
    out = model.generate(
        **inputs, max_new_tokens=NEW_TOKENS, do_sample=False, num_beams=3, num_return_sequences=2,
        length_penalty=0.0, output_scores=True, return_dict_in_generate=True,
    )
    assert out.sequences.shape[0] == 4
    for i, sequence in enumerate(out.sequences):
        row = i // 2
        torch.testing.assert_close(
            out.sequences_scores[i], sequence_log_prob(family, model, inputs, row, sequence), rtol=1e-4, atol=1e-4
        )
    for row in range(2):
        first, second = out.sequences[2 * row], out.sequences[2 * row + 1]
        assert first.tolist() != second.tolist()
        assert out.sequences_scores[2 * row] >= out.sequences_scores[2 * row + 1]


# --- what transformers' common tests read from a config, and the old cache argument name ----------------------------
# transformers 5.25's `tests/test_modeling_common.py` probes configs: `hasattr(config, "sliding_window")` → the model
# is tested with a window of 2; `hasattr(config, "rope_parameters")` → tested as a RoPE model (a scaled RoPE must change
# the outputs); `num_key_value_heads` → the key/value head count. A config must say only what its model does.


def attention_modules(model: torch.nn.Module) -> list[MultiHeadAttention]:
    return [m for m in model.modules() if isinstance(m, MultiHeadAttention)]


def key_value_heads_in_weights(attention: MultiHeadAttention) -> int:
    """How many key heads the module's projection really produces (its output rows / head size)."""
    if attention.is_cross_attention:
        return attention.kv_proj.weight.shape[0] // 2 // attention.head_dim
    q_rows = attention.num_heads * attention.head_dim
    return (attention.qkv_proj.weight.shape[0] - q_rows) // 2 // attention.head_dim


@pytest.mark.parametrize("kv_heads", [None, 2, 1], ids=["unset", "gqa", "mqa"])
@pytest.mark.parametrize("family", family_params([f for f in FAMILIES if f.heads]))
def test_num_key_value_heads_is_the_key_value_head_count_of_every_attention(family, kv_heads):
    model = make(family, num_key_value_heads=kv_heads)
    expected = kv_heads or family.heads
    assert model.config.num_key_value_heads == expected
    modules = attention_modules(model)
    assert modules and all(key_value_heads_in_weights(m) == expected for m in modules)
    if kv_heads is None:  # unset stays unset: the same settings with another head count keep one K/V head per head
        rebuilt = type(model.config).from_dict({**model.config.to_dict(), "num_attention_heads": 2})
        assert rebuilt.num_key_value_heads == 2


def test_the_recurrent_config_has_no_attention_head_options():
    config = make(next(f for f in FAMILIES if f.name == "rnn")).config
    for name in ("num_key_value_heads", "rope_parameters", "sliding_window", "layer_types"):
        assert not hasattr(config, name), name


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
@pytest.mark.parametrize("family", family_params([f for f in FAMILIES if f.heads]))
def test_only_a_rotary_config_carries_rope_parameters(family, positions, tmp_path):
    """What transformers' `_config_supports_rope_scaling` reads; `rope_scaling` (its old name) follows. A config
    switched to rotary positions gets the default RoPE, and one switched away loses it."""
    model = make(family, position_embedding_type=positions)
    config = model.config
    assert not hasattr(config, "rope_parameters") and not hasattr(config, "rope_scaling")
    model.save_pretrained(tmp_path)
    assert "rope_parameters" not in json.loads((tmp_path / "config.json").read_text())
    with pytest.raises(ValueError, match=f"rope_parameters.*position_embedding_type='{positions}'"):
        config.rope_parameters = {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}
    config.rope_parameters = None  # off: accepted, nothing stored
    assert not hasattr(config, "rope_parameters")
    config.position_embedding_type = "rotary"
    assert config.rope_parameters == {"rope_type": "default", "rope_theta": 10000.0}
    config.position_embedding_type = positions
    assert not hasattr(config, "rope_parameters")


@pytest.mark.parametrize("family", family_params([f for f in FAMILIES if f.heads]))
def test_a_scaled_rope_changes_what_a_rotary_model_computes(family):
    """transformers' `test_model_rope_scaling_from_config`, short inputs: linear scaling with factor 10 must change the
    body's hidden states (it is read, not just carried)."""
    inputs = batch(family)
    inputs.pop("attention_mask")
    outputs = []
    for rope in ({"rope_type": "default", "rope_theta": 10000.0}, {"rope_type": "linear", "factor": 10.0,
                                                                     "rope_theta": 10000.0}):
        torch.manual_seed(0)
        model = make(family, position_embedding_type="rotary", rope_parameters=rope)
        assert model.config.rope_parameters["rope_type"] == rope["rope_type"]
        outputs.append(logits_of(family, model, inputs))
    assert not torch.allclose(outputs[0], outputs[1], atol=1e-5)


@pytest.mark.parametrize("family", family_params(FAMILIES))
def test_a_config_carries_sliding_window_only_if_its_model_applies_it(family, tmp_path):
    """transformers' common tests set `config.sliding_window = 2` wherever `hasattr(config, "sliding_window")`. Only
    scratch_gpt carries it, and there a window of 2 changes a late token's logits and survives save/load. Elsewhere
    the assignment, like the constructor argument, raises a ValueError naming the option and the family (it used to
    be accepted, and an encoder-decoder then applied the window in its decoder)."""
    model = make(family)
    config = model.config
    inputs = batch(family, t=6)
    if family.name != "gpt":
        assert not hasattr(config, "sliding_window") and not hasattr(config, "layer_types")
        for name, value in (("sliding_window", 2), ("layer_types", ["full_attention"] * family.layers)):
            with pytest.raises(ValueError, match=f"`{name}`=.* is not an option of {config.model_type} "
                                                 r"\(taken only by scratch_gpt"):
                setattr(config, name, value)
            with pytest.raises(ValueError, match=f"`{name}`=.* is not an option of {config.model_type}"):
                family.build(**{name: value})
            setattr(config, name, None)  # off: accepted, and still not carried
            assert not hasattr(config, name)
        return
    assert hasattr(config, "sliding_window") and config.sliding_window is None
    full = logits_of(family, model, inputs)
    config = copy.deepcopy(config)
    config.sliding_window = 2  # as the common tests do: assigned, then a model built from the config
    windowed = type(model)(config).eval()
    windowed.load_state_dict(model.state_dict())
    got = logits_of(family, windowed, inputs)
    torch.testing.assert_close(got[:, :2], full[:, :2], rtol=0, atol=1e-5)  # within the window: nothing changes
    assert not torch.allclose(got[:, -1], full[:, -1], atol=1e-4)  # the last token no longer sees the first ones
    windowed.save_pretrained(tmp_path)
    loaded = family.auto.from_pretrained(tmp_path).eval()
    assert loaded.config.sliding_window == 2
    torch.testing.assert_close(logits_of(family, loaded, inputs), got, rtol=0, atol=0)
    with pytest.raises(ValueError, match="sliding_window` must be a positive integer"):
        config.sliding_window = 0


CONFIG_CLASSES = {family.config_class.model_type: family.config_class for family in REGISTRY.values()}
TINY_OF = {family.config_class.model_type: family.tiny for family in REGISTRY.values()}


def own_fields(config_class: type) -> set[str]:
    return {f.name for f in dataclasses.fields(config_class)} - {f.name for f in dataclasses.fields(PreTrainedConfig)}


def test_family_options_name_every_option_only_some_families_take():
    """`FAMILY_OPTIONS` is complete: every field of a family's config that another Transformer family's config lacks
    (and every recurrent-only field) is in it, with the families whose config has it; and so are the attention
    options the common tests probe, which the recurrent family lacks (`rope_parameters` is no field: a
    Transformer-family config carries it with rotary positions)."""
    fields = {model_type: own_fields(cls) for model_type, cls in CONFIG_CLASSES.items()}
    transformer_families = [t for t in CONFIG_CLASSES if t != "scratch_rnn"]
    in_some = set().union(*(fields[t] for t in transformer_families))
    in_all = set.intersection(*(fields[t] for t in transformer_families))
    aliases = set(ScratchConfig.attribute_map)  # e.g. the recurrent `dropout` field is an alias in the others
    expected = (in_some - in_all) | (fields["scratch_rnn"] - in_some - aliases)
    probed = {"rope_parameters", "num_key_value_heads"}
    assert set(FAMILY_OPTIONS) == expected | probed
    for name, (families, _) in FAMILY_OPTIONS.items():
        taking = set(transformer_families) if name in probed else {t for t in CONFIG_CLASSES if name in fields[t]}
        assert set(families) == taking, name


@pytest.mark.parametrize("name", sorted(FAMILY_OPTIONS))
def test_an_option_of_other_families_is_refused_when_built_and_when_assigned(name):
    families, _ = FAMILY_OPTIONS[name]
    value = {"layer_types": ["full_attention"] * 2, "rope_parameters": {"rope_type": "default", "rope_theta": 1e4},
             "cell": "gru", "attention": "luong", "luong_score": "dot"}.get(name, 2)
    for model_type, config_class in CONFIG_CLASSES.items():
        if model_type in families:
            continue
        base = TINY_OF[model_type]
        pattern = f"`{name}`=.* is not an option of {model_type} \\(taken only by {', '.join(families)}"
        with pytest.raises(ValueError, match=pattern):
            config_class(**base, **{name: value})
        config = config_class(**base, **{name: None})  # off: accepted, not carried
        assert not hasattr(config, name), (model_type, name)
        with pytest.raises(ValueError, match=pattern):
            setattr(config, name, value)
        assert not hasattr(config, name), (model_type, name)


@pytest.mark.parametrize("config_class, name, bad, message", [
    (ScratchGPTConfig, "sliding_window", 0, "positive integer"),
    (ScratchGPTConfig, "layer_types", ["local", "full_attention"], "allowed values"),
    (ScratchBertConfig, "add_pooling_layer", "yes", "True or False"),
    (ScratchBertConfig, "classifier_dropout", 1.5, r"number in \[0, 1\)"),
    (ScratchTransformerConfig, "encoder_layers", 0, "positive integer"),
    (ScratchTransformerConfig, "final_logits_bias", "yes", "True or False"),
])
def test_a_family_option_is_checked_when_assigned_as_when_built(config_class, name, bad, message):
    config = config_class(**TINY)
    for build in (lambda: config_class(**TINY, **{name: bad}), lambda: setattr(config, name, bad)):
        with pytest.raises(ValueError, match=f"{name}.*{message}|{message}.*{name}"):
            build()


@pytest.mark.parametrize("family", family_params([f for f in FAMILIES if f.heads]))
def test_checkpoints_saved_with_the_old_always_present_keys_still_load(family, tmp_path):
    """Earlier versions saved `rope_parameters` (the defaults), `num_key_value_heads`, `sliding_window` and
    `layer_types` (null) in every Transformer family's config.json; those files load, carrying only what applies."""
    model = make(family)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    saved.update(rope_parameters={"rope_theta": 10000.0, "rope_type": "default"}, num_key_value_heads=None,
                 sliding_window=None, layer_types=None)
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded = family.auto.from_pretrained(tmp_path).eval()
    assert not hasattr(loaded.config, "rope_parameters")
    assert hasattr(loaded.config, "sliding_window") == (family.name == "gpt")
    assert loaded.config.num_key_value_heads == family.heads
    inputs = batch(family)
    torch.testing.assert_close(logits_of(family, loaded, inputs), logits_of(family, model, inputs), rtol=0, atol=0)
    saved["rope_parameters"] = {"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0}  # would change nothing
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="rope_parameters.*needs rotary positions"):
        family.auto.from_pretrained(tmp_path)


def cache_step_inputs(family: Family, model) -> tuple[dict, Cache]:
    """A prefill's cache and the inputs of the next step (one more target token)."""
    inputs = batch(family, t=4)
    ids_name = "decoder_input_ids" if family.kind == "seq2seq" else "input_ids"
    prefix = dict(inputs, **{ids_name: inputs[ids_name][:, :3]})
    if family.kind != "seq2seq":
        prefix["attention_mask"] = inputs["attention_mask"][:, :3]
    with torch.no_grad():
        cache = model(**prefix, use_cache=True)[CACHE_NAME]
    step = dict(inputs, **{ids_name: inputs[ids_name][:, 3:]}, use_cache=True)
    return step, cache


@pytest.mark.parametrize("family", family_params(GENERATIVE))
def test_the_old_cache_argument_name_works_with_a_deprecation_warning_where_transformers_deprecates_it(family):
    """transformers' `test_bc_cache_name_forward`: `past_key_values=` gives what `cache=` gives, warning
    "`past_key_values` is deprecated" where transformers' own models take `cache` (5.24 on, as BART); before that it
    is the name generate() itself passes, and no warning is due."""
    model = make(family)
    step, cache = cache_step_inputs(family, model)
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        by_old_name = model(**step, past_key_values=copy.deepcopy(cache))
    deprecations = [w for w in caught if "`past_key_values` is deprecated" in str(w.message)]
    if CACHE_NAME == "cache":
        assert deprecations and deprecations[0].category is FutureWarning
        assert "Use `cache` instead" in str(deprecations[0].message)
    else:
        assert not deprecations
    with torch.no_grad():
        by_new_name = model(**step, cache=copy.deepcopy(cache))
        alone = step if family.kind == "seq2seq" else dict(step, attention_mask=step["attention_mask"][:, -1:])
        without = model(**alone)  # no cache: the step alone, which must differ (the cache was really used)
    torch.testing.assert_close(by_old_name.logits, by_new_name.logits, rtol=0, atol=0)
    assert by_old_name[CACHE_NAME].get_seq_length() == by_new_name[CACHE_NAME].get_seq_length() == 4
    assert not torch.allclose(without.logits, by_new_name.logits, atol=1e-5)


@pytest.mark.parametrize("family", family_params([f for f in FAMILIES if f.kind == "encoder"]))
def test_a_forward_without_a_cache_refuses_the_old_cache_argument(family):
    """A model that keeps no cache took `past_key_values=` and ignored it; it is now a misspelt argument."""
    model = make(family)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['past_key_values'\]"):
        model(**batch(family), past_key_values=None)
