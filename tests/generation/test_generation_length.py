"""`generate()` asked for more tokens than a learned position table holds is refused before any decoding, naming
`max_new_tokens`/`max_length`, the prompt length and the limit; the largest request that fits still works (and
gives GPT-2's tokens). Sinusoidal positions have no such limit."""

from __future__ import annotations

import pytest
import torch
import transformers

from scratchformers import (
    ScratchTransformerConfig,
    ScratchTransformerForConditionalGeneration,
)
from scratchformers.convert import from_hf

LIMIT = 16


def forward_calls(model) -> list:
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.fixture
def gpt_pair():
    """GPT-2 with a 16-position table and random weights, and ours converted from it."""
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=64, n_positions=LIMIT, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, pad_token_id=0, bos_token_id=1, eos_token_id=2)).eval()
    with torch.no_grad():
        for p in hf.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    return hf, from_hf(hf).eval()


@pytest.mark.parametrize("request_kwargs,named", [(dict(max_new_tokens=8), "`max_new_tokens`=8"),
                                                   (dict(max_length=18), "`max_length`=18")])
def test_gpt_request_beyond_the_position_table_is_refused_before_decoding(gpt_pair, request_kwargs, named):
    _, ours = gpt_pair
    calls = forward_calls(ours)
    prompt = torch.randint(3, 64, (2, 10))  # 10 + 8 new tokens feeds 17 positions > 16
    with pytest.raises(ValueError) as raised:
        ours.generate(prompt, do_sample=False, **request_kwargs)
    message = str(raised.value)
    for needle in (named, "prompt of 10 tokens", "17 positions", "`max_position_embeddings`=16",
                   "at most 7 new tokens"):
        assert needle in message
    assert calls == []  # nothing was computed


def test_gpt_largest_request_that_fits_gives_gpt2s_tokens(gpt_pair):
    hf, ours = gpt_pair
    prompt = torch.randint(3, 64, (2, 10))
    kwargs = dict(max_new_tokens=7, min_new_tokens=7, do_sample=False)  # feeds exactly 16 positions
    tokens = ours.generate(prompt, **kwargs)
    assert tokens.shape == (2, 17)
    assert torch.equal(tokens, hf.generate(prompt, **kwargs))


def test_gpt_prompt_given_as_embeddings_counts_its_positions(gpt_pair):
    _, ours = gpt_pair
    embeds = ours.get_input_embeddings()(torch.randint(3, 64, (1, 10))).detach()
    with pytest.raises(ValueError, match=r"`max_new_tokens`=8 .* prompt of 10 tokens"):
        ours.generate(inputs_embeds=embeds, max_new_tokens=8)
    assert ours.generate(inputs_embeds=embeds, max_new_tokens=7, min_new_tokens=7).shape == (1, 7)


def test_gpt_prompt_longer_than_the_table_is_refused_naming_the_prompt(gpt_pair):
    _, ours = gpt_pair
    with pytest.raises(ValueError, match=r"prompt has 17 positions, more than .*`max_position_embeddings`=16"):
        ours.generate(torch.randint(3, 64, (1, 17)), max_new_tokens=1)


def seq2seq(tiny: dict, position_embedding_type: str) -> ScratchTransformerForConditionalGeneration:
    config = ScratchTransformerConfig(**{**tiny, "max_position_embeddings": LIMIT,
                                         "position_embedding_type": position_embedding_type})
    return ScratchTransformerForConditionalGeneration(config).eval()


def test_seq2seq_with_learned_positions_refuses_a_too_long_target_before_decoding(tiny):
    model = seq2seq(tiny, "learned")
    calls = forward_calls(model)
    source = torch.randint(3, 64, (2, 6))
    with pytest.raises(ValueError, match=r"`max_new_tokens`=17 .* decoder prompt of 1 tokens.*17 positions"):
        model.generate(source, max_new_tokens=LIMIT + 1)
    assert calls == []
    # the decoder start token and 15 generated tokens are fed: 16 positions, all of the table
    assert model.generate(source, max_new_tokens=LIMIT, min_new_tokens=LIMIT).shape == (2, LIMIT + 1)


def test_seq2seq_with_sinusoidal_positions_has_no_length_limit(tiny):
    model = seq2seq(tiny, "sinusoidal")
    source = torch.randint(3, 64, (2, 6))
    kwargs = dict(max_new_tokens=2 * LIMIT, min_new_tokens=2 * LIMIT, do_sample=False)
    cached = model.generate(source, **kwargs)
    assert cached.shape == (2, 2 * LIMIT + 1)
    assert torch.equal(cached, model.generate(source, use_cache=False, **kwargs))
