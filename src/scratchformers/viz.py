"""Pictures of what the models do: attention heatmaps, positional encodings, loss curves.

matplotlib is an optional extra (``pip install "scratchformers[viz]"``); it is imported only when a plot is drawn,
with the non-interactive Agg backend, so these functions work on headless machines.

- ``attention_weights(model, tokenizer, text, ...)`` runs any of our checkpoints with ``output_attentions=True`` and
  returns the labels and a ``(layers, heads, T_query, T_key)`` array for self-attention (GPT, BERT, encoder,
  decoder) or cross-attention (decoder over the source).
- ``plot_attention_grid`` draws a layer × head grid of heatmaps; ``plot_alignment`` one alignment matrix (e.g.
  Bahdanau attention of an RNN decoder over the source).
- ``plot_positional_encoding`` draws PE(pos, 2i) = sin(pos/10000^(2i/d)), PE(pos, 2i+1) = cos(...) (§3.5), or, given
  a model, what that model really uses (``position_encoding_table``: a learned table — beside it the cosine
  similarity of its positions, ``position_similarity`` —, its sinusoids, or RoPE angles), named in the title.
- ``plot_loss_curve`` draws training/validation loss from a ``Trainer``'s ``log_history``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .embeddings import sinusoidal_position_encoding

ATTENTION_KINDS = ("self", "encoder", "decoder", "cross")


def _pyplot():
    """``matplotlib.pyplot`` with the Agg backend, or an ImportError that says how to install the ``viz`` extra."""
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError(
            'scratchformers.viz needs matplotlib: pip install "scratchformers[viz]" (or pip install matplotlib)'
        ) from err
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def token_labels(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """Readable labels for token ids: byte-level 'Ġ' and SentencePiece '▁' become a space, 'Ċ' becomes '\\n'.

    WordPiece continuations keep their '##' so a reader sees where a word was split.
    """
    labels = []
    for token in tokenizer.convert_ids_to_tokens(list(ids)):
        if token in tokenizer.all_special_tokens or token.startswith("##"):
            labels.append(token)
            continue
        text = tokenizer.convert_tokens_to_string([token])
        labels.append(text.replace("\n", "\\n").replace("\t", "\\t") or token)
    return labels


def _stack(attentions: Sequence[torch.Tensor] | None, name: str) -> np.ndarray:
    """Per-layer ``(B, H, T, S)`` tensors → one ``(layers, H, T, S)`` float array of the first batch row."""
    if not attentions or any(a is None for a in attentions):
        raise ValueError(f"the model returned no {name} attentions; is output_attentions supported by this model?")
    return torch.stack([a[0].detach().float().cpu() for a in attentions]).numpy()


@torch.no_grad()
def attention_weights(
    model: Any, tokenizer: Any, text: str, target_text: str | None = None, kind: str = "self"
) -> tuple[list[str], list[str], np.ndarray]:
    """``(query_labels, key_labels, weights)`` with ``weights`` of shape (layers, heads, T_query, T_key).

    ``kind``: ``"self"`` for decoder-only and encoder-only models (and an encoder-decoder's encoder, alias
    ``"encoder"``); ``"decoder"`` for an encoder-decoder's masked self-attention over ``target_text``; ``"cross"``
    for its attention from ``target_text`` positions over the source ``text``. Rows sum to 1 (softmax).
    """
    if kind not in ATTENTION_KINDS:
        raise ValueError(f"unknown attention kind {kind!r}; allowed: {', '.join(ATTENTION_KINDS)}")
    model.eval()
    encoded = tokenizer(text, return_tensors="pt")
    source = token_labels(tokenizer, encoded["input_ids"][0].tolist())
    inputs = {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    if not getattr(model.config, "is_encoder_decoder", False):
        if kind != "self":
            raise ValueError(f"kind={kind!r} needs an encoder-decoder model; {type(model).__name__} has only 'self'")
        out = model(**inputs, output_attentions=True, return_dict=True)
        return source, source, _stack(out.attentions, "self")
    if kind in ("decoder", "cross") and target_text is None:
        raise ValueError(f"kind={kind!r} needs target_text (the decoder's side of the pair)")
    target = tokenizer(text_target=target_text or "", return_tensors="pt")["input_ids"]
    start = model.config.decoder_start_token_id
    start = model.config.pad_token_id if start is None else start
    decoder_input_ids = torch.cat([torch.full((1, 1), start, dtype=torch.long), target[:, :-1]], dim=1)
    out = model(**inputs, decoder_input_ids=decoder_input_ids, output_attentions=True, return_dict=True)
    target_labels = token_labels(tokenizer, decoder_input_ids[0].tolist())
    if kind in ("self", "encoder"):
        return source, source, _stack(out.encoder_attentions, "encoder")
    if kind == "decoder":
        return target_labels, target_labels, _stack(out.decoder_attentions, "decoder")
    return target_labels, source, _stack(out.cross_attentions, "cross")


def _heatmap(
    ax: Any, matrix: np.ndarray, x_labels: Sequence[str], y_labels: Sequence[str], fontsize: float, vmax: float
) -> Any:
    """Draw one (T_query, T_key) heatmap on ``ax`` with token labels; returns the image for a colour bar."""
    image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(x_labels)))
    ax.set_xticklabels(list(x_labels), rotation=90, fontsize=fontsize)
    ax.set_yticks(range(len(y_labels)))
    ax.set_yticklabels(list(y_labels), fontsize=fontsize)
    return image


def plot_attention_grid(
    weights: np.ndarray | torch.Tensor,
    x_labels: Sequence[str],
    y_labels: Sequence[str] | None = None,
    path: str | os.PathLike = "attention.png",
    title: str = "attention",
) -> Path:
    """Save a layer × head grid of heatmaps of ``weights`` (layers, heads, T_query, T_key); row = query token."""
    weights = np.asarray(weights.detach().cpu() if isinstance(weights, torch.Tensor) else weights, dtype=float)
    if weights.ndim != 4:
        raise ValueError(f"weights must be (layers, heads, T_query, T_key), got shape {weights.shape}")
    y_labels = list(x_labels) if y_labels is None else list(y_labels)
    layers, heads, rows, cols = weights.shape
    if (rows, cols) != (len(y_labels), len(x_labels)):
        raise ValueError(f"weights are {rows}×{cols} per head but there are {len(y_labels)}×{len(x_labels)} labels")
    plt = _pyplot()
    cell = max(2.2, 0.22 * max(rows, cols))
    fig, axes = plt.subplots(
        layers, heads, figsize=(cell * heads + 1.5, cell * layers + 1), squeeze=False, layout="constrained"
    )
    fontsize = max(4.0, min(8.0, 120.0 / max(rows, cols)))
    image, vmax = None, max(float(weights.max()), 1e-6)  # one colour scale for every panel
    for layer in range(layers):
        for head in range(heads):
            ax = axes[layer][head]
            image = _heatmap(ax, weights[layer, head], x_labels, y_labels, fontsize, vmax)
            ax.set_title(f"layer {layer} · head {head}", fontsize=9)
            if head:
                ax.set_yticklabels([])
            if layer != layers - 1:
                ax.set_xticklabels([])
    fig.suptitle(f"{title}  (rows: queries, columns: keys)")
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def plot_alignment(
    weights: np.ndarray | torch.Tensor,
    source_labels: Sequence[str],
    target_labels: Sequence[str],
    path: str | os.PathLike = "alignment.png",
    title: str = "alignment",
) -> Path:
    """Save one (T_target, T_source) alignment heatmap, e.g. Bahdanau attention of an RNN decoder over the source."""
    weights = np.asarray(weights.detach().cpu() if isinstance(weights, torch.Tensor) else weights, dtype=float)
    weights = weights.reshape(weights.shape[-2], weights.shape[-1]) if weights.ndim > 2 else weights
    if weights.ndim != 2:
        raise ValueError(f"weights must be (T_target, T_source), got shape {weights.shape}")
    return plot_attention_grid(weights[None, None], source_labels, target_labels, path, title)


def plot_attention(
    model: Any,
    tokenizer: Any,
    text: str,
    path: str | os.PathLike = "attention.png",
    target_text: str | None = None,
    kind: str = "self",
) -> Path:
    """``attention_weights`` for ``text`` drawn as a layer × head grid and saved to ``path``."""
    queries, keys, weights = attention_weights(model, tokenizer, text, target_text=target_text, kind=kind)
    name = getattr(model.config, "model_type", type(model).__name__)
    return plot_attention_grid(weights, keys, queries, path, title=f"{name} {kind}-attention")


def position_encoding_table(model: Any, max_len: int = 64) -> tuple[np.ndarray, str]:
    """What ``model`` adds (or applies) at positions 0 … max_len − 1, and a title saying what that is.

    - learned positions: the rows of the model's own table, ``weight[pos + position_offset]`` — (max_len, hidden);
    - sinusoidal: the fixed encoding with the model's layout (§3.5) — (max_len, hidden);
    - rotary: nothing is added to the embeddings; cos(m·θᵢ) of the rotations applied to queries and keys —
      (max_len, head_dim / 2).

    The first ``Embeddings`` module is used (an encoder-decoder's encoder). ``max_len`` is capped at the learned
    table's length. ValueError for a model without one of our ``Embeddings`` modules (e.g. the RNN family).
    """
    from .embeddings import Embeddings, SinusoidalPositionalEmbedding, rope_inverse_frequencies

    if max_len < 1:
        raise ValueError(f"need max_len >= 1, got {max_len}")
    found = next((m for m in model.modules() if isinstance(m, Embeddings)), None)
    if found is None:
        raise ValueError(f"{type(model).__name__} has no position encoding to plot (no scratchformers Embeddings)")
    name = getattr(model.config, "model_type", type(model).__name__)
    with torch.no_grad():
        if isinstance(found.positions, torch.nn.Embedding):
            rows = found.positions.weight[found.position_offset:]
            table = rows[:max_len].detach().float().cpu().numpy()
            offset = f" (rows from {found.position_offset})" if found.position_offset else ""
            return table, (f"{name}: learned position embeddings P[pos]{offset}, {table.shape[1]} dimensions "
                           "(trained from random values, no formula)")
        if isinstance(found.positions, SinusoidalPositionalEmbedding):
            table = found.positions(torch.arange(max_len)).float().cpu().numpy()
            dim = table.shape[1]
            return table, (f"{name}: sinusoidal PE(pos, 2i) = sin(pos/10000^(2i/{dim})), PE(pos, 2i+1) = cos(·)"
                           f" ({found.positions.layout} layout)")
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    theta = rope_inverse_frequencies(head_dim, getattr(config, "rope_parameters", None))
    table = torch.cos(torch.arange(max_len, dtype=torch.float32).unsqueeze(-1) * theta).numpy()
    return table, f"{name}: rotary (nothing added to embeddings): cos(m·θᵢ) rotating q and k, head_dim {head_dim}"


def position_similarity(table: np.ndarray) -> np.ndarray:
    """The cosine similarity of every two rows of a (positions × dimensions) table: (positions, positions), 1 on the
    diagonal (a zero row is similar to nothing)."""
    rows = np.asarray(table, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit = rows / np.where(norms > 0, norms, 1.0)
    return unit @ unit.T


def plot_positional_encoding(
    max_len: int = 64, dim: int = 128, path: str | os.PathLike = "positional_encoding.png", model: Any = None
) -> Path:
    """Save a position encoding as a (positions × dimensions) heatmap beside a second view of it.

    Without ``model``: the sinusoidal encoding of the paper (§3.5) with ``dim`` dimensions, beside the waves of a few
    dimensions. With ``model``: what that model really uses (``position_encoding_table``: its learned table, its
    sinusoidal layout, or its rotary angles), named in the title; ``dim`` is then ignored. A learned table's rows
    look like noise (each starts random and moves only as training needs), so beside it is what it encodes: the cosine
    similarity of every two positions' vectors. At initialisation, and still after a short run (the demo's), that is
    the diagonal alone — the positions are unrelated vectors; a table that has learned order shows a band of similar
    neighbours along the diagonal (GPT-2's does). ValueError for max_len < 1 or dim < 2.
    """
    if model is not None:
        pe, title = position_encoding_table(model, max_len)
    else:
        if max_len < 1 or dim < 2:
            raise ValueError(f"need max_len >= 1 and dim >= 2, got max_len={max_len}, dim={dim}")
        pe = sinusoidal_position_encoding(torch.arange(max_len), dim).numpy()  # (max_len, dim)
        title = f"PE(pos, 2i) = sin(pos/10000^(2i/{dim})),  PE(pos, 2i+1) = cos(·)"
    max_len, dim = pe.shape
    sinusoidal = model is None
    learned = model is not None and "learned position embeddings" in title
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [1.3, 1]})
    bound = max(float(np.abs(pe).max()), 1e-8)
    image = left.imshow(pe, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    left.set_xlabel("dimension i")
    left.set_ylabel("position pos")
    left.set_title(title, fontsize=9 if len(title) > 70 else None)
    fig.colorbar(image, ax=left)
    if learned:
        similarity = position_similarity(pe)
        shown = right.imshow(similarity, cmap="RdBu", vmin=-1, vmax=1)
        right.set_xlabel("position pos′")
        right.set_ylabel("position pos")
        right.set_title("cosine similarity of P[pos] and P[pos′]", fontsize=9)
        fig.colorbar(shown, ax=right)
    else:
        for i in sorted({2 * max(1, dim // n // 2) for n in (32, 8, 4, 2)} & set(range(0, dim, 2))):
            label = f"dim {i} (sin, wavelength {2 * math.pi * 10000 ** (i / dim):.0f})" if sinusoidal else f"dim {i}"
            right.plot(range(max_len), pe[:, i], label=label)
        right.set_xlabel("position pos")
        right.set_title("a few dimensions: wavelengths grow with i" if sinusoidal else "a few dimensions")
        right.legend(fontsize=8)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def plot_loss_curve(log_history: Sequence[Mapping[str, Any]], path: str | os.PathLike = "loss.png") -> Path:
    """Save training loss (and validation loss where logged) against the optimizer step, from ``log_history``."""
    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h and math.isfinite(h["loss"])]
    evals = [(h["step"], h["eval_loss"]) for h in log_history if "eval_loss" in h]
    if not train and not evals:
        raise ValueError("log_history holds no 'loss' or 'eval_loss' entries to plot")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if train:
        ax.plot(*zip(*train), label="training loss")
    if evals:
        ax.plot(*zip(*evals), "o-", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats / token)")
    ax.set_title("loss curve")
    ax.grid(alpha=0.3)
    ax.legend()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out
