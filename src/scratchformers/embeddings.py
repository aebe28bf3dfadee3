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


class TokenEmbedding(nn.Embedding):
    """E[token] · √d_model when scaled: "we multiply those weights by √d_model" (§3.4); the output layer ties to E."""

    def __init__(self, vocab_size: int, dim: int, padding_idx: int | None = None, scale: bool = False):
        super().__init__(vocab_size, dim, padding_idx=padding_idx)
        self.scale = math.sqrt(dim) if scale else 1.0

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return super().forward(input_ids) * self.scale


class Embeddings(nn.Module):
    """x = E[token]·s + P[pos + offset] (+ E_type[segment]), then optional LayerNorm, then dropout (§3.4–3.5; BERT §3).

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
        x = x + self.positions(position_ids).to(x.dtype)
        if self.token_types is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros(x.shape[:2], dtype=torch.long, device=x.device)
            x = x + self.token_types(token_type_ids)
        if self.norm is not None:
            x = self.norm(x)
        return self.dropout(x)
