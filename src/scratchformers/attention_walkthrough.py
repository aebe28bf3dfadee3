"""The first self-attention layer of a GPT checkpoint, one step at a time, beside the package's own functions
(docs/self-attention.md, rendered by scripts/self_attention_example.py): the embedding rows, X, Q, K, V, the scores,
the causal softmax and z for one head, and how far the same token's vectors move with its context.
Library code the script and its tests share."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from scratchformers.attention import scaled_dot_product_attention, split_heads
from scratchformers.masks import additive_mask, causal_mask

#: The sentence docs/self-attention.md walks through, and the ones it contrasts the same token with.
SENTENCE = "python is my favourite programming language"
# the same word in another sentence, at the same token position (so its input vector X is the same too)
OTHERS = ["C is my favourite programming language",  # one token differs
          "future versions of Python that introduce incompatible changes to the language"]  # from data/prose
FIRST_WORD_OTHER = "python is a snake"  # "python" first again: with a causal mask it sees only itself
EQUAL = 1e-5  # vectors closer than this everywhere count as the same (float32 rounding differs with the length)
VECTORS = {"E": "embedding-table row E[token]", "X": "layer input X (E + P, LayerNorm)",
           "attention_output": "self-attention output (all heads, W_O)",
           "layer_output": "first layer's output (+ residual, FFN)"}


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """cos(a, b) = a·b / (|a| |b|)."""
    return float(F.cosine_similarity(a.double(), b.double(), dim=-1))


@torch.no_grad()
def walkthrough(model, tokenizer, sentence: str, head: int = 0, token: int = -1) -> dict:
    """The first layer's self-attention for `sentence`, one step at a time; tensors as nested lists.

    X = LayerNorm₁(E[token] + P[position]) for pre-LN (GPT-2's order: the norm comes before attention), X = E + P
    for post-LN. [Q K V] = X [W_q W_k W_v] + [b_q b_k b_v]; head h takes columns h·D … h·D + D − 1 of each;
    A = softmax(Q_h K_hᵀ/√D + M) with the causal mask M (−∞ above the diagonal); z = A V_h. The same head is then
    computed by `scratchformers.attention.scaled_dot_product_attention`, the whole layer by the model, and the
    largest differences are recorded under "checks".
    """
    config = model.config
    stack = model.model.decoder
    layer = stack.layers[0]
    attn = layer.self_attn
    H, C = config.num_attention_heads, config.hidden_size
    D = C // H
    if not 0 <= head < H:
        raise ValueError(f"head={head} is out of range: this model has heads 0 … {H - 1}")
    ids = tokenizer(sentence, return_tensors="pt")["input_ids"]  # (1, T)
    T = ids.shape[1]
    token = token % T
    positions = torch.arange(T)[None]  # (1, T)
    E = stack.embeddings.embed_tokens(ids)[0]  # (T, C): the embedding-table rows (times the scale, 1 for GPT)
    P = stack.embeddings.positions(positions)[0]  # (T, C)
    embedded = stack.embeddings(ids, positions)[0]  # E + P (dropout off in eval)
    X = layer.self_attn_residual.normalize(embedded[None])[0]  # (T, C)
    W_q, W_k, W_v = (w.T for w in attn.qkv_proj.weight.split(attn.qkv_sizes, dim=0))  # each (C, C): x W
    b_q, b_k, b_v = attn.qkv_proj.bias.split(attn.qkv_sizes) if attn.qkv_proj.bias is not None else (0, 0, 0)
    cols = slice(head * D, (head + 1) * D)
    Q = X @ W_q[:, cols] + (b_q[cols] if torch.is_tensor(b_q) else 0)  # (T, D)
    K = X @ W_k[:, cols] + (b_k[cols] if torch.is_tensor(b_k) else 0)
    V = X @ W_v[:, cols] + (b_v[cols] if torch.is_tensor(b_v) else 0)
    scores = Q @ K.T / math.sqrt(D)  # (T, T)
    allowed = causal_mask(T, T)  # (T, T) True where key j ≤ query i
    weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    z = weights @ V  # (T, D)

    # the package's functions on the same input
    q, k, v = attn.qkv_proj(X[None]).split(attn.qkv_sizes, dim=-1)
    q, k, v = (split_heads(t, H) for t in (q, k, v))  # (1, H, T, D)
    mask = additive_mask(allowed[None, None], X.dtype)  # (1, 1, T, T): 0 allowed, very negative masked
    ours, ours_weights = scaled_dot_product_attention(attn, q, k, v, mask, scaling=attn.scaling)  # (1, T, H, D)
    layer_out, _ = attn(X[None], mask)  # all heads, concatenated, times W_O
    concat = ours.reshape(1, T, C)
    out = model(ids, output_attentions=True, output_hidden_states=True)
    checks = {
        "embeddings = E + P": (embedded - (E + P)).abs().max(),
        "our weights = softmax formula": (ours_weights[0, head] - weights).abs().max(),
        "our z = formula z": (ours[0, :, head] - z).abs().max(),
        "module output = concat(heads) W_O + b_O": (layer_out - attn.out_proj(concat)).abs().max(),
        "model's layer-1 attentions = ours": (out.attentions[0][0] - ours_weights[0]).abs().max(),
    }
    return {
        "sentence": sentence, "ids": ids[0].tolist(), "tokens": tokenizer.convert_ids_to_tokens(ids[0]),
        "head": head, "token": token, "heads": H, "hidden_size": C, "head_dim": D,
        "norm_placement": config.norm_placement, "E": E.tolist(), "P": P.tolist(), "X": X.tolist(),
        "W_shapes": {"W_q": list(W_q.shape), "W_k": list(W_k.shape), "W_v": list(W_v.shape),
                     "W_q head": list(W_q[:, cols].shape), "W_O": [C, C]},
        "Q": Q.tolist(), "K": K.tolist(), "V": V.tolist(), "scores": scores.tolist(), "allowed": allowed.tolist(),
        "weights": weights.tolist(), "z": z.tolist(), "attention_output": layer_out[0].tolist(),
        "layer_output": out.hidden_states[1][0].tolist(), "checks": {k: float(v) for k, v in checks.items()},
    }


@torch.no_grad()
def static_vs_contextual(model, tokenizer, first: str, others: list[str], word_token: int) -> dict:
    """The vectors of the token at index `word_token` in `first` and in each of `others` (the same token there):
    the embedding-table row, the layer input X, the attention output (all heads, after W_O) and the first layer's
    output, each compared with `first`'s by cosine similarity and largest absolute difference."""
    base = walkthrough(model, tokenizer, first, token=word_token)
    rows: dict[str, list[dict]] = {name: [] for name in VECTORS.values()}
    for other in others:
        ex = walkthrough(model, tokenizer, other, token=word_token)
        if len(ex["ids"]) <= word_token or ex["ids"][word_token] != base["ids"][word_token]:
            got = ex["tokens"][word_token] if len(ex["ids"]) > word_token else "nothing"
            raise ValueError(f"token {word_token} of {other!r} is {got!r}, not {base['tokens'][word_token]!r}")
        for key, name in VECTORS.items():
            a, b = torch.tensor(base[key][word_token]), torch.tensor(ex[key][word_token])
            rows[name].append({"cosine": cosine(a, b), "max_abs_diff": float((a - b).abs().max())})
    return {"sentences": [first, *others], "token": base["tokens"][word_token],
            "index": word_token % len(base["ids"]), "rows": rows}
