"""The recurrent blocks alone: alignment scores, the context vector, the encoder's final state and the decoder step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scratchformers.recurrent import (
    BahdanauAttention,
    LuongAttention,
    RNNDecoder,
    RNNEncoder,
    attention_context,
    bahdanau_score,
    luong_dot_score,
    luong_general_score,
    make_rnn,
    merge_directions,
)

B, S, C = 2, 5, 8


def test_bahdanau_score_is_v_tanh_of_ws_plus_uh():
    W, U, v = nn.Linear(C, 6, bias=False), nn.Linear(C, 6), nn.Linear(6, 1, bias=False)
    s, h = torch.randn(B, C), torch.randn(B, S, C)
    expected = torch.stack(
        [torch.stack([v.weight[0] @ torch.tanh(W.weight @ s[b] + U.weight @ h[b, j] + U.bias) for j in range(S)])
         for b in range(B)]
    )
    torch.testing.assert_close(bahdanau_score(s, h, W, U, v), expected)
    torch.testing.assert_close(bahdanau_score(s, h, W, U, v, projected_keys=U(h)), expected)


def test_luong_scores_are_dot_and_bilinear_products():
    s, h = torch.randn(B, C), torch.randn(B, S, C)
    Wa = nn.Linear(C, C, bias=False)
    dot = torch.tensor([[float(s[b] @ h[b, j]) for j in range(S)] for b in range(B)])
    general = torch.tensor([[float(s[b] @ Wa.weight.detach() @ h[b, j]) for j in range(S)] for b in range(B)])
    torch.testing.assert_close(luong_dot_score(s, h), dot)
    torch.testing.assert_close(luong_general_score(s, h, Wa), general)


def test_attention_context_is_softmax_weighted_sum_over_real_positions():
    scores, values = torch.randn(B, S), torch.randn(B, S, C)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    context, weights = attention_context(scores, values, mask)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B))
    assert torch.equal(weights[0, 3:], torch.zeros(2))  # exactly 0 on padding
    alpha0 = torch.softmax(scores[0, :3], -1)
    torch.testing.assert_close(weights[0, :3], alpha0)
    torch.testing.assert_close(context[0], alpha0 @ values[0, :3])
    torch.testing.assert_close(context[1], torch.softmax(scores[1], -1) @ values[1])


@pytest.mark.parametrize("module", [BahdanauAttention(C), LuongAttention(C, "dot"), LuongAttention(C, "general")])
def test_attention_modules_return_distributions_over_source(module):
    mask = torch.tensor([[0, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    context, weights = module(torch.randn(B, C), torch.randn(B, S, C), mask)
    assert context.shape == (B, C) and weights.shape == (B, S)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B))
    assert torch.equal(weights[0, [0, 4]], torch.zeros(2))


def test_bad_choices_name_the_allowed_values():
    with pytest.raises(ValueError, match="'dot', 'general'"):
        LuongAttention(C, "concat")
    with pytest.raises(ValueError, match="'lstm', 'gru'"):
        make_rnn("rnn", C, C, 1, 0.0)
    with pytest.raises(ValueError, match="bahdanau"):
        RNNDecoder(C, "lstm", C, 1, 0.0, attention="additive")


def test_merge_directions_concatenates_forward_and_backward_per_layer():
    L = 2
    state = torch.arange(B * 2 * L * 3, dtype=torch.float).reshape(B, 2 * L, 3)  # [l0 fwd, l0 bwd, l1 fwd, l1 bwd]
    merged = merge_directions(state)
    assert merged.shape == (B, L, 6)
    assert torch.equal(merged[:, 1], torch.cat([state[:, 2], state[:, 3]], -1))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bidirectional_final_state_is_last_forward_and_first_backward_output(cell):
    encoder = RNNEncoder(C, cell, C, 1, 0.0, bidirectional=True)
    outputs, hidden, cell_state = encoder(torch.randn(B, S, C))
    assert outputs.shape == (B, S, C) and hidden.shape == (B, 1, C)
    torch.testing.assert_close(hidden[:, 0], torch.cat([outputs[:, -1, : C // 2], outputs[:, 0, C // 2 :]], -1))
    assert (cell_state is None) == (cell == "gru")


@pytest.mark.parametrize("side", ["left", "right"])
def test_encoder_skips_padding_on_either_side(side):
    encoder = RNNEncoder(C, "lstm", C, 2, 0.0, bidirectional=True)
    x = torch.randn(1, 3, C)
    alone, h_alone, c_alone = encoder(x)
    pad = torch.randn(1, 2, C)
    padded = torch.cat([pad, x], 1) if side == "left" else torch.cat([x, pad], 1)
    mask = torch.tensor([[0, 0, 1, 1, 1]]) if side == "left" else torch.tensor([[1, 1, 1, 0, 0]])
    out, h, c = encoder(padded, mask)
    real = slice(2, 5) if side == "left" else slice(0, 3)
    torch.testing.assert_close(out[:, real], alone)
    torch.testing.assert_close(h, h_alone)
    torch.testing.assert_close(c, c_alone)
    assert torch.equal(out[mask == 0], torch.zeros(2, C))


@pytest.mark.parametrize("attention", [None, "bahdanau", "luong"])
def test_decoder_run_in_one_call_equals_step_by_step(attention):
    decoder = RNNDecoder(C, "gru", C, 2, 0.0, attention=attention).eval()
    x, keys, h0 = torch.randn(B, 4, C), torch.randn(B, S, C), torch.randn(B, 2, C)
    out, h, _, alpha = decoder(x, h0, None, keys)
    steps, state = [], h0
    for i in range(4):
        o, state, _, _ = decoder(x[:, i : i + 1], state, None, keys)
        steps.append(o)
    torch.testing.assert_close(torch.cat(steps, 1), out)
    torch.testing.assert_close(state, h)
    assert (alpha is None) == (attention is None)
