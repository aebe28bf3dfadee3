"""Growing or cutting the vocabulary (`resize_token_embeddings`) and loading a checkpoint under a new `num_labels`.

A user who adds special tokens to a tokenizer calls `model.resize_token_embeddings(len(tokenizer))` and expects:
the old tokens' logits unchanged, every token matrix (input, decoder, output, output bias, BART's
`final_logits_bias`) at the new size, tied weights still one tensor, new rows initialised, and generation plus
save/load working at the new size. A fine-tuner who loads a classifier with another label count expects a fresh head
with `ignore_mismatched_sizes=True` and an error without it.
"""

from __future__ import annotations

import pytest
import torch
from conftest import TINY
from families import FAMILIES as ALL_FAMILIES

from scratchformers import (
    ScratchBertConfig,
    ScratchBertForMaskedLM,
    ScratchBertForQuestionAnswering,
    ScratchBertForSequenceClassification,
    ScratchBertForTokenClassification,
    ScratchGPTConfig,
    ScratchGPTForCausalLM,
    ScratchGPTForSequenceClassification,
    ScratchRNNConfig,
    ScratchRNNForConditionalGeneration,
    ScratchTransformerConfig,
    ScratchTransformerForConditionalGeneration,
)
from scratchformers.safe_loading import load_checked

V, GROWN, CUT = TINY["vocab_size"], 80, 48
RNN = dict(vocab_size=V, hidden_size=16, num_hidden_layers=1, dropout=0.0, attention="bahdanau", pad_token_id=0,
           bos_token_id=1, eos_token_id=2, embedding_init_std=0.1)


def build(family: str, tie: bool = True):
    """A tiny LM of `family`, eval mode, with non-zero output biases so resizing them is observable."""
    if family == "gpt":
        model = ScratchGPTForCausalLM(ScratchGPTConfig(**TINY, tie_word_embeddings=tie))
    elif family == "bert":
        model = ScratchBertForMaskedLM(ScratchBertConfig(**TINY, tie_word_embeddings=tie))
        torch.nn.init.normal_(model.lm_head.decoder.bias, std=0.5)
    elif family == "transformer":
        config = ScratchTransformerConfig(**TINY, tie_word_embeddings=tie, final_logits_bias=True)
        model = ScratchTransformerForConditionalGeneration(config)
        model.final_logits_bias.normal_(std=0.5)
    elif family == "rnn":
        model = ScratchRNNForConditionalGeneration(ScratchRNNConfig(**RNN, tie_word_embeddings=tie))
    else:
        raise ValueError(family)
    return model.eval()


def logits(model, ids: torch.Tensor) -> torch.Tensor:
    """The LM logits for `ids` (also the decoder input for the seq2seq families)."""
    extra = {"decoder_input_ids": ids.flip(-1)} if model.config.is_encoder_decoder else {}
    with torch.no_grad():
        return model(input_ids=ids, **extra).logits


def token_matrices(model) -> dict[str, torch.nn.Parameter]:
    """Every (V, C) matrix of the model: input embedding(s) and output layer."""
    mats = {"input": model.get_input_embeddings().weight, "output": model.get_output_embeddings().weight}
    if isinstance(model, ScratchTransformerForConditionalGeneration):
        mats["decoder"] = model.model.decoder.embeddings.embed_tokens.weight
    return mats


def output_bias(model) -> torch.Tensor | None:
    """The per-token output bias (BERT's decoder bias, the Transformer's final_logits_bias), if the family has one."""
    if isinstance(model, ScratchBertForMaskedLM):
        return model.lm_head.decoder.bias
    return getattr(model, "final_logits_bias", None)


FAMILIES = list(ALL_FAMILIES)  # gpt, bert, transformer, rnn
FAMILY_TIES = [(f, t) for f in FAMILIES for t in (True, False)]


@pytest.mark.parametrize(("family", "tie"), FAMILY_TIES, ids=[f"{f}-{'tied' if t else 'untied'}" for f, t in FAMILY_TIES])
def test_growing_the_vocab_keeps_old_logits_and_resizes_every_token_matrix(family, tie):
    model = build(family, tie)
    ids = torch.randint(3, V, (2, 6))
    before, bias_before = logits(model, ids), output_bias(model)
    bias_before = None if bias_before is None else bias_before.detach().clone().reshape(-1)
    old_rows = model.get_input_embeddings().weight.detach().clone()

    model.resize_token_embeddings(GROWN)

    assert model.config.vocab_size == GROWN
    for name, weight in token_matrices(model).items():
        assert weight.shape == (GROWN, model.config.hidden_size), name
    mats = token_matrices(model)
    if tie:
        assert all(w is mats["input"] for w in mats.values())
    else:
        assert mats["output"] is not mats["input"]
    after = logits(model, ids)
    assert after.shape == (*before.shape[:-1], GROWN)
    torch.testing.assert_close(after[..., :V], before, rtol=1e-5, atol=1e-5)  # old tokens: nothing changed
    # added rows are initialised (mean resizing: ≈ the old rows' mean), not left as zeros or garbage
    torch.testing.assert_close(mats["input"][V:].detach(), old_rows.mean(0).expand(GROWN - V, -1), atol=1e-3, rtol=0)
    bias = output_bias(model)
    if bias_before is not None:
        bias = bias.detach().reshape(-1)
        assert bias.shape == (GROWN,)
        torch.testing.assert_close(bias[:V], bias_before, rtol=0, atol=0)
        # BART's final_logits_bias and a tied Linear's bias grow with zeros; an untied Linear's with the old mean
        expected = 0.0 if family == "transformer" or tie else float(bias_before.mean())
        torch.testing.assert_close(bias[V:], torch.full((GROWN - V,), expected), atol=1e-4, rtol=0)
    new_ids = torch.tensor([[GROWN - 1, V, 5, GROWN - 2]])  # the new tokens are valid input now
    assert logits(model, new_ids).shape[-1] == GROWN


@pytest.mark.parametrize("family", FAMILIES)
def test_cutting_the_vocab_keeps_the_first_rows(family):
    model = build(family, tie=False)
    ids = torch.randint(3, CUT, (2, 5))
    before = logits(model, ids)
    model.resize_token_embeddings(CUT)
    assert model.config.vocab_size == CUT
    assert all(w.shape[0] == CUT for w in token_matrices(model).values())
    torch.testing.assert_close(logits(model, ids), before[..., :CUT], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="input_ids"):  # ids beyond the cut vocabulary are refused by name
        logits(model, torch.tensor([[CUT]]))


@pytest.mark.parametrize("family", FAMILIES)
def test_without_mean_resizing_new_rows_follow_the_family_init(family):
    model = build(family, tie=False)
    model.resize_token_embeddings(GROWN + 64, mean_resizing=False)  # 128 new rows: a std estimate within ~10%
    std = {"gpt": 0.02, "bert": 0.02, "transformer": TINY["hidden_size"] ** -0.5, "rnn": RNN["embedding_init_std"]}
    for name in ("input", "decoder"):
        if name in token_matrices(model):
            new_rows = token_matrices(model)[name][V:].detach()
            assert float(new_rows.std()) == pytest.approx(std[family], rel=0.2), name


@pytest.mark.parametrize(("family", "tie"), [("gpt", True), ("transformer", True), ("transformer", False), ("rnn", True)])
def test_generation_uses_and_feeds_back_new_tokens(family, tie):
    model = build(family, tie)
    model.resize_token_embeddings(GROWN)
    prompt = torch.randint(3, V, (2, 4))
    kwargs = dict(max_new_tokens=5, do_sample=False, suppress_tokens=list(range(V)), pad_token_id=0)
    cached = model.generate(prompt, use_cache=True, **kwargs)
    uncached = model.generate(prompt, use_cache=False, **kwargs)
    new = cached[:, -5:]
    assert ((new >= V) & (new < GROWN)).all()  # only added tokens were allowed, and they went back in as input
    torch.testing.assert_close(cached, uncached, rtol=0, atol=0)


def test_final_logits_bias_of_an_added_token_steers_generation():
    model = build("transformer")
    model.resize_token_embeddings(GROWN)
    model.final_logits_bias[0, GROWN - 3] = 1e4
    out = model.generate(torch.randint(3, V, (2, 4)), max_new_tokens=4, do_sample=False, num_beams=2)
    assert (out[:, 1:] == GROWN - 3).all()  # after the decoder start token


@pytest.mark.parametrize(("family", "tie"), FAMILY_TIES, ids=[f"{f}-{'tied' if t else 'untied'}" for f, t in FAMILY_TIES])
def test_resized_model_round_trips_through_save_pretrained(tmp_path, family, tie):
    model = build(family, tie)
    model.resize_token_embeddings(GROWN)
    model.save_pretrained(tmp_path)
    loaded = type(model).from_pretrained(tmp_path).eval()
    assert loaded.config.vocab_size == GROWN
    ids = torch.tensor([[5, GROWN - 1, V, 7, GROWN - 2]])
    torch.testing.assert_close(logits(loaded, ids), logits(model, ids), rtol=0, atol=0)
    mats = token_matrices(loaded)
    assert (mats["output"] is mats["input"]) == tie
    if output_bias(model) is not None:
        torch.testing.assert_close(output_bias(loaded), output_bias(model), rtol=0, atol=0)


# ---------------------------------------------------------------- a checkpoint under another label count

HEADS = {
    "bert-sequence": (ScratchBertForSequenceClassification, ScratchBertConfig, "classifier", lambda b, t: (b,)),
    "bert-token": (ScratchBertForTokenClassification, ScratchBertConfig, "classifier", lambda b, t: (b, t)),
    "gpt-sequence": (ScratchGPTForSequenceClassification, ScratchGPTConfig, "score", lambda b, t: (b,)),
}
LABELS3 = dict(num_labels=3, id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2})


def saved_classifier(folder, name: str):
    cls, config_class, head, _ = HEADS[name]
    model = cls(config_class(**TINY, **LABELS3)).eval()
    model.save_pretrained(folder)
    return model


@pytest.mark.parametrize("name", HEADS)
def test_new_num_labels_with_ignore_mismatched_sizes_gives_a_fresh_head(tmp_path, name):
    cls, _, head, label_shape = HEADS[name]
    old = saved_classifier(tmp_path, name)
    new = cls.from_pretrained(tmp_path, num_labels=5, ignore_mismatched_sizes=True).eval()
    assert new.config.num_labels == 5 and len(new.config.id2label) == 5
    layer = getattr(new, head)
    assert layer.weight.shape == (5, TINY["hidden_size"])
    assert float(layer.weight.detach().std()) == pytest.approx(new.config.initializer_range, rel=0.3)  # freshly initialised
    if layer.bias is not None:
        assert layer.bias.shape == (5,) and not layer.bias.any()
    old_body, new_body = old.model.state_dict(), new.model.state_dict()
    assert old_body.keys() == new_body.keys()
    for key in old_body:  # only the head is new: every body tensor came from the checkpoint
        torch.testing.assert_close(new_body[key], old_body[key], rtol=0, atol=0, msg=key)
    ids = torch.randint(3, V, (2, 6))
    labels = torch.full(label_shape(2, 6), 4)  # label 4 exists only in the new head
    out = new(input_ids=ids, labels=labels)
    assert out.logits.shape == (*label_shape(2, 6), 5)
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("name", HEADS)
def test_new_num_labels_without_ignore_mismatched_sizes_is_refused(tmp_path, name):
    cls, _, head, _ = HEADS[name]
    saved_classifier(tmp_path, name)
    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):
        cls.from_pretrained(tmp_path, num_labels=5)
    with pytest.raises(ValueError, match=rf"'{head}\.weight' has shape \(3, 32\) .*`num_labels`=5 \(given\)"):
        load_checked(tmp_path, cls, num_labels=5)
    assert cls.from_pretrained(tmp_path).config.num_labels == 3  # the same folder loads under its own count


def test_question_answering_head_ignores_num_labels(tmp_path):
    model = ScratchBertForQuestionAnswering(ScratchBertConfig(**TINY)).eval()
    model.save_pretrained(tmp_path)
    loaded = ScratchBertForQuestionAnswering.from_pretrained(tmp_path, num_labels=5).eval()  # no mismatch: 2 outputs
    assert loaded.classifier.weight.shape == (2, TINY["hidden_size"])
    ids = torch.randint(3, V, (1, 6))
    torch.testing.assert_close(loaded(input_ids=ids).start_logits, model(input_ids=ids).start_logits, rtol=0, atol=0)
