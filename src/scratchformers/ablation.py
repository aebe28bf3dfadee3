"""The GPT-2 → Llama ablation (docs/llm.md, scripts/llm_ablation.py): six decoder configurations, each adding one
change of the modern decoder to the one before, at the baseline's parameter count (±5 %: the feed-forward
`intermediate_size` makes up for what a change adds or removes). Library code the script and its tests share."""

from __future__ import annotations

import torch

from scratchformers.configuration_scratch_gpt import ScratchGPTConfig
from scratchformers.modeling_scratch_gpt import ScratchGPTForCausalLM

PARAM_TOLERANCE = 0.05

#: Each step adds one change to the previous configuration (the modern decoder's options, docs/llm.md).
STEPS: list[tuple[str, dict]] = [
    ("GPT-2 baseline", dict(position_embedding_type="learned", norm_type="layernorm", ffn_type="mlp",
                            activation="gelu_new", num_key_value_heads=None, attention_bias=True, ffn_bias=True)),
    ("+ rotary", dict(position_embedding_type="rotary", rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
    ("+ RMSNorm", dict(norm_type="rmsnorm")),
    ("+ SwiGLU", dict(ffn_type="gated", activation="silu")),
    ("+ GQA (H_kv = H/2)", dict(num_key_value_heads="half")),
    ("Llama (+ no biases)", dict(attention_bias=False, ffn_bias=False)),
]

SIZES = {
    "full": dict(vocab=1024, width=96, layers=3, heads=4, length=64, batch=16, steps=300, warmup=30, lr=2e-3,
                 seeds=(0, 1)),
    "quick": dict(vocab=300, width=32, layers=2, heads=4, length=32, batch=4, steps=4, warmup=1, lr=2e-3, seeds=(0,)),
}


def configurations(size: dict) -> list[tuple[str, dict]]:
    """The cumulative option sets of `STEPS`, in order ("half": H_kv = H/2 of `size`'s heads)."""
    options, out = {}, []
    for name, change in STEPS:
        options = {**options, **change}
        if options.get("num_key_value_heads") == "half":
            options["num_key_value_heads"] = size["heads"] // 2
        out.append((name, dict(options)))
    return out


def build_config(size: dict, options: dict, intermediate_size: int) -> ScratchGPTConfig:
    """A decoder of `size` (width, layers, heads, vocab, length) with `options` and this feed-forward width; no
    dropout, tied output layer."""
    return ScratchGPTConfig(
        vocab_size=size["vocab"], hidden_size=size["width"], num_hidden_layers=size["layers"],
        num_attention_heads=size["heads"], intermediate_size=intermediate_size, max_position_embeddings=size["length"],
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, tie_word_embeddings=True, layer_norm_eps=1e-5,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, **options,
    )


def parameter_count(config: ScratchGPTConfig) -> int:
    """Trainable parameters, the tied output layer counted once (built on the meta device: no memory, no init)."""
    with torch.device("meta"):
        model = ScratchGPTForCausalLM(config)
    return sum(p.numel() for p in model.parameters())


def matched_intermediate_size(size: dict, options: dict, target: int) -> tuple[int, int]:
    """The feed-forward width (a multiple of 8) whose model is closest to `target` parameters: (size, count)."""
    best = None
    for intermediate in range(8, 8 * size["width"] + 1, 8):
        count = parameter_count(build_config(size, options, intermediate))
        if best is None or abs(count - target) < abs(best[1] - target):
            best = (intermediate, count)
        if count > target:
            break
    return best
