"""Feed-forward, residual + LayerNorm, the Transformer layer and the stack of N layers shared by every family.

The modern decoder (Llama, Mistral, Qwen2) is the same layer and stack with other options: RMSNorm for LayerNorm
(`norm_type`), a gated SwiGLU feed-forward (`ffn_type`), rotary positions (`position_embedding_type`) and grouped-query
attention (`num_key_value_heads`, in attention.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import Cache, EncoderDecoderCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPastAndCrossAttentions

from .attention import MultiHeadAttention
from .cache import GrowingCache
from .checks import (
    check_attention_mask,
    check_input_ids,
    check_inputs_embeds,
    check_position_ids,
    check_sequence_length,
)
from .compat import cache_field, is_paged_cache
from .embeddings import Embeddings, RotaryPositionEmbedding
from .lean_backward import rms_norm, rms_normalize, swiglu_down
from .losses import is_plain_linear, written_backward_applies
from .masks import attention_inputs, is_prepared_mask, paged_attention_inputs, positions_from_attention_mask


def gelu_new(x: torch.Tensor) -> torch.Tensor:
    """GELU, tanh approximation (GPT-2): 0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))."""
    return F.gelu(x, approximate="tanh")


ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "gelu_new": gelu_new, "silu": F.silu}


class FeedForward(nn.Module):
    """FFN(x) = act(xW₁ + b₁)W₂ + b₂, applied to each position separately and identically (§3.3).

    `gated=True`: the gated linear unit FFN(x) = (act(x W_gate) ⊙ x W_up) W_down (Shazeer 2020, "GLU Variants Improve
    Transformer"); with act = SiLU this is SwiGLU (Llama, Mistral, Qwen2), with GELU GeGLU. W_gate and W_up are one
    fused matmul `fc_in` = x[W_gate W_up] (C → 2·d_ff), as our attention fuses W_q, W_k, W_v.
    """

    def __init__(self, hidden_size: int, intermediate_size: int, activation: str, bias: bool = True,
                 gated: bool = False):
        super().__init__()
        self.gated = gated
        width = 2 * intermediate_size if gated else intermediate_size
        self.fc_in = nn.Linear(hidden_size, width, bias=bias)  # W₁ (or [W_gate W_up]): C -> d_ff (2·d_ff)
        self.act = ACTIVATIONS[activation]
        self.fc_out = nn.Linear(intermediate_size, hidden_size, bias=bias)  # W₂ (W_down): d_ff -> C
        self.fc_out.is_residual_projection = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gated:
            if self.act is F.silu and is_plain_linear(self.fc_out) and written_backward_applies(x, self.fc_out.weight):
                return swiglu_down(self.fc_in(x), self.fc_out)  # the same output, less saved for backward
            gate, up = self.fc_in(x).chunk(2, dim=-1)  # (B, T, d_ff) each
            return self.fc_out(self.act(gate) * up)
        return self.fc_out(self.act(self.fc_in(x)))


class RMSNorm(nn.Module):
    """RMSNorm(x) = x / √(mean(x²) + ε) · g (Zhang & Sennrich 2019): LayerNorm without the mean and the bias.

    Computed in float32 and cast back before the gain, as Llama does, so half-precision activations agree with it.
    """

    def __init__(self, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))  # g
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # written out, not torch's fused `F.rms_norm`: the ONNX exporter (opset 17) has no `aten::rms_norm`, and the
        # fused call measured no faster per decoding step here (docs/static-cache.md)
        if written_backward_applies(x, self.weight):
            return rms_norm(x, self.weight, self.eps)  # the same output, less saved for backward (lean_backward.py)
        normed, _ = rms_normalize(x, self.eps)
        return self.weight * normed.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def normalization(norm_type: str, hidden_size: int, eps: float) -> nn.Module:
    """The normalisation layer `norm_type` names: "layernorm" (Ba et al. 2016) or "rmsnorm" (Zhang & Sennrich 2019)."""
    if norm_type == "rmsnorm":
        return RMSNorm(hidden_size, eps=eps)
    if norm_type == "layernorm":
        return nn.LayerNorm(hidden_size, eps=eps)
    raise ValueError(f"`norm_type`={norm_type!r} is not supported; allowed values are ('layernorm', 'rmsnorm').")


class ResidualNorm(nn.Module):
    """Post-LN: LayerNorm(x + Dropout(Sublayer(x))) (§5.4); pre-LN: x + Dropout(Sublayer(LayerNorm(x))) (GPT-2).

    Use as `x = rn.add(x, sublayer(rn.normalize(x)))`: `normalize` is the identity for post-LN.
    """

    def __init__(self, hidden_size: int, norm_placement: str, dropout: float, eps: float, norm_type: str = "layernorm"):
        super().__init__()
        self.pre = norm_placement == "pre"
        self.norm = normalization(norm_type, hidden_size, eps)
        self.dropout = nn.Dropout(dropout)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x) if self.pre else x

    def add(self, x: torch.Tensor, sublayer_output: torch.Tensor) -> torch.Tensor:
        if self.training and self.dropout.p > 0:  # dropout is the identity otherwise: no module call per step
            sublayer_output = self.dropout(sublayer_output)
        y = x + sublayer_output
        return y if self.pre else self.norm(y)


def past_length(cache: Cache | None) -> int | torch.Tensor:
    """How many tokens the cache already holds. A Python int, except under torch.compile with a static cache: there
    it stays the cache's 0-d counter tensor, so the graph neither breaks on `int()` nor bakes in one step's value."""
    if cache is None:
        return 0
    past = cache.get_seq_length()
    return past if isinstance(past, torch.Tensor) and torch.compiler.is_compiling() else int(past)


class TransformerLayer(GradientCheckpointingLayer):
    """One layer: (masked) self-attention, [cross-attention over the encoder output], feed-forward — each wrapped in
    a residual connection with LayerNorm (§3.1). Encoder/BERT: not causal; GPT/decoder: causal; decoder: + cross."""

    def __init__(self, config, layer_idx: int, causal: bool, cross_attention: bool = False):
        super().__init__()
        C, p, eps, place = config.hidden_size, config.hidden_dropout_prob, config.layer_norm_eps, config.norm_placement
        norm = config.norm_type
        self.self_attn = MultiHeadAttention(config, layer_idx, is_causal=causal)
        self.self_attn_residual = ResidualNorm(C, place, p, eps, norm)
        self.cross_attn = MultiHeadAttention(config, layer_idx, False, True) if cross_attention else None
        self.cross_attn_residual = ResidualNorm(C, place, p, eps, norm) if cross_attention else None
        self.ffn = FeedForward(C, config.intermediate_size, config.activation, bias=config.ffn_bias,
                               gated=config.ffn_type == "gated")
        self.ffn_residual = ResidualNorm(C, place, p, eps, norm)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        output_attentions: bool = False,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **attention_kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """`position_embeddings`: the rotary (cos, sin) for self-attention, or None. `attention_kwargs`: extra
        arguments of the self-attention backend (the flash backends' `cu_seq_lens_q/k`, `max_length_q/k` for packed
        sequences)."""
        x, rn = hidden_states, self.self_attn_residual
        attn, self_weights = self.self_attn(
            rn.normalize(x), attention_mask, cache, output_attentions=output_attentions,
            position_embeddings=position_embeddings, **attention_kwargs,
        )
        x = rn.add(x, attn)
        cross_weights = None
        if self.cross_attn is not None:
            rn = self.cross_attn_residual
            attn, cross_weights = self.cross_attn(rn.normalize(x), memory_mask, cache, memory, output_attentions)
            x = rn.add(x, attn)
        x = self.ffn_residual.add(x, self.ffn(self.ffn_residual.normalize(x)))
        return x, self_weights, cross_weights


class TransformerStack(nn.Module):
    """Embed the tokens, then x ← Layerₙ(x) for n = 1…N ("a stack of N = 6 identical layers", §3.1), then a final
    LayerNorm when LayerNorm comes first in each sub-layer (pre-LN). GPT and BERT are one stack; the
    encoder-decoder is two. Inputs are validated and the mask is built once, here, for all layers.

    `input_prefix` is put before the argument names in error messages (default: "decoder_" for a stack with
    cross-attention, which is the decoder of an encoder-decoder, else ""), so they name what the user passed."""

    def __init__(self, config, num_layers: int, causal: bool, cross_attention: bool = False, embeddings=None,
                 input_prefix: str | None = None):
        super().__init__()
        self.config = config
        self.input_prefix = input_prefix if input_prefix is not None else ("decoder_" if cross_attention else "")
        self.causal = causal
        self.cross_attention = cross_attention
        self.embeddings = embeddings if embeddings is not None else Embeddings(config)
        self.layers = nn.ModuleList(TransformerLayer(config, i, causal, cross_attention) for i in range(num_layers))
        pre = config.norm_placement == "pre"
        norm = config.norm_type
        self.final_norm = normalization(norm, config.hidden_size, config.layer_norm_eps) if pre else nn.Identity()
        rotary = config.position_embedding_type == "rotary"  # RoPE: positions enter each self-attention
        head_dim = config.hidden_size // config.num_attention_heads
        self.rotary = (RotaryPositionEmbedding(head_dim, config.rope_parameters, config.max_position_embeddings)
                       if rotary else None)
        # each layer's self-attention kind: "full_attention", or "sliding_attention" (the last W positions only)
        # (only a scratch_gpt config carries a window: one causal stack of num_hidden_layers)
        windowed = causal and getattr(config, "sliding_window", None) is not None
        self.layer_types = config.attention_layer_types() if windowed else ["full_attention"] * num_layers

    def _key_span(self, cache: Cache | None, query_length: int, past: int | torch.Tensor,
                  layer_idx: int) -> tuple[int | torch.Tensor, int]:
        """(S, offset): how many keys the self-attention of layer `layer_idx` gets and the absolute position of the
        first. Without a cache past + T from 0; a static cache has all its slots; a sliding-window cache layer keeps
        only its last W − 1 keys (transformers' `Cache.get_mask_sizes`)."""
        if cache is None:
            return past + query_length, 0
        self_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
        if not self_cache.is_compileable and not any(getattr(layer, "is_sliding", False) for layer in self_cache.layers):
            return past + query_length, 0  # (what get_mask_sizes says too; past may be a tensor under compile)
        key_length, key_offset = self_cache.get_mask_sizes(query_length, layer_idx)
        return int(key_length), int(key_offset)

    def _validate(self, input_ids, inputs_embeds, attention_mask, token_type_ids, past: int | torch.Tensor,
                  position_ids=None):
        p = self.input_prefix
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError(f"Pass exactly one of `{p}input_ids` or `{p}inputs_embeds`.")
        if input_ids is not None:
            check_input_ids(input_ids, self.config.vocab_size, name=f"{p}input_ids")
        else:
            check_inputs_embeds(inputs_embeds, self.config.hidden_size, name=f"{p}inputs_embeds")
        B, T = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
        known = isinstance(past, int)  # a tensor only for a static cache under torch.compile: no data-dependent checks
        if attention_mask is not None and not is_prepared_mask(attention_mask):  # 4-D masks: checked where used
            length = past + T if known else attention_mask.shape[-1]
            check_attention_mask(attention_mask, B, length, name=f"{p}attention_mask")
        if self.config.position_embedding_type == "learned" and known and position_ids is None:
            # given position ids are checked themselves: a packed row may be longer than the position table
            check_sequence_length(past + T, self.config.max_position_embeddings)
        if position_ids is not None:
            learned = self.config.position_embedding_type == "learned"
            check_position_ids(position_ids, B, T, self.config.max_position_embeddings if learned else None)
        if token_type_ids is not None:
            if self.embeddings.token_types is None:
                raise ValueError("`token_type_ids` given but this model has no token-type embeddings (type_vocab_size=0).")
            check_input_ids(token_type_ids, self.config.type_vocab_size, name="token_type_ids")
            if tuple(token_type_ids.shape) != (B, T):
                raise ValueError(f"`token_type_ids` must have shape {(B, T)}, got {tuple(token_type_ids.shape)}.")

    def new_cache(self) -> Cache:
        """An empty KV cache (appending in place): self-attention only, or self + cross for a decoder."""
        if self.cross_attention:
            return EncoderDecoderCache(GrowingCache(config=self.config), GrowingCache(config=self.config))
        return GrowingCache(config=self.config)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        use_cache: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        **backend_kwargs,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        """`backend_kwargs` go to every self-attention call as they are: continuous batching's (`read_index`,
        `write_index`, `cu_seq_lens_q/k`, … with its paged `cache`) or an inference server's own (vLLM's
        `attention_instances`). With a paged cache the tokens of all requests are one row (B = 1), `position_ids`
        (1, T) count each request's own positions, and the masks are the batcher's (`_paged_masks`), not ours."""
        paged = is_paged_cache(cache)
        if use_cache and cache is None:
            cache = self.new_cache()
        if paged and position_ids is None:
            raise ValueError(
                "A paged (continuous-batching) cache holds several requests in one row: pass `position_ids` "
                "(each request's own positions), as transformers' continuous batching does."
            )
        past = 0 if paged else past_length(cache)  # a paged cache has no one length: positions come from position_ids
        self._validate(input_ids, inputs_embeds, None if paged else attention_mask, token_type_ids, past, position_ids)
        B, T = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
        device = (input_ids if input_ids is not None else inputs_embeds).device
        prepared = is_prepared_mask(attention_mask)  # e.g. from generate() with a static cache
        given_positions = position_ids  # restarting ones mark packed sequences
        if position_ids is None:  # count only real tokens, so left padding starts the text at position 0
            if attention_mask is not None and not prepared:
                # the mask spans past + T: its length (not `past`, a tensor under compile) says how many came before
                position_ids = positions_from_attention_mask(attention_mask, attention_mask.shape[-1] - T)
            else:
                position_ids = torch.arange(T, device=device).unsqueeze(0) + past  # (1, T)
        x = self.embeddings(input_ids, position_ids, token_type_ids, inputs_embeds)  # (B, T, C)
        rotary = self.rotary(position_ids, x.dtype) if self.rotary is not None else None  # (cos, sin): (B|1, T, D)

        # One mask per attention kind ("full_attention", "sliding_attention"), shared by the layers of that kind.
        # keys: past + T, all of a static cache's slots (the unfilled ones are masked as the future), or the recent
        # ones a sliding-window cache kept
        implementation = self.config._attn_implementation
        if paged:
            masks = paged_attention_inputs(attention_mask, self.layer_types, implementation, self.config.sliding_window)
        else:
            masks = {}
            for kind in dict.fromkeys(self.layer_types):
                key_length, key_offset = self._key_span(cache, T, past, self.layer_types.index(kind))
                window = self.config.sliding_window if kind == "sliding_attention" else None
                masks[kind] = attention_inputs(  # (B|1, 1, T, S), or None, or a flash kernel's 2-D mask
                    attention_mask, B, T, key_length, self.causal, implementation, x.dtype, x.device, past,
                    given_positions, output_attentions, window, key_offset)
        if memory is not None:
            if memory.shape[0] != B:  # else: a RuntimeError from inside the cross-attention matmul
                raise ValueError(
                    f"The decoder batch ({B}, from `{self.input_prefix}input_ids` or the `labels` shifted into them) "
                    f"does not match the encoder batch ({memory.shape[0]})."
                )
            if memory_mask is not None:
                check_attention_mask(memory_mask, memory.shape[0], memory.shape[1])
            memory_mask, _ = attention_inputs(memory_mask, B, T, memory.shape[1], False, implementation, x.dtype,
                                              x.device, output_attentions=output_attentions)  # (B, 1, 1, S)

        hidden_states, self_attentions, cross_attentions = [], [], []
        for layer, kind in zip(self.layers, self.layer_types):
            if output_hidden_states:
                hidden_states.append(x)
            mask, attention_kwargs = masks[kind]
            x, self_w, cross_w = layer(
                x, mask, memory, memory_mask, cache=cache, output_attentions=output_attentions,
                position_embeddings=rotary, **{**backend_kwargs, **attention_kwargs},
            )
            self_attentions.append(self_w)
            cross_attentions.append(cross_w)
        x = self.final_norm(x)
        if output_hidden_states:
            hidden_states.append(x)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=x,
            **cache_field(cache if use_cache else None),
            hidden_states=tuple(hidden_states) if output_hidden_states else None,
            attentions=tuple(self_attentions) if output_attentions else None,
            cross_attentions=tuple(cross_attentions) if output_attentions and self.cross_attention else None,
        )
