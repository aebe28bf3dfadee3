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


def default_inverse_frequencies(head_dim: int, rope_theta: float | torch.Tensor = 10000.0, device=None) -> torch.Tensor:
    """θᵢ = base^(−2i/d) for i = 0 … d/2 − 1 (Su et al. 2021, §3.2.2). Returns (d/2,) float32."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim  # 2i/d
    return 1.0 / (rope_theta**exponents)


def dynamic_ntk_inverse_frequencies(
    head_dim: int, rope_theta: float, factor: float, original_max_position_embeddings: int,
    sequence_length: int | torch.Tensor, device=None,
) -> torch.Tensor:
    """Dynamic NTK-aware scaling (bloc97 and emozilla, r/LocalLLaMA 2023; transformers'
    `_compute_dynamic_ntk_parameters`): the frequencies stay the trained ones up to the trained length L and, for a
    longer sequence of ℓ tokens, the base grows so the slowest rotation still covers the whole sequence:

        base' = base · (factor · ℓ / L − (factor − 1))^(d / (d − 2)),   ℓ = max(sequence_length, L),   θᵢ = base'^(−2i/d)

    (the high frequencies, which resolve neighbouring tokens, barely change; the low ones are interpolated).
    L is the config's `max_position_embeddings` (as in transformers). `sequence_length` may be a 0-d tensor (the
    largest position id + 1 of this forward: no host sync). Returns (d/2,) float32. Note that θ depends on the length
    of the forward it is computed for, so keys cached at an earlier, shorter length were rotated with other θ than
    an uncached forward of the whole sequence would use (transformers' models behave the same).
    """
    length = torch.as_tensor(sequence_length, device=device).float().clamp(min=original_max_position_embeddings)
    base = rope_theta * (factor * length / original_max_position_embeddings - (factor - 1)) ** (head_dim / (head_dim - 2))
    return default_inverse_frequencies(head_dim, base, device)


def yarn_inverse_frequencies(head_dim: int, rope_parameters: dict, device=None) -> torch.Tensor:
    """YaRN (Peng et al. 2023, "YaRN: Efficient Context Window Extension of Large Language Models", §3.2 "NTK-by-parts"):
    interpolate only the dimensions whose wavelength is long compared to the trained context L =
    `original_max_position_embeddings`, keep the short ones, and ramp linearly between:

        r(d_i) = L / wavelength_i = L θᵢ / 2π rotations over the trained context; the ramp runs over the dimensions
        whose rotation count lies between β_slow (`beta_slow`, 1) and β_fast (`beta_fast`, 32):
        γᵢ = clamp((i − low) / (high − low), 0, 1) with low/high the (floored/ceiled, `truncate`) dimension indices
        where r = β_fast and r = β_slow;   θᵢ' = (1 − γᵢ) θᵢ + γᵢ θᵢ / factor.

    The paper's attention temperature is applied to cos/sin by `rope_attention_factor`. Same numbers as
    transformers' `_compute_yarn_parameters`. Returns (d/2,) float32.
    """
    base, factor = float(rope_parameters.get("rope_theta", 10000.0)), float(rope_parameters["factor"])
    original = float(rope_parameters["original_max_position_embeddings"])
    beta_fast, beta_slow = rope_parameters.get("beta_fast") or 32, rope_parameters.get("beta_slow") or 1

    def dimension_with_rotations(rotations: float) -> float:  # solve L / (2π base^(2i/d)) = rotations for i
        return head_dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = dimension_with_rotations(beta_fast), dimension_with_rotations(beta_slow)
    if rope_parameters.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, head_dim - 1)
    if low == high:
        high += 0.001  # a one-dimension ramp: avoid 0 / 0
    inv_freq = default_inverse_frequencies(head_dim, base, device)  # extrapolation: θᵢ as trained
    ramp = ((torch.arange(head_dim // 2, dtype=torch.float32, device=device) - low) / (high - low)).clamp(0, 1)  # γᵢ
    return inv_freq / factor * ramp + inv_freq * (1 - ramp)


def rope_attention_factor(rope_parameters: dict | None) -> float:
    """The factor cos and sin are multiplied by: 1, except YaRN's attention temperature (Peng et al. 2023, §3.4):
    √(1/t) = 0.1 · ln(factor) + 1 (for factor > 1), which scales q·k by its square, sharpening attention over a
    longer context. `attention_factor` overrides it; DeepSeek-style `mscale`/`mscale_all_dim` give
    (0.1 · mscale · ln s + 1) / (0.1 · mscale_all_dim · ln s + 1). (transformers' `_compute_yarn_parameters`.)"""
    rope = rope_parameters or {}
    if rope.get("rope_type", "default") != "yarn":
        return 1.0
    if rope.get("attention_factor") is not None:
        return float(rope["attention_factor"])
    factor = float(rope["factor"])

    def temperature(scale: float, mscale: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0

    mscale, mscale_all_dim = rope.get("mscale"), rope.get("mscale_all_dim")
    if mscale and mscale_all_dim:
        return temperature(factor, mscale) / temperature(factor, mscale_all_dim)
    return temperature(factor)


def rope_inverse_frequencies(
    head_dim: int, rope_parameters: dict | None = None, device=None,
    sequence_length: int | torch.Tensor | None = None, max_position_embeddings: int | None = None,
) -> torch.Tensor:
    """θᵢ = base^(−2i/d) for i = 0 … d/2 − 1 (Su et al. 2021, §3.2.2), with the context-extension scalings real
    checkpoints use. Returns (d/2,) float32.

    - "default": θᵢ as above, base = `rope_theta` (10000 in the paper; Llama 3: 500000).
    - "linear" (position interpolation, Chen et al. 2023): θᵢ / factor, i.e. positions are squeezed by `factor`.
    - "llama3" (Meta's Llama 3.1): wavelengths 2π/θᵢ longer than original_max_position_embeddings / low_freq_factor
      are divided by `factor`, shorter than … / high_freq_factor kept, and the band between blended linearly in
      s = (original_max_position_embeddings / wavelength − low_freq_factor) / (high_freq_factor − low_freq_factor):
      θᵢ' = (1 − s) θᵢ / factor + s θᵢ. (transformers' `_compute_llama3_parameters`.)
    - "dynamic": `dynamic_ntk_inverse_frequencies` for a forward of `sequence_length` tokens (None: at most the
      trained length `max_position_embeddings`, i.e. the default θᵢ).
    - "yarn": `yarn_inverse_frequencies` (its attention factor: `rope_attention_factor`).
    Raises ValueError for another `rope_type` (the config checks this first).
    """
    rope = rope_parameters or {}
    base = float(rope.get("rope_theta", 10000.0))
    inv_freq = default_inverse_frequencies(head_dim, base, device)
    rope_type = rope.get("rope_type", "default")
    if rope_type == "default":
        return inv_freq
    factor = float(rope["factor"])
    if rope_type == "linear":
        return inv_freq / factor
    if rope_type == "dynamic":
        if sequence_length is None or max_position_embeddings is None:
            return inv_freq
        return dynamic_ntk_inverse_frequencies(head_dim, base, factor, max_position_embeddings, sequence_length, device)
    if rope_type == "yarn":
        return yarn_inverse_frequencies(head_dim, rope, device)
    if rope_type == "llama3":
        low, high = float(rope["low_freq_factor"]), float(rope["high_freq_factor"])
        original = float(rope["original_max_position_embeddings"])
        wavelength = 2 * math.pi / inv_freq
        scaled = torch.where(wavelength > original / low, inv_freq / factor, inv_freq)  # long waves: interpolated
        s = (original / wavelength - low) / (high - low)
        blended = (1 - s) * scaled / factor + s * scaled
        medium = (wavelength >= original / high) & (wavelength <= original / low)
        return torch.where(medium, blended, scaled)
    raise ValueError(
        f"`rope_type`={rope_type!r} is not supported; allowed values are "
        "('default', 'linear', 'llama3', 'dynamic', 'yarn')."
    )


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
    any length works. Angles are computed in float32 and then cast to the activations' dtype. YaRN multiplies cos and
    sin by its attention factor (`rope_attention_factor`); "dynamic" recomputes θ for this forward's length, the
    largest position id + 1 (as transformers' `dynamic_rope_update`, but without state: the same input always gives
    the same angles, where transformers keeps the θ of the longest sequence seen until one shorter than L comes).
    """

    def __init__(self, head_dim: int, rope_parameters: dict | None = None, max_position_embeddings: int | None = None):
        super().__init__()
        self.head_dim = head_dim
        self.rope_parameters = dict(rope_parameters or {})
        self.max_position_embeddings = max_position_embeddings  # the trained length L of "dynamic" scaling
        self.attention_factor = rope_attention_factor(self.rope_parameters)
        self._inverse_frequencies: dict[torch.device, torch.Tensor] = {}  # θ by device, kept between steps

    def inverse_frequencies(self, position_ids: torch.Tensor) -> torch.Tensor:
        """θ (D/2,) for this forward (`rope_inverse_frequencies`). They depend only on the config, except for
        "dynamic" scaling (on the forward's length), so they are computed once per device, not at every decoding
        step; under torch.compile they are computed in the graph (where they become a constant)."""
        if self.rope_parameters.get("rope_type") == "dynamic":
            length = position_ids.max() + 1  # a tensor: no host sync
            return rope_inverse_frequencies(self.head_dim, self.rope_parameters, position_ids.device, length,
                                            self.max_position_embeddings)
        device = position_ids.device
        if torch.compiler.is_compiling() or device not in self._inverse_frequencies:
            inv_freq = rope_inverse_frequencies(self.head_dim, self.rope_parameters, device)
            if torch.compiler.is_compiling():
                return inv_freq
            self._inverse_frequencies[device] = inv_freq
        return self._inverse_frequencies[device]

    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(B|1, T) position ids → cos, sin of shape (B|1, T, D)."""
        inv_freq = self.inverse_frequencies(position_ids)  # (D/2,)
        with torch.autocast(device_type=position_ids.device.type, enabled=False):
            angles = position_ids.float().unsqueeze(-1) * inv_freq  # (B, T, D/2): m·θᵢ
            angles = torch.cat((angles, angles), dim=-1)  # (B, T, D): one angle per half of each pair
            cos, sin = angles.cos(), angles.sin()
            if self.attention_factor != 1.0:
                cos, sin = cos * self.attention_factor, sin * self.attention_factor
            return cos.to(dtype), sin.to(dtype)


class TokenEmbedding(nn.Embedding):
    """E[token] · √d_model when scaled: "we multiply those weights by √d_model" (§3.4); the output layer ties to E."""

    def __init__(self, vocab_size: int, dim: int, padding_idx: int | None = None, scale: bool = False):
        super().__init__(vocab_size, dim, padding_idx=padding_idx)
        self.scale = math.sqrt(dim) if scale else 1.0

    @property
    def embed_scale(self) -> float | None:
        """√d_model when scaled, else None: the attribute inference servers read to keep the scale when they replace
        this layer with their own embedding (vLLM's transformers backend: `ScaledVocabParallelEmbedding`)."""
        return self.scale if self.scale != 1.0 else None

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return super().forward(input_ids) * self.scale


class Embeddings(nn.Module):
    """x = E[token]·s + P[pos + offset] (+ E_type[segment]), then optional LayerNorm, then dropout (§3.4–3.5; BERT §3).

    With rotary positions (`position_embedding_type="rotary"`) nothing is added here: attention rotates q and k.
    `config.position_offset` (0 by default; BART: 2) shifts every lookup, and a learned table gets that many extra rows.
    The token table E is `embed_tokens`, as in HF's Llama and BART: peft recognises the embedding by that name.
    """

    def __init__(self, config):
        super().__init__()
        C = config.hidden_size
        pad = config.pad_token_id if config.pad_token_id is not None and config.pad_token_id < config.vocab_size else None
        self.embed_tokens = TokenEmbedding(config.vocab_size, C, padding_idx=pad, scale=config.scale_embedding)
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

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """torch's `load_state_dict` (the Trainer resuming a run, FSDP) of a state dict saved when E was `tokens`:
        taken as `embed_tokens` (`from_pretrained` renames through `pretrained.RENAMED_WEIGHTS`)."""
        for name in [key for key in state_dict if key.startswith(prefix + "tokens.")]:
            state_dict.setdefault(prefix + "embed_tokens." + name.removeprefix(prefix + "tokens."), state_dict.pop(name))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        position_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, C)
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
        return self.dropout(x) if self.training and self.dropout.p > 0 else x
