"""Visualisation: attention weights of our checkpoints (softmax rows, causal zeros), readable labels, valid PNGs."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from journey_helpers import png_size, tiny_checkpoint
from transformers import AutoModelForCausalLM, AutoTokenizer

from scratchformers import viz
from scratchformers.embeddings import sinusoidal_position_encoding

SENTENCE = "The import statement finds a module."


@pytest.fixture(scope="module")
def model_and_tokenizer(tmp_path_factory):
    folder = tiny_checkpoint(tmp_path_factory.mktemp("viz"))
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager")
    return model, AutoTokenizer.from_pretrained(folder)


def test_byte_level_labels_read_as_the_text(model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    labels = viz.token_labels(tokenizer, tokenizer(SENTENCE)["input_ids"])
    assert "".join(labels) == SENTENCE
    assert not any("Ġ" in label for label in labels)
    assert any(label.startswith(" ") for label in labels)  # 'Ġ' became a space


def test_self_attention_rows_are_distributions_that_never_look_ahead(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    queries, keys, weights = viz.attention_weights(model, tokenizer, SENTENCE)
    T = len(tokenizer(SENTENCE)["input_ids"])
    assert weights.shape == (2, 2, T, T) and queries == keys and len(keys) == T
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert np.abs(np.triu(weights, k=1)).max() == 0.0


def test_sdpa_model_still_returns_real_weights(model_and_tokenizer, tmp_path):
    model, tokenizer = model_and_tokenizer
    model.config._attn_implementation = "sdpa"
    try:
        _, _, weights = viz.attention_weights(model, tokenizer, SENTENCE)
    finally:
        model.config._attn_implementation = "eager"
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)


def test_attention_grid_png_has_a_panel_per_layer_and_head(model_and_tokenizer, tmp_path):
    model, tokenizer = model_and_tokenizer
    path = viz.plot_attention(model, tokenizer, SENTENCE, tmp_path / "a.png")
    width, height = png_size(path)
    assert width > 200 and height > 200
    grid = viz.plot_attention_grid(np.full((3, 2, 4, 4), 0.25), list("abcd"), path=tmp_path / "b.png")
    assert png_size(grid)[1] > png_size(viz.plot_alignment(np.eye(4), list("abcd"), list("wxyz"), tmp_path / "c.png"))[1]


def test_wrong_shapes_and_kinds_are_rejected(model_and_tokenizer, tmp_path):
    model, tokenizer = model_and_tokenizer
    with pytest.raises(ValueError, match="unknown attention kind 'diagonal'"):
        viz.attention_weights(model, tokenizer, SENTENCE, kind="diagonal")
    with pytest.raises(ValueError, match="needs an encoder-decoder model"):
        viz.attention_weights(model, tokenizer, SENTENCE, kind="cross")
    with pytest.raises(ValueError, match=r"\(layers, heads, T_query, T_key\)"):
        viz.plot_attention_grid(np.ones((2, 2)), ["a", "b"], path=tmp_path / "x.png")
    with pytest.raises(ValueError, match="labels"):
        viz.plot_attention_grid(np.ones((1, 1, 2, 3)), ["a", "b"], path=tmp_path / "x.png")


def test_positional_encoding_plot_and_formula(tmp_path):
    pe = sinusoidal_position_encoding(torch.arange(3), 4)
    assert torch.allclose(pe[2], torch.tensor([np.sin(2), np.cos(2), np.sin(2 / 100), np.cos(2 / 100)]).float())
    assert png_size(viz.plot_positional_encoding(32, 16, tmp_path / "pe.png"))[0] > 500
    with pytest.raises(ValueError, match="max_len"):
        viz.plot_positional_encoding(0, 16, tmp_path / "pe.png")


def test_loss_curve_needs_losses(tmp_path):
    history = [{"step": 1, "loss": 5.0}, {"step": 2, "loss": 4.0}, {"step": 2, "eval_loss": 4.5}]
    assert png_size(viz.plot_loss_curve(history, tmp_path / "loss.png"))[0] > 300
    with pytest.raises(ValueError, match="no 'loss'"):
        viz.plot_loss_curve([{"step": 1, "learning_rate": 1e-3}], tmp_path / "loss.png")


def test_missing_matplotlib_names_the_viz_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"scratchformers\[viz\]"):
        viz.plot_positional_encoding(8, 8, tmp_path / "pe.png")
