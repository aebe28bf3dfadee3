"""The shared from-scratch blocks, each checked against the paper's formula or an independent reference."""

import math

import pytest
import torch
import torch.nn.functional as F

from scratchformers.attention import MultiHeadAttention, scaled_dot_product_attention, split_heads
from scratchformers.configuration_scratch_gpt import ScratchGPTConfig
from scratchformers.embeddings import TokenEmbedding, sinusoidal_position_encoding
from scratchformers.layers import ACTIVATIONS, FeedForward, ResidualNorm
from scratchformers.masks import (
    additive_mask,
    attention_mask_for,
    causal_mask,
    padding_mask,
    positions_from_attention_mask,
)


def test_causal_mask_is_lower_triangular_and_offsets_with_past():
    assert torch.equal(causal_mask(4, 4), torch.tril(torch.ones(4, 4, dtype=torch.bool)))
    # two new queries after three cached keys: they sit at absolute positions 3 and 4
    m = causal_mask(2, 5)
    assert m.tolist() == [[True, True, True, True, False], [True, True, True, True, True]]


def test_padding_and_causal_combine_into_one_additive_mask():
    am = torch.tensor([[0, 1, 1], [1, 1, 1]])
    mask = attention_mask_for(am, 3, 3, causal=True, dtype=torch.float32, device=torch.device("cpu"))
    assert mask.shape == (2, 1, 3, 3)
    allowed = mask == 0
    assert allowed[0, 0].tolist() == [[False, False, False], [False, True, False], [False, True, True]]
    assert torch.equal(allowed[1, 0], causal_mask(3, 3))
    assert padding_mask(am).shape == (2, 1, 1, 3)
    assert attention_mask_for(torch.ones(2, 3), 3, 3, False, torch.float32, torch.device("cpu")) is None
    assert additive_mask(torch.tensor([True, False]), torch.float16)[1] == torch.finfo(torch.float16).min


def test_positions_count_only_real_tokens_so_left_padding_starts_at_zero():
    am = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert positions_from_attention_mask(am).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]
    assert positions_from_attention_mask(am, past_length=3).tolist() == [[1, 2], [3, 4]]


def test_scaled_dot_product_attention_matches_torch_reference_and_returns_weights():
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 8)
    mask = additive_mask(torch.rand(2, 1, 5, 7) > 0.3, torch.float32)
    mask[..., 0] = 0  # keep at least one key per query
    module = torch.nn.Module()
    out, weights = scaled_dot_product_attention(module, q, k, v, mask)
    reference = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2)
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-5)
    assert weights.shape == (2, 3, 5, 7)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5))
    assert torch.all(weights[(mask != 0).expand_as(weights)] == 0)


def test_sinusoidal_encoding_follows_the_paper_formula():
    d = 16
    pe = sinusoidal_position_encoding(torch.arange(50), d)
    assert pe.shape == (50, d)
    for pos, i in [(0, 0), (7, 3), (49, 7)]:
        angle = pos / 10000 ** (2 * i / d)
        assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
        assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    assert sinusoidal_position_encoding(torch.arange(3), 5).shape == (3, 5)  # odd widths work too


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_feed_forward_is_position_wise_with_selectable_activation(name):
    ffn = FeedForward(8, 32, name)
    x = torch.randn(2, 5, 8)
    expected = {
        "relu": torch.relu,
        "gelu": lambda t: 0.5 * t * (1 + torch.erf(t / math.sqrt(2))),
        "gelu_new": lambda t: 0.5 * t * (1 + torch.tanh(math.sqrt(2 / math.pi) * (t + 0.044715 * t**3))),
        "silu": lambda t: t * torch.sigmoid(t),
    }[name]
    manual = ffn.fc_out(expected(ffn.fc_in(x)))
    torch.testing.assert_close(ffn(x), manual, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ffn(x[:, 2:3]), ffn(x)[:, 2:3])  # each position independently


def test_residual_norm_post_and_pre_placement():
    x, sub = torch.randn(2, 4, 8), torch.nn.Linear(8, 8)
    post, pre = ResidualNorm(8, "post", 0.0, 1e-5), ResidualNorm(8, "pre", 0.0, 1e-5)
    torch.testing.assert_close(post.add(x, sub(post.normalize(x))), post.norm(x + sub(x)))
    torch.testing.assert_close(pre.add(x, sub(pre.normalize(x))), x + sub(pre.norm(x)))


def test_token_embedding_scaling_by_sqrt_d_model():
    emb = TokenEmbedding(10, 16, scale=True)
    ids = torch.tensor([[1, 2]])
    torch.testing.assert_close(emb(ids), emb.weight[ids] * 4.0)


def _config(**kw):
    base = dict(hidden_size=16, num_attention_heads=2, attention_probs_dropout_prob=0.0)
    return ScratchGPTConfig(**(base | kw))


def test_multi_head_attention_equals_per_head_attention_concatenated():
    config = _config()
    config._attn_implementation = "eager"
    mha = MultiHeadAttention(config, 0, is_causal=False).eval()
    x = torch.randn(2, 5, 16)
    out, _ = mha(x)
    q, k, v = mha.qkv_proj(x).split(16, dim=-1)
    heads = [
        torch.softmax(q[..., h * 8 : (h + 1) * 8] @ k[..., h * 8 : (h + 1) * 8].transpose(1, 2) / math.sqrt(8), -1)
        @ v[..., h * 8 : (h + 1) * 8]
        for h in range(2)
    ]
    torch.testing.assert_close(out, mha.out_proj(torch.cat(heads, -1)), atol=1e-5, rtol=1e-5)
    assert split_heads(x, 2).shape == (2, 2, 5, 8)


def test_cross_attention_computes_memory_keys_once_per_source():
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    config = _config(num_hidden_layers=1)
    config._attn_implementation = "eager"
    cross = MultiHeadAttention(config, 0, is_causal=False, is_cross_attention=True).eval()
    calls = []
    cross.kv_proj.register_forward_hook(lambda *a: calls.append(1))
    memory = torch.randn(2, 6, 16)
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    steps = [cross(torch.randn(2, 1, 16), cache=cache, memory=memory)[0] for _ in range(3)]
    assert len(calls) == 1 and len(steps) == 3
    x = torch.randn(2, 1, 16)
    torch.testing.assert_close(cross(x, cache=cache, memory=memory)[0], cross(x, memory=memory)[0])
