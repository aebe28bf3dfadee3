"""The positional-encoding plot shows what the model really uses (issue 15): a learned table's own rows, not the
paper's sinusoids, with the title saying which it is; beside a learned table, what it encodes (the similarity of its
positions), and the getting-started guide describes the demo's plot as what it is (issue 20)."""

from __future__ import annotations

import matplotlib.axes
import numpy as np
import pytest
import torch

from scratchformers import ScratchGPTConfig, ScratchGPTForCausalLM, viz
from scratchformers.embeddings import sinusoidal_position_encoding

TINY = dict(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
            max_position_embeddings=24)


@pytest.fixture
def plotted(monkeypatch):
    """What the heatmap and the title of the last plot showed."""
    seen: dict = {}
    imshow, set_title = matplotlib.axes.Axes.imshow, matplotlib.axes.Axes.set_title

    def record_image(self, data, *args, **kwargs):
        seen.setdefault("image", np.array(data))
        seen.setdefault("images", []).append(np.array(data))
        return imshow(self, data, *args, **kwargs)

    def record_title(self, label, *args, **kwargs):
        seen.setdefault("title", label)
        seen.setdefault("titles", []).append(label)
        return set_title(self, label, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "imshow", record_image)
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", record_title)
    return seen


@pytest.mark.parametrize("offset", [0, 2])
def test_learned_positions_plot_the_models_own_table(tmp_path, plotted, offset):
    torch.manual_seed(0)
    model = ScratchGPTForCausalLM(ScratchGPTConfig(**TINY, position_offset=offset))
    table = model.model.decoder.embeddings.positions.weight.detach().numpy()
    viz.plot_positional_encoding(64, path=tmp_path / "pe.png", model=model)
    assert (tmp_path / "pe.png").stat().st_size > 1000
    np.testing.assert_array_equal(plotted["image"], table[offset:offset + 24])  # capped at the table's 24 rows
    assert "learned" in plotted["title"] and "sin" not in plotted["title"]


def test_sinusoidal_positions_plot_the_formula_in_the_models_layout(tmp_path, plotted):
    model = ScratchGPTForCausalLM(ScratchGPTConfig(**TINY, position_embedding_type="sinusoidal",
                                                   sinusoidal_layout="split"))
    viz.plot_positional_encoding(10, path=tmp_path / "pe.png", model=model)
    expected = sinusoidal_position_encoding(torch.arange(10), 16, "split").numpy()
    np.testing.assert_allclose(plotted["image"], expected)
    assert "sinusoidal" in plotted["title"] and "split" in plotted["title"]


def test_a_learned_table_is_shown_beside_the_similarity_of_its_positions(tmp_path, plotted):
    """A learned table looks like noise (its rows start random); what it encodes is how alike positions are."""
    torch.manual_seed(0)
    model = ScratchGPTForCausalLM(ScratchGPTConfig(**TINY))
    table = model.model.decoder.embeddings.positions.weight.detach().numpy()
    viz.plot_positional_encoding(64, path=tmp_path / "pe.png", model=model)
    similarity = plotted["images"][1]
    unit = table / np.linalg.norm(table, axis=1, keepdims=True)
    np.testing.assert_allclose(similarity, unit @ unit.T, atol=1e-6)
    assert "trained from random" in plotted["titles"][0] and "cosine similarity" in plotted["titles"][1]


def test_getting_started_says_what_the_demos_position_plot_shows():
    """The demo's GPT (configs/gpt-tiny.json) learns its positions: the guide's row for positional_encoding.png must
    say so, not promise the paper's sinusoid."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    config = json.loads((root / "configs" / "gpt-tiny.json").read_text())
    assert config.get("position_embedding_type", "learned") == "learned"
    guide = (root / "docs" / "getting-started.md").read_text()
    row = next(line for line in guide.splitlines() if line.startswith("| `positional_encoding.png`"))
    assert "learned" in row and "cosine similarity" in row
