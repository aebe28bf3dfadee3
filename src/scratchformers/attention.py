"""Scaled dot-product attention, written out, and multi-head attention for self- and cross-attention.

Shapes: B batch, T queries, S keys, H heads, D head size, C = H·D model width; H_kv key/value heads (grouped-query
attention, H_kv divides H; H_kv = H is the paper's multi-head attention).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import Cache, EncoderDecoderCache
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from .compat import is_paged_cache, write_paged_cache
from .embeddings import apply_rotary_position_embedding
from .masks import attention_backend


def repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Grouped-query attention (Ainslie et al. 2023): key/value head j serves query heads j·g … j·g + g − 1.
    (B, H_kv, S, D) → (B, H_kv·g, S, D), each head repeated g times in place (a view when g = 1)."""
    if groups == 1:
        return x
    B, H_kv, S, D = x.shape
    return x[:, :, None].expand(B, H_kv, groups, S, D).reshape(B, H_kv * groups, S, D)


def scaled_dot_product_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention(Q, K, V) = softmax(QKᵀ/√d_k + M) V (Vaswani et al. 2017, eq. 1); returns (output, weights).

    The eager backend: the same signature as transformers' attention interface, so "sdpa", "flash_attention_2" or
    "flex_attention" can replace it. q: (B, H, T, D), k/v: (B, H_kv, S, D) → output (B, T, H, D), weights (B, H, T, S);
    with fewer key/value heads (`module.num_key_value_groups` = H / H_kv > 1) each serves its group of query heads.
    """
    groups = getattr(module, "num_key_value_groups", 1)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    B, H, T, D = query.shape
    H_kv, S = key.shape[1], key.shape[2]
    # Grouped-query attention without copying K and V (what `repeat_kv` would do): query heads j·g … j·g + g − 1
    # all attend to key/value head j, so stack those g heads' queries as g·T rows against that one head.
    grouped = query.reshape(B, H_kv, groups * T, D)  # (B, H, T, D) -> (B, H_kv, g·T, D)
    scores = torch.matmul(grouped, key.transpose(-1, -2)) * scaling  # (B, H_kv, g·T, D) x (B, H_kv, D, S)
    scores = scores.view(B, H, T, S)  # -> (B, H_kv, g·T, S) = (B, H, T, S)
    if attention_mask is not None:
        scores = scores + attention_mask  # 0 where allowed, ≈ -inf where masked
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights.view(B, H_kv, groups * T, S), value)  # (B, H_kv, g·T, S) x (B, H_kv, S, D)
    return output.view(B, H, T, D).transpose(1, 2), weights  # (B, H, T, D) -> (B, T, H, D)


def attention_function(attn_implementation: str | None, output_attentions: bool = False):
    """The attention function `masks.attention_backend` chose: ours for "eager"; every other one from transformers'
    attention interface, side by side with ours — sdpa, flash, continuous batching's paged functions ("paged|eager":
    transformers' `eager_paged_attention_forward`, which reads the paged cache's keys and values), or an inference
    server's own ("vllm", "sglang")."""
    backend = attention_backend(attn_implementation, output_attentions)
    if backend == "eager":
        return scaled_dot_product_attention
    return ALL_ATTENTION_FUNCTIONS.get_interface(backend, scaled_dot_product_attention)


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, T, C) → (B, H, T, D): each head attends in its own D = C/H dimensional subspace."""
    B, T, C = x.shape
    return x.view(B, T, num_heads, C // num_heads).transpose(1, 2)


class MultiHeadAttention(nn.Module):
    """MultiHead(Q, K, V) = Concat(head₁…head_h) Wᴼ, headᵢ = Attention(QWᵢᵠ, KWᵢᴷ, VWᵢⱽ) (§3.2.2).

    Self-attention projects Q, K and V from the same x in one fused matmul x[W_q; W_k; W_v]; cross-attention takes
    Q from the decoder and K, V from the encoder output ("memory"), which are computed once per source and cached.
    With `config.num_key_value_heads` = H_kv < H, K and V have only H_kv heads (grouped-query attention; H_kv = 1:
    multi-query attention, Shazeer 2019): the cache stores those, and they are repeated only inside attention.
    Rotary positions (`position_embeddings` = (cos, sin)) rotate this step's q and k before k enters the cache.
    """

    def __init__(self, config, layer_idx: int, is_causal: bool, is_cross_attention: bool = False):
        super().__init__()
        C, H = config.hidden_size, config.num_attention_heads
        H_kv = config.num_key_value_heads or H
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = H
        self.num_key_value_heads = H_kv
        self.num_key_value_groups = H // H_kv  # read by transformers' sdpa backend too (it repeats k/v itself)
        self.head_dim = D = C // H
        self.scaling = self.head_dim**-0.5  # 1/√d_k
        self.is_causal = is_causal  # read by the sdpa/flash backends when no explicit mask is given
        self.is_cross_attention = is_cross_attention
        self.dropout = config.attention_probs_dropout_prob
        bias = config.attention_bias
        output_bias = config.attention_output_bias
        self.qkv_sizes = (H * D, H_kv * D, H_kv * D)
        if is_cross_attention:
            self.q_proj = nn.Linear(C, C, bias=bias)  # Q = X_dec W_q
            self.kv_proj = nn.Linear(C, 2 * H_kv * D, bias=bias)  # [K V] = X_enc [W_k W_v]
        else:
            self.qkv_proj = nn.Linear(C, sum(self.qkv_sizes), bias=bias)  # [Q K V] = X [W_q W_k W_v]
        self.out_proj = nn.Linear(C, C, bias=bias if output_bias is None else output_bias)  # Wᴼ
        self.out_proj.is_residual_projection = True

    def _project_memory(self, memory: torch.Tensor, cache: Cache | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-attention keys and values from the encoder output, computed once per source when a cache is given."""
        if isinstance(cache, EncoderDecoderCache) and cache.is_updated.get(self.layer_idx, False):
            layer = cache.cross_attention_cache.layers[self.layer_idx]
            return layer.keys, layer.values
        k, v = self.kv_proj(memory).chunk(2, dim=-1)
        k, v = split_heads(k, self.num_key_value_heads), split_heads(v, self.num_key_value_heads)  # (B, H_kv, S, D)
        if isinstance(cache, EncoderDecoderCache):
            k, v = cache.cross_attention_cache.update(k, v, self.layer_idx)
            cache.is_updated[self.layer_idx] = True
        return k, v

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        memory: torch.Tensor | None = None,
        output_attentions: bool = False,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **attention_kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`position_embeddings`: rotary (cos, sin), each (B|1, T, D), or None. `attention_kwargs` go to the backend
        as they are (e.g. the flash backends' packed-sequence lengths; continuous batching's `read_index`,
        `write_index`, `cu_seq_lens_k`, …; an inference server's own). With continuous batching's paged `cache` the
        keys and values are read and written through it (`compat.write_paged_cache`), not our `GrowingCache`."""
        B, T, C = hidden_states.shape
        if self.is_cross_attention:
            q = split_heads(self.q_proj(hidden_states), self.num_heads)  # (B, H, T, D)
            k, v = self._project_memory(memory, cache)  # (B, H, S, D)
        else:
            q, k, v = self.qkv_proj(hidden_states).split(self.qkv_sizes, dim=-1)
            q = split_heads(q, self.num_heads)  # (B, H, T, D)
            k, v = split_heads(k, self.num_key_value_heads), split_heads(v, self.num_key_value_heads)  # (B, H_kv, T, D)
            if position_embeddings is not None:  # RoPE: rotate by each token's own position, then cache
                q, k = apply_rotary_position_embedding(q, k, *position_embeddings)
                if torch.is_grad_enabled():
                    # q and k are new tensors now; a view v would keep the whole fused (B, T, (H + 2·H_kv)·D)
                    # projection alive for backward, where v's own (B, T, H_kv·D) is all attention saves
                    v = v.contiguous()
            if is_paged_cache(cache):  # continuous batching: B = 1 row holding every request's new tokens
                # written at `write_index` in the shared page pool; k/v become (1, H_kv, S, D), every request's
                # cached + new keys, and the batcher's mask keeps each query inside its own request
                k, v = write_paged_cache(cache, k, v, self.layer_idx, attention_kwargs)
            elif cache is not None:  # append this step's keys/values to the past ones: (B, H_kv, past + T, D)
                self_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
                k, v = self_cache.update(k, v, self.layer_idx)
        attend = attention_function(self.config._attn_implementation, output_attentions)
        output, weights = attend(
            self, q, k, v, attention_mask, scaling=self.scaling, dropout=self.dropout if self.training else 0.0,
            **attention_kwargs,
        )
        output = output.reshape(B, T, C)  # concatenate heads: (B, T, H, D) -> (B, T, C)
        return self.out_proj(output), weights
