"""The modern decoder (rotary positions, RMSNorm, SwiGLU, grouped-query attention) as options of the shared blocks,
and Llama / Qwen2 / Mistral checkpoints converted both ways with the same logits (≤ 1e-4, fp32) and greedy tokens."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers
from families import LLAMA_OPTIONS
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from twin_helpers import greedy, max_diff, perturb

from scratchformers import (
    ScratchBertConfig,
    ScratchBertModel,
    ScratchGPTConfig,
    ScratchGPTForCausalLM,
    ScratchGPTForSequenceClassification,
    ScratchTransformerConfig,
    ScratchTransformerForConditionalGeneration,
)
from scratchformers.attention import MultiHeadAttention, repeat_kv
from scratchformers.convert import config_to_hf, from_hf, main, to_hf
from scratchformers.embeddings import (
    RotaryPositionEmbedding,
    apply_rotary_position_embedding,
    rope_inverse_frequencies,
)
from scratchformers.layers import FeedForward, RMSNorm

ATOL = 1e-4
SCALE = 0.05  # how far `perturb` moves each weight off its init
V = 61
LLAMA3 = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
LINEAR = {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}

# A modern scratch_gpt: what Llama is in our options.
MODERN = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              intermediate_size=48, max_position_embeddings=64, hidden_dropout_prob=0.0,
              attention_probs_dropout_prob=0.0, **LLAMA_OPTIONS, tie_word_embeddings=False, pad_token_id=0,
              bos_token_id=1, eos_token_id=2)


def modern(**overrides) -> ScratchGPTForCausalLM:
    return perturb(ScratchGPTForCausalLM(ScratchGPTConfig(**{**MODERN, **overrides})), SCALE)


def left_padded() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randint(3, V, (3, 9))
    mask = torch.ones_like(x)
    mask[0, :4] = 0
    mask[1, :1] = 0
    return x.masked_fill(mask == 0, 0), mask


# ------------------------------------------------------------------------------------------- each block: its formula


def test_rms_norm_is_x_over_root_mean_square_times_gain():
    norm = RMSNorm(8, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(8))
    x = torch.randn(2, 3, 8) * 5 + 1  # a mean far from 0: LayerNorm would subtract it, RMSNorm must not
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    torch.testing.assert_close(norm(x), expected)


def test_gated_feed_forward_is_swiglu():
    ffn = FeedForward(8, 12, "silu", bias=False, gated=True)
    w_gate, w_up = ffn.fc_in.weight[:12], ffn.fc_in.weight[12:]
    x = torch.randn(2, 3, 8)
    expected = (F.silu(x @ w_gate.T) * (x @ w_up.T)) @ ffn.fc_out.weight.T  # (SiLU(xW_gate) ⊙ xW_up) W_down
    torch.testing.assert_close(ffn(x), expected)


def test_rotary_turns_each_pair_by_position_times_theta():
    D, base = 8, 10000.0
    positions = torch.tensor([[0, 1, 5, 17]])
    cos, sin = RotaryPositionEmbedding(D, {"rope_type": "default", "rope_theta": base})(positions, torch.float32)
    q, k = torch.randn(1, 2, 4, D), torch.randn(1, 1, 4, D)
    q_rot, _ = apply_rotary_position_embedding(q, k, cos, sin)
    for t, m in enumerate(positions[0].tolist()):
        for i in range(D // 2):
            angle = m * base ** (-2 * i / D)  # m·θᵢ, θᵢ = base^(−2i/d)
            a, b = q[0, :, t, i], q[0, :, t, i + D // 2]  # the pair (xᵢ, x_{i+d/2})
            torch.testing.assert_close(q_rot[0, :, t, i], a * math.cos(angle) - b * math.sin(angle))
            torch.testing.assert_close(q_rot[0, :, t, i + D // 2], a * math.sin(angle) + b * math.cos(angle))


def test_rotary_scores_depend_only_on_the_distance():
    rotary = RotaryPositionEmbedding(16)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(m: int, n: int) -> torch.Tensor:
        cos_m, sin_m = rotary(torch.tensor([[m]]), torch.float32)
        cos_n, sin_n = rotary(torch.tensor([[n]]), torch.float32)
        return (apply_rotary_position_embedding(q, q, cos_m, sin_m)[0] * apply_rotary_position_embedding(k, k, cos_n,
                                                                                                        sin_n)[1]).sum()

    torch.testing.assert_close(score(7, 3), score(104, 100))
    assert not torch.allclose(score(7, 3), score(7, 4))


@pytest.mark.parametrize("rope", [LINEAR, LLAMA3, {"rope_type": "default", "rope_theta": 123.0}],
                         ids=lambda r: r["rope_type"])
def test_rope_frequencies_match_transformers(rope):
    config = transformers.LlamaConfig(hidden_size=64, num_attention_heads=2, max_position_embeddings=64,
                                      rope_parameters=dict(rope))
    expected, _ = ROPE_INIT_FUNCTIONS[rope["rope_type"]](config, "cpu") if rope["rope_type"] != "default" else (
        1.0 / rope["rope_theta"] ** (torch.arange(0, 32, 2).float() / 32), None)
    torch.testing.assert_close(rope_inverse_frequencies(32, rope), expected)


def test_linear_scaling_squeezes_positions_by_the_factor():
    plain, linear = RotaryPositionEmbedding(8), RotaryPositionEmbedding(8, {"rope_type": "linear", "factor": 4.0})
    torch.testing.assert_close(linear(torch.tensor([[8]]), torch.float32), plain(torch.tensor([[2]]), torch.float32))


def test_grouped_query_attention_shares_each_key_value_head_with_its_group():
    config = ScratchGPTConfig(**{**MODERN, "position_embedding_type": "learned"}, attn_implementation="eager")
    attention = MultiHeadAttention(config, 0, is_causal=False).eval()
    x = torch.randn(2, 5, 32)
    H, H_kv, D = 4, 2, 8
    q, k, v = attention.qkv_proj(x).split([H * D, H_kv * D, H_kv * D], dim=-1)
    q = q.view(2, 5, H, D).transpose(1, 2)
    k, v = (t.view(2, 5, H_kv, D).transpose(1, 2) for t in (k, v))
    heads = []
    for h in range(H):  # query head h reads key/value head h // (H / H_kv)
        weights = torch.softmax(q[:, h] @ k[:, h // 2].transpose(-1, -2) / math.sqrt(D), dim=-1)
        heads.append(weights @ v[:, h // 2])
    expected = attention.out_proj(torch.stack(heads, 1).transpose(1, 2).reshape(2, 5, 32))
    torch.testing.assert_close(attention(x)[0], expected)
    assert torch.equal(repeat_kv(k, 2)[:, 1], k[:, 0]) and torch.equal(repeat_kv(k, 2)[:, 2], k[:, 1])


@pytest.mark.parametrize("kv_heads", [1, 2])
def test_the_cache_stores_only_the_key_value_heads(kv_heads):
    model = modern(num_key_value_heads=kv_heads)
    out = model(torch.randint(3, V, (2, 6)), use_cache=True)
    cache = out.cache if hasattr(out, "cache") else out.past_key_values
    assert tuple(cache.layers[0].keys.shape) == (2, kv_heads, 6, 8)


@pytest.mark.parametrize(
    "field, value, allowed",
    [("norm_type", "batchnorm", "rmsnorm"), ("ffn_type", "moe", "gated"), ("num_key_value_heads", 3, "multiple"),
     ("num_key_value_heads", 0, "positive"), ("position_embedding_type", "alibi", "rotary"),
     ("rope_parameters", {"rope_type": "longrope", "factor": 2.0}, "yarn"),
     ("rope_parameters", {"rope_type": "linear"}, "factor"),
     ("rope_parameters", {**LLAMA3, "high_freq_factor": 0.5}, "high_freq_factor"),
     ("attention_output_bias", "no", "True or False")],
)
def test_bad_modern_options_raise_value_error_naming_the_allowed_values(field, value, allowed):
    with pytest.raises(ValueError, match=allowed):
        ScratchGPTConfig(**{**MODERN, field: value})


def test_legacy_rope_theta_and_rope_scaling_arguments_are_folded_into_rope_parameters():
    config = ScratchGPTConfig(**MODERN, rope_theta=5e5, rope_scaling={"rope_type": "linear", "factor": 2.0})
    assert config.rope_parameters == {"rope_type": "linear", "factor": 2.0, "rope_theta": 5e5}


def test_defaults_keep_the_2017_blocks():
    model = ScratchGPTForCausalLM(ScratchGPTConfig(vocab_size=V, hidden_size=32, num_attention_heads=4,
                                                   num_hidden_layers=1, intermediate_size=48))
    layer = model.model.decoder.layers[0]
    assert layer.self_attn.qkv_proj.weight.shape == (96, 32) and layer.self_attn.num_key_value_groups == 1
    assert isinstance(layer.ffn_residual.norm, torch.nn.LayerNorm) and layer.ffn.fc_in.weight.shape == (48, 32)
    assert model.model.decoder.rotary is None and model.model.decoder.embeddings.positions is not None


# -------------------------------------------------------------------------------------------- the modern model itself


def test_modern_cached_generation_matches_uncached_with_left_padding():
    model = modern()
    x, mask = left_padded()
    cached = greedy(model, x, mask)
    assert torch.equal(cached, greedy(model, x, mask, use_cache=False))
    for row in range(3):  # each row alone, without padding
        alone = greedy(model, x[row : row + 1, mask[row].bool()])
        assert torch.equal(cached[row, -8:], alone[0, -8:])


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_modern_eager_and_sdpa_agree(kv_heads):
    model = modern(num_key_value_heads=kv_heads)
    x, mask = left_padded()
    model.set_attn_implementation("eager")
    eager = model(x, attention_mask=mask).logits
    model.set_attn_implementation("sdpa")
    sdpa = model(x, attention_mask=mask).logits
    real = mask.bool()
    assert max_diff(eager[real], sdpa[real]) <= 1e-5


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_modern_static_cache_generation_matches_the_dynamic_cache(implementation):
    model = modern(num_key_value_heads=1)
    model.set_attn_implementation(implementation)
    x, mask = left_padded()
    assert torch.equal(greedy(model, x, mask, cache_implementation="static"), greedy(model, x, mask))


def test_packed_row_gives_each_sequence_its_own_logits_with_rotary_positions():
    model = modern()
    a, b = torch.randint(3, V, (1, 5)), torch.randint(3, V, (1, 4))
    packed = model(torch.cat([a, b], 1), position_ids=torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3]])).logits
    assert max_diff(packed[:, :5], model(a).logits) <= 1e-5
    assert max_diff(packed[:, 5:], model(b).logits) <= 1e-5


def test_modern_checkpoint_reloads_through_remote_code_without_the_package(tmp_path, run_without_package):
    model = modern(rope_parameters=dict(LLAMA3))
    model.save_pretrained(tmp_path / "ckpt")
    x = torch.randint(3, V, (1, 6))
    expected = greedy(model, x)
    out = run_without_package(
        f"""
        import torch
        from transformers import AutoModelForCausalLM
        m = AutoModelForCausalLM.from_pretrained({str(tmp_path / "ckpt")!r}, trust_remote_code=True).eval()
        assert "scratchformers" not in type(m).__module__, type(m).__module__
        out = m.generate(torch.tensor({x.tolist()}), max_new_tokens=8, min_new_tokens=8, do_sample=False, pad_token_id=0)
        print(out.tolist())
        """
    )
    assert out.strip() == str(expected.tolist())


def test_llama_tiny_preset_builds_the_modern_decoder():
    preset = json.loads((Path(__file__).parents[2] / "configs" / "llama-tiny.json").read_text())
    config = ScratchGPTConfig(**{k: v for k, v in preset.items() if k != "model_type"})
    model = ScratchGPTForCausalLM(config)
    layer = model.model.decoder.layers[0]
    assert isinstance(layer.ffn_residual.norm, RMSNorm) and layer.ffn.gated and model.model.decoder.rotary is not None
    assert layer.self_attn.num_key_value_groups == config.num_attention_heads // config.num_key_value_heads > 1


# -------------------------------------------------------------------------------------------------- real checkpoints

HF_SHAPES = {  # architecture → HF config class, kwargs; each runs tied/untied, GQA/MQA and the rope scalings
    "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM, {}),
    "llama-bias": (transformers.LlamaConfig, transformers.LlamaForCausalLM, {"attention_bias": True, "mlp_bias": True}),
    "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM, {}),
    "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM, {"sliding_window": None}),
}
VARIANTS = {
    "gqa-untied": dict(num_key_value_heads=2, tie_word_embeddings=False),
    "mqa-tied": dict(num_key_value_heads=1, tie_word_embeddings=True),
    "mha-linear": dict(num_key_value_heads=4, rope_parameters=dict(LINEAR)),
    "gqa-llama3": dict(num_key_value_heads=2, rope_parameters=dict(LLAMA3)),
}
CASES = [(arch, variant) for arch in HF_SHAPES for variant in VARIANTS]


def hf_model(arch: str, variant: str) -> transformers.PreTrainedModel:
    config_class, model_class, extra = HF_SHAPES[arch]
    config = config_class(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                          num_attention_heads=4, max_position_embeddings=64, rms_norm_eps=1e-6, pad_token_id=0,
                          bos_token_id=1, eos_token_id=2, **extra, **VARIANTS[variant])
    return perturb(model_class(config), SCALE)


@pytest.mark.parametrize("arch, variant", CASES)
def test_hf_modern_decoder_converts_to_ours_with_the_same_logits_and_greedy_tokens(arch, variant):
    hf = hf_model(arch, variant)
    ours = from_hf(hf)
    assert type(ours) is ScratchGPTForCausalLM and ours.config.norm_type == "rmsnorm"
    assert ours.config.num_key_value_heads == hf.config.num_key_value_heads
    assert ours.config.tie_word_embeddings == hf.config.tie_word_embeddings
    x = torch.randint(3, V, (3, 20))
    with torch.no_grad():
        assert max_diff(hf(x).logits, ours(x).logits) <= ATOL
    assert torch.equal(greedy(hf, x[:, :4]), greedy(ours, x[:, :4]))
    padded, mask = left_padded()
    with torch.no_grad():
        real = mask.bool()
        assert max_diff(hf(padded, attention_mask=mask).logits[real], ours(padded, attention_mask=mask).logits[real]) <= ATOL
    assert torch.equal(greedy(hf, padded, mask), greedy(ours, padded, mask))


@pytest.mark.parametrize("arch, variant", CASES)
def test_ours_converts_to_the_hf_modern_decoder_with_the_same_logits_and_greedy_tokens(arch, variant):
    ours = from_hf(hf_model(arch, variant))
    perturb(ours, SCALE)  # new weights, made on our side
    hf = to_hf(ours, hf_class=HF_SHAPES[arch][1])  # Llama and Mistral compute alike: auto would pick Llama
    x = torch.randint(3, V, (3, 20))
    with torch.no_grad():
        assert max_diff(hf(x).logits, ours(x).logits) <= ATOL
    padded, mask = left_padded()
    assert torch.equal(greedy(hf, padded, mask), greedy(ours, padded, mask))


def test_to_hf_picks_the_architecture_whose_biases_fit():
    assert type(to_hf(modern())) is transformers.LlamaForCausalLM
    assert type(to_hf(modern(attention_bias=True, attention_output_bias=False))) is transformers.Qwen2ForCausalLM
    assert type(to_hf(modern(), hf_class=transformers.MistralForCausalLM)) is transformers.MistralForCausalLM
    with pytest.raises(ValueError, match="Llama has one bias switch"):
        to_hf(modern(attention_bias=True, attention_output_bias=False), hf_class=transformers.LlamaForCausalLM)
    with pytest.raises(ValueError, match="norm_type"):
        to_hf(modern(norm_type="layernorm"), hf_class=transformers.LlamaForCausalLM)


@pytest.mark.parametrize(
    "config_class, kwargs, message",
    [(transformers.LlamaConfig, {"rope_parameters": {"rope_type": "longrope", "rope_theta": 1e4, "short_factor": [1.0] * 4,
                                                     "long_factor": [2.0] * 4, "original_max_position_embeddings": 32}},
      "rope_type"),
     (transformers.LlamaConfig, {"head_dim": 16}, "head_dim"),
     (transformers.LlamaConfig, {"partial_rotary_factor": 0.5}, "partial_rotary_factor"),
     (transformers.LlamaConfig, {"hidden_act": "gelu_fast"}, "hidden_act")],
)
def test_hf_options_we_cannot_reproduce_are_refused(config_class, kwargs, message):
    model_class = {transformers.LlamaConfig: transformers.LlamaForCausalLM,
                   transformers.MistralConfig: transformers.MistralForCausalLM}[config_class]
    hf = model_class(config_class(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, **kwargs))
    with pytest.raises(ValueError, match=message):
        from_hf(hf)


def test_convert_command_turns_a_saved_llama_folder_into_ours_and_back(tmp_path):
    hf = hf_model("llama", "gqa-llama3")
    hf.save_pretrained(tmp_path / "hf")
    assert main([str(tmp_path / "hf"), str(tmp_path / "ours")]) == 0
    ours = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "ours").eval()
    assert type(ours) is ScratchGPTForCausalLM and ours.config.rope_parameters["rope_type"] == "llama3"
    assert main([str(tmp_path / "ours"), str(tmp_path / "back")]) == 0
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "back").eval()
    assert type(back) is transformers.LlamaForCausalLM
    x = torch.randint(3, V, (2, 12))
    with torch.no_grad():
        assert max_diff(hf(x).logits, ours(x).logits) <= ATOL and max_diff(hf(x).logits, back(x).logits) <= ATOL


@pytest.mark.parametrize("arch", ["mistral", "qwen2", "llama"])
def test_a_converted_checkpoint_converts_back_to_the_architecture_it_came_from(arch, tmp_path):
    """`convert` there and back gives the user's architecture again (issue 20): a Mistral without a sliding window
    computes exactly as Llama, which `to_hf` would otherwise pick first; the source class is recorded in the config."""
    hf = hf_model(arch, "gqa-untied")
    hf.save_pretrained(tmp_path / "hf")
    assert main([str(tmp_path / "hf"), str(tmp_path / "ours")]) == 0
    ours = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "ours").eval()
    assert ours.config.converted_from == type(hf).__name__
    assert main([str(tmp_path / "ours"), str(tmp_path / "back")]) == 0
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "back").eval()
    assert type(back) is type(hf)
    x = torch.randint(3, V, (2, 12))
    with torch.no_grad():
        assert max_diff(hf(x).logits, back(x).logits) <= ATOL


def test_a_head_fine_tuned_from_a_converted_mistral_goes_back_to_mistral():
    ours = from_hf(hf_model("mistral", "gqa-untied"))
    classifier = ScratchGPTForSequenceClassification(ours.config)  # e.g. `train classification` on the checkpoint
    assert type(to_hf(classifier)) is transformers.MistralForSequenceClassification
    assert type(to_hf(modern())) is transformers.LlamaForCausalLM  # never converted: the first that fits, as before


# ------------------------------------------------------------------------- the same options in the other families


def test_encoder_decoder_with_the_modern_options_generates_the_same_with_and_without_cache():
    config = ScratchTransformerConfig(
        vocab_size=V, hidden_size=32, encoder_layers=2, decoder_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=48, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        norm_placement="pre", norm_type="rmsnorm", ffn_type="gated", activation="silu",
        position_embedding_type="rotary", attention_bias=False, ffn_bias=False, pad_token_id=0, bos_token_id=1,
        eos_token_id=2, decoder_start_token_id=1,
    )
    model = perturb(ScratchTransformerForConditionalGeneration(config), SCALE)
    source, mask = left_padded()
    cached = greedy(model, source, mask)
    assert torch.equal(cached, greedy(model, source, mask, use_cache=False))
    alone = greedy(model, source[:1, mask[0].bool()])  # the source's padding changes nothing
    assert torch.equal(cached[:1], alone)


def test_bert_with_rotary_positions_ignores_padding():
    config = ScratchBertConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                               num_key_value_heads=1, intermediate_size=48, hidden_dropout_prob=0.0,
                               attention_probs_dropout_prob=0.0, position_embedding_type="rotary",
                               norm_type="rmsnorm", pad_token_id=0)
    model = perturb(ScratchBertModel(config), SCALE)
    x = torch.randint(3, V, (1, 6))
    padded = torch.cat([x, torch.zeros(1, 3, dtype=torch.long)], 1)
    with torch.no_grad():
        full = model(padded, attention_mask=(padded != 0).long()).last_hidden_state[:, :6]
        assert max_diff(full, model(x).last_hidden_state) <= 1e-5


def test_model_card_names_the_modern_options(tmp_path):
    from scratchformers.model_card import write_model_card

    modern(rope_parameters=dict(LLAMA3)).save_pretrained(tmp_path)
    card = Path(write_model_card(tmp_path, {}, ["my-corpus"], "configs/llama-tiny.json")).read_text()
    assert "rotary positions (llama3, base 500000)" in card and "RMSNorm" in card
    assert "gated feed-forward (silu" in card and "2 key/value heads (grouped-query attention)" in card
    ScratchGPTForCausalLM(ScratchGPTConfig(**MODERN | {"norm_type": "layernorm", "ffn_type": "mlp",
                                                       "position_embedding_type": "learned", "num_key_value_heads": 4})
                          ).save_pretrained(tmp_path / "plain")
    plain = Path(write_model_card(tmp_path / "plain", {}, ["my-corpus"], "configs/gpt-tiny.json")).read_text()
    assert "RMSNorm" not in plain and "rotary" not in plain and "key/value heads" not in plain


def test_a_config_rebuilt_with_another_head_count_keeps_one_key_value_head_per_query_head():
    """A base config's settings plus an override (as the training scripts do) must not carry a stale derived
    key/value head count: `num_key_value_heads` stays None unless set."""
    base = ScratchGPTConfig(**{**MODERN, "num_key_value_heads": None})
    rebuilt = ScratchGPTConfig.from_dict({**base.to_dict(), "num_attention_heads": 2})
    attention = ScratchGPTForCausalLM(rebuilt).model.decoder.layers[0].self_attn
    assert (attention.num_heads, attention.num_key_value_heads) == (2, 2)


@pytest.mark.parametrize("name, hf_class, published", [
    ("smollm2-135m", transformers.LlamaForCausalLM, 134_515_008),
    ("qwen2.5-0.5b", transformers.Qwen2ForCausalLM, 494_032_768),
    ("llama-3.2-1b", transformers.LlamaForCausalLM, 1_235_814_400),
])
def test_real_model_presets_have_the_shape_of_the_real_checkpoint(name, hf_class, published):
    """The preset builds (on the meta device: no memory) a model with HF's parameter count for the same config,
    which is the published size of the checkpoint."""
    preset = json.loads((Path(__file__).parents[2] / "configs" / f"{name}.json").read_text())
    config = ScratchGPTConfig(**{k: v for k, v in preset.items() if k != "model_type"})
    with torch.device("meta"):
        ours = ScratchGPTForCausalLM(config)
        hf = hf_class._from_config(config_to_hf(config, hf_class))
    count = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731 (tied weights counted once)
    assert count(ours) == count(hf) == published


def test_modern_model_under_torch_compile_gives_the_same_logits():
    model = modern(rope_parameters=dict(LLAMA3))
    x = torch.randint(3, V, (2, 6))
    compiled = torch.compile(model, backend="aot_eager")
    torch.testing.assert_close(compiled(x).logits, model(x).logits, atol=1e-5, rtol=1e-5)
