"""Token embeddings and positional encodings.

"Since our model contains no recurrence and no convolution, in order for the model to make use of the order of the
sequence, we must inject some information about the relative or absolute position of the tokens." (§3.5)
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_position_encoding(positions: torch.Tensor, dim: int, layout: str = "interleaved") -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)) (§3.5). (...) → (..., dim).

    `layout="split"` puts the same values as [sin(all i) | cos(all i)] instead (Marian, fairseq).
    """
    if layout not in ("interleaved", "split"):
        raise ValueError(f"`layout` must be 'interleaved' or 'split', got {layout!r}.")
    i2 = torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32)  # 2i
    angles = positions.to(torch.float32).unsqueeze(-1) / (10000.0 ** (i2 / dim))  # (..., ⌈dim/2⌉)
    if layout == "split":
        return torch.cat((angles.sin(), angles.cos()[..., : dim // 2]), dim=-1)
    pe = torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)  # interleave sin, cos
    return pe[..., :dim]


class SinusoidalPositionalEmbedding(nn.Module):
    """Fixed positions: PE(pos) computed on the fly from the formula, so any length works and nothing is stored."""

    def __init__(self, dim: int, layout: str = "interleaved"):
        super().__init__()
        self.dim = dim
        self.layout = layout

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        return sinusoidal_position_encoding(position_ids, self.dim, self.layout)


def rope_inverse_frequencies(head_dim: int, rope_parameters: dict | None = None, device=None) -> torch.Tensor:
    """θᵢ = base^(−2i/d) for i = 0 … d/2 − 1 (Su et al. 2021, §3.2.2), with the context-extension scalings real
    checkpoints use. Returns (d/2,) float32.

    - "default": θᵢ as above, base = `rope_theta` (10000 in the paper; Llama 3: 500000).
    - "linear" (position interpolation, Chen et al. 2023): θᵢ / factor, i.e. positions are squeezed by `factor`.
    - "llama3" (Meta's Llama 3.1): wavelengths 2π/θᵢ longer than original_max_position_embeddings / low_freq_factor
      are divided by `factor`, shorter than … / high_freq_factor kept, and the band between blended linearly in
      s = (original_max_position_embeddings / wavelength − low_freq_factor) / (high_freq_factor − low_freq_factor):
      θᵢ' = (1 − s) θᵢ / factor + s θᵢ. (transformers' `_compute_llama3_parameters`.)
    Raises ValueError for another `rope_type` (the config checks this first).
    """
    rope = rope_parameters or {}
    base = float(rope.get("rope_theta", 10000.0))
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim  # 2i/d
    inv_freq = 1.0 / (base**exponents)
    rope_type = rope.get("rope_type", "default")
    if rope_type == "default":
        return inv_freq
    factor = float(rope["factor"])
    if rope_type == "linear":
        return inv_freq / factor
    if rope_type == "llama3":
        low, high = float(rope["low_freq_factor"]), float(rope["high_freq_factor"])
        original = float(rope["original_max_position_embeddings"])
        wavelength = 2 * math.pi / inv_freq
        scaled = torch.where(wavelength > original / low, inv_freq / factor, inv_freq)  # long waves: interpolated
        s = (original / wavelength - low) / (high - low)
        blended = (1 - s) * scaled / factor + s * scaled
        medium = (wavelength >= original / high) & (wavelength <= original / low)
        return torch.where(medium, blended, scaled)
    raise ValueError(f"`rope_type`={rope_type!r} is not supported; allowed values are ('default', 'linear', 'llama3').")


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x₁, x₂) → (−x₂, x₁) on the two halves of the last dimension: the 90° turn of each pair (xᵢ, x_{i+d/2})."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_position_embedding(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE (Su et al. 2021, eq. 34): rotate each pair of q and k by the angle m·θᵢ of its position m,
    x' = x cos(mθ) + rotate_half(x) sin(mθ), so q'·k' depends only on the distance m − n.

    The pairs are (xᵢ, x_{i+d/2}) (GPT-NeoX / Hugging Face Llama layout; the paper pairs neighbours, which is the
    same rotation after a fixed permutation of W_q and W_k). q: (B, H, T, D), k: (B, H_kv, T, D),
    cos/sin: (B|1, T, D) → rotated q, k with the same shapes and dtypes.
    """
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # (B, 1, T, D): the same angles for every head
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


class RotaryPositionEmbedding(nn.Module):
    """The cos/sin of every angle m·θᵢ for the given position ids, computed once per forward for all layers.

    Positions come from `position_ids` (left padding, caches and packed sequences set them), so nothing is stored:
    any length works. Angles are computed in float32 and then cast to the activations' dtype.
    """

    def __init__(self, head_dim: int, rope_parameters: dict | None = None):
        super().__init__()
        self.head_dim = head_dim
        self.rope_parameters = dict(rope_parameters or {})

    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(B|1, T) position ids → cos, sin of shape (B|1, T, D)."""
        inv_freq = rope_inverse_frequencies(self.head_dim, self.rope_parameters, position_ids.device)  # (D/2,)
        with torch.autocast(device_type=position_ids.device.type, enabled=False):
            angles = position_ids.float().unsqueeze(-1) * inv_freq  # (B, T, D/2): m·θᵢ
            angles = torch.cat((angles, angles), dim=-1)  # (B, T, D): one angle per half of each pair
            return angles.cos().to(dtype), angles.sin().to(dtype)


class TokenEmbedding(nn.Embedding):
    """E[token] · √d_model when scaled: "we multiply those weights by √d_model" (§3.4); the output layer ties to E."""

    def __init__(self, vocab_size: int, dim: int, padding_idx: int | None = None, scale: bool = False):
        super().__init__(vocab_size, dim, padding_idx=padding_idx)
        self.scale = math.sqrt(dim) if scale else 1.0

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return super().forward(input_ids) * self.scale


class Embeddings(nn.Module):
    """x = E[token]·s + P[pos + offset] (+ E_type[segment]), then optional LayerNorm, then dropout (§3.4–3.5; BERT §3).

    With rotary positions (`position_embedding_type="rotary"`) nothing is added here: attention rotates q and k.
    `config.position_offset` (0 by default; BART: 2) shifts every lookup, and a learned table gets that many extra rows.
    """

    def __init__(self, config):
        super().__init__()
        C = config.hidden_size
        pad = config.pad_token_id if config.pad_token_id is not None and config.pad_token_id < config.vocab_size else None
        self.tokens = TokenEmbedding(config.vocab_size, C, padding_idx=pad, scale=config.scale_embedding)
        self.position_offset = config.position_offset
        if config.position_embedding_type == "learned":
            self.positions = nn.Embedding(config.max_position_embeddings + self.position_offset, C)
        elif config.position_embedding_type == "rotary":  # positions enter in attention instead (RoPE)
            self.positions = None
        else:
            self.positions = SinusoidalPositionalEmbedding(C, config.sinusoidal_layout)
        self.token_types = nn.Embedding(config.type_vocab_size, C) if config.type_vocab_size > 0 else None
        self.norm = nn.LayerNorm(C, eps=config.layer_norm_eps) if config.embedding_layer_norm else None
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        position_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = self.tokens(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, C)
        if self.position_offset:
            position_ids = position_ids + self.position_offset
        if self.positions is not None:
            x = x + self.positions(position_ids).to(x.dtype)
        if self.token_types is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros(x.shape[:2], dtype=torch.long, device=x.device)
            x = x + self.token_types(token_type_ids)
        if self.norm is not None:
            x = self.norm(x)
        return self.dropout(x)
