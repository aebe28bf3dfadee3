"""Read a llama2.c checkpoint (Karpathy's `run.c` format, version 0) into transformers' LlamaForCausalLM, and run
it the way `run.c` does, as an independent reference for both.

The format (llama2.c `export.py`, `legacy_export`): seven int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
vocab_size — negative when the output layer is not tied to the embedding —, seq_len), then float32 tensors in this
order: token embedding, attention RMSNorm weights, wq, wk, wv, wo (all layers of one tensor together), FFN RMSNorm
weights, w1, w2, w3, final RMSNorm weight, the RoPE cos and sin tables, and the classifier if untied.

llama2.c rotates *adjacent* pairs (x₀, x₁), (x₂, x₃), … of each head; transformers' Llama rotates (xᵢ, x_{i+D/2}).
The two agree after permuting the rows of wq and wk within each head, which is what llama2.c's own `hf_export` and
transformers' `convert_llama_weights_to_hf.py` do (`permute` below).
"""

from __future__ import annotations

import struct
from pathlib import Path

import torch
import transformers

NORM_EPS = 1e-5  # llama2.c model.py ModelArgs.norm_eps and run.c rmsnorm


def read_llama2c(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(header, tensors) of a version-0 llama2.c checkpoint; tensors shaped as the PyTorch modules that wrote them
    (Linear weights (out, in)). ValueError if the file size does not match its header."""
    data = Path(path).read_bytes()
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = struct.unpack("7i", data[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    head = dim // heads
    kv_dim = kv_heads * head
    shapes = [
        ("tok_embeddings", (vocab, dim)), ("attention_norm", (layers, dim)), ("wq", (layers, dim, dim)),
        ("wk", (layers, kv_dim, dim)), ("wv", (layers, kv_dim, dim)), ("wo", (layers, dim, dim)),
        ("ffn_norm", (layers, dim)), ("w1", (layers, hidden, dim)), ("w2", (layers, dim, hidden)),
        ("w3", (layers, hidden, dim)), ("norm", (dim,)), ("freqs_cos", (seq_len, head // 2)),
        ("freqs_sin", (seq_len, head // 2)),
    ] + ([] if shared else [("output", (vocab, dim))])
    floats = torch.frombuffer(bytearray(data[28:]), dtype=torch.float32)
    expected = sum(torch.Size(shape).numel() for _, shape in shapes)
    if floats.numel() != expected:
        raise ValueError(f"{path}: {floats.numel()} floats after the header, expected {expected}")
    tensors, offset = {}, 0
    for name, shape in shapes:
        n = torch.Size(shape).numel()
        tensors[name] = floats[offset:offset + n].view(shape).clone()
        offset += n
    if shared:
        tensors["output"] = tensors["tok_embeddings"]
    header = dict(dim=dim, hidden_dim=hidden, n_layers=layers, n_heads=heads, n_kv_heads=kv_heads, vocab_size=vocab,
                  seq_len=seq_len, shared_classifier=shared)
    return header, tensors


def permute(w: torch.Tensor, heads: int) -> torch.Tensor:
    """Rows of a q/k projection from adjacent-pair rotary order to half-split order, per head:
    (heads·D, C) viewed (heads, D/2, 2, C) → (heads, 2, D/2, C)."""
    rows, cols = w.shape
    return w.view(heads, rows // heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def llama2c_to_hf(path: str | Path) -> transformers.LlamaForCausalLM:
    """transformers' LlamaForCausalLM with the weights of a llama2.c checkpoint (rope θ = 10000, RMSNorm ε = 1e-5,
    bos = 1, eos = 2 as in llama2.c's SentencePiece tokenizers)."""
    header, t = read_llama2c(path)
    config = transformers.LlamaConfig(
        vocab_size=header["vocab_size"], hidden_size=header["dim"], intermediate_size=header["hidden_dim"],
        num_hidden_layers=header["n_layers"], num_attention_heads=header["n_heads"],
        num_key_value_heads=header["n_kv_heads"], max_position_embeddings=header["seq_len"], rms_norm_eps=NORM_EPS,
        rope_theta=10000.0, tie_word_embeddings=header["shared_classifier"], bos_token_id=1, eos_token_id=2,
    )
    state = {"model.embed_tokens.weight": t["tok_embeddings"], "model.norm.weight": t["norm"],
             "lm_head.weight": t["output"]}
    for i in range(header["n_layers"]):
        p = f"model.layers.{i}."
        state.update({
            p + "input_layernorm.weight": t["attention_norm"][i],
            p + "self_attn.q_proj.weight": permute(t["wq"][i], header["n_heads"]),
            p + "self_attn.k_proj.weight": permute(t["wk"][i], header["n_kv_heads"]),
            p + "self_attn.v_proj.weight": t["wv"][i],
            p + "self_attn.o_proj.weight": t["wo"][i],
            p + "post_attention_layernorm.weight": t["ffn_norm"][i],
            p + "mlp.gate_proj.weight": t["w1"][i],
            p + "mlp.down_proj.weight": t["w2"][i],
            p + "mlp.up_proj.weight": t["w3"][i],
        })
    model = transformers.LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    return model.eval()


def run_c_logits(path: str | Path, tokens: list[int]) -> torch.Tensor:
    """Logits (T, V) of `tokens` computed as llama2.c's run.c `forward` does it, written out from the raw tensors:
    RMSNorm, q/k rotated by adjacent pairs with the file's own cos/sin tables, grouped-query causal attention,
    SwiGLU, tied or untied classifier. Independent of transformers and of our model."""
    h, t = read_llama2c(path)
    heads, kv_heads, dim = h["n_heads"], h["n_kv_heads"], h["dim"]
    head = dim // heads
    T = len(tokens)

    def rmsnorm(x, weight):
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + NORM_EPS) * weight

    def rotate(x):  # (T, H, D): pairs (x[2i], x[2i+1]) rotated by position · θᵢ
        cos, sin = t["freqs_cos"][:T, None, :], t["freqs_sin"][:T, None, :]
        even, odd = x[..., 0::2], x[..., 1::2]
        return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)

    x = t["tok_embeddings"][tokens]  # (T, C)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for i in range(h["n_layers"]):
        a = rmsnorm(x, t["attention_norm"][i])
        q = rotate((a @ t["wq"][i].T).view(T, heads, head))
        k = rotate((a @ t["wk"][i].T).view(T, kv_heads, head))
        v = (a @ t["wv"][i].T).view(T, kv_heads, head)
        k, v = (z.repeat_interleave(heads // kv_heads, dim=1) for z in (k, v))  # query head j reads kv head j // g
        scores = torch.einsum("thd,shd->hts", q, k) / head**0.5  # (H, T, S)
        weights = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        x = x + torch.einsum("hts,shd->thd", weights, v).reshape(T, dim) @ t["wo"][i].T
        f = rmsnorm(x, t["ffn_norm"][i])
        x = x + (torch.nn.functional.silu(f @ t["w1"][i].T) * (f @ t["w3"][i].T)) @ t["w2"][i].T
    return rmsnorm(x, t["norm"]) @ t["output"].T
