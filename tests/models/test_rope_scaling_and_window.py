"""Rope scaling `dynamic` (NTK-aware) and `yarn`, and sliding-window attention (Mistral, Qwen2): each against
transformers' own formula or model with the same weights (logits ≤ 1e-4, fp32), cache == no cache, left padding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from twin_helpers import greedy, max_diff, perturb

from scratchformers import ScratchBertConfig, ScratchGPTConfig, ScratchGPTForCausalLM
from scratchformers.convert import from_hf, to_hf
from scratchformers.embeddings import (
    RotaryPositionEmbedding,
    dynamic_ntk_inverse_frequencies,
    rope_attention_factor,
    rope_inverse_frequencies,
    yarn_inverse_frequencies,
)
from scratchformers.masks import attention_inputs, causal_mask

ATOL = 1e-4
SCALE = 0.05  # how far `perturb` moves each weight off its init
V = 61
L = 16  # the trained context of the rope tests: inputs run past it
DYNAMIC = {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 4.0}
YARN = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": L}
YARN_VARIANTS = {
    "yarn": YARN,
    "yarn-betas-untruncated": {**YARN, "beta_fast": 16, "beta_slow": 2, "truncate": False},
    "yarn-attention-factor": {**YARN, "attention_factor": 0.8},
    "yarn-mscale": {**YARN, "mscale": 0.707, "mscale_all_dim": 1.0},
}


def left_padded(length: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randint(3, V, (3, length))
    mask = torch.ones_like(x)
    mask[0, : length // 2] = 0
    mask[1, :1] = 0
    return x.masked_fill(mask == 0, 0), mask


def llama_config(rope: dict, max_position_embeddings: int = L, **kwargs) -> transformers.LlamaConfig:
    return transformers.LlamaConfig(hidden_size=64, num_attention_heads=4, max_position_embeddings=max_position_embeddings,
                                    rope_parameters=dict(rope), **kwargs)


# ------------------------------------------------------------------------------------------------ dynamic NTK scaling


@pytest.mark.parametrize("length", [None, 5, L, L + 1, 3 * L + 7])
def test_dynamic_ntk_frequencies_match_transformers_at_each_length(length):
    expected, scaling = ROPE_INIT_FUNCTIONS["dynamic"](llama_config(DYNAMIC), "cpu", seq_len=length)
    ours = rope_inverse_frequencies(16, DYNAMIC, sequence_length=length, max_position_embeddings=L)
    torch.testing.assert_close(ours, expected)
    assert scaling == rope_attention_factor(DYNAMIC) == 1.0


def test_dynamic_ntk_keeps_the_trained_frequencies_up_to_the_trained_length_and_raises_the_base_beyond():
    default = rope_inverse_frequencies(16, {"rope_type": "default", "rope_theta": 10000.0})
    torch.testing.assert_close(dynamic_ntk_inverse_frequencies(16, 1e4, 4.0, L, L), default)
    longer = dynamic_ntk_inverse_frequencies(16, 1e4, 4.0, L, 2 * L)
    base = 1e4 * (4.0 * 2 - 3) ** (16 / 14)  # base · (factor·ℓ/L − (factor − 1))^(d/(d−2))
    torch.testing.assert_close(longer, 1.0 / base ** (torch.arange(0, 16, 2).float() / 16))
    assert longer[0] == default[0] and (longer[1:] < default[1:]).all()  # θ₀ = 1 always; the rest slow down


@pytest.mark.parametrize("lengths", [(7,), (40,), (7, 40, 50)])
def test_dynamic_rotary_matches_transformers_sequence_length_update(lengths):
    """transformers' `dynamic_rope_update` recomputes θ for max(position_ids) + 1 when that grows past the longest
    length seen; on a fresh module (or growing lengths, as in decoding) that is our stateless rule."""
    config = llama_config(DYNAMIC)
    theirs = transformers.models.llama.modeling_llama.LlamaRotaryEmbedding(config)
    ours = RotaryPositionEmbedding(16, DYNAMIC, max_position_embeddings=L)
    for length in lengths:
        position_ids = torch.arange(length)[None]
        cos, sin = theirs(torch.zeros(1, length, 64), position_ids)
        our_cos, our_sin = ours(position_ids, torch.float32)
        torch.testing.assert_close(our_cos, cos, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(our_sin, sin, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------------------------------- YaRN


@pytest.mark.parametrize("name", YARN_VARIANTS)
def test_yarn_frequencies_and_attention_factor_match_transformers(name):
    rope = YARN_VARIANTS[name]
    expected, attention_factor = ROPE_INIT_FUNCTIONS["yarn"](llama_config(rope, max_position_embeddings=4 * L), "cpu")
    torch.testing.assert_close(yarn_inverse_frequencies(16, rope), expected)
    torch.testing.assert_close(rope_inverse_frequencies(16, rope), expected)
    assert rope_attention_factor(rope) == pytest.approx(attention_factor)


def test_yarn_keeps_fast_dimensions_interpolates_slow_ones_and_scales_cos_sin():
    default = rope_inverse_frequencies(16, {"rope_theta": 10000.0})
    yarn = yarn_inverse_frequencies(16, YARN)
    assert yarn[0] == default[0]  # many rotations over the context: extrapolated (kept)
    torch.testing.assert_close(yarn[-1], default[-1] / 4.0)  # < 1 rotation: interpolated by the factor
    rotary = RotaryPositionEmbedding(16, YARN)
    cos, sin = rotary(torch.tensor([[0, 3]]), torch.float32)
    factor = 0.1 * torch.log(torch.tensor(4.0)) + 1  # √(1/t) = 0.1 ln s + 1 (Peng et al. 2023, eq. 22)
    torch.testing.assert_close(cos[0, 0], torch.full((16,), factor.item()))
    torch.testing.assert_close(cos[0, 1] ** 2 + sin[0, 1] ** 2, torch.full((16,), factor.item() ** 2))


# ----------------------------------------------------------------------------------- end to end: real checkpoints

ROPE_CASES = {"dynamic": DYNAMIC, "yarn": YARN, "yarn-mscale": YARN_VARIANTS["yarn-mscale"]}
ARCHS = {"llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
         "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM)}


def hf_rope_model(arch: str, rope: dict) -> transformers.PreTrainedModel:
    config_class, model_class = ARCHS[arch]
    # dynamic scaling starts at max_position_embeddings; YaRN's trained context is original_max_position_embeddings
    mpe = L if rope["rope_type"] == "dynamic" else 4 * L
    config = config_class(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=mpe, rms_norm_eps=1e-6,
                          pad_token_id=0, bos_token_id=1, eos_token_id=2, rope_parameters=dict(rope),
                          tie_word_embeddings=False)
    return perturb(model_class(config), SCALE)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("rope", ROPE_CASES)
def test_scaled_rope_checkpoint_converts_both_ways_with_the_same_logits_past_the_trained_context(arch, rope):
    torch.manual_seed(0)
    hf = hf_rope_model(arch, ROPE_CASES[rope])
    ours = from_hf(hf)
    assert ours.config.rope_parameters["rope_type"] == ROPE_CASES[rope]["rope_type"]
    x = torch.randint(3, V, (2, 3 * L))  # three times the trained context
    with torch.no_grad():
        assert max_diff(hf(x).logits, ours(x).logits) <= ATOL
        # dynamic: back to the trained θ (transformers resets its state only below the trained length)
        assert max_diff(hf(x[:, : L - 1]).logits, ours(x[:, : L - 1]).logits) <= ATOL
    # greedy decoding that crosses the trained length (dynamic: θ grows with every step, on both sides)
    prompt = x[:1, : L - 4]
    assert torch.equal(greedy(hf, prompt, n=12), greedy(ours, prompt, n=12))
    back = to_hf(perturb(ours, SCALE), hf_class=ARCHS[arch][1])  # new weights, made on our side
    assert back.config.rope_parameters["rope_type"] == ROPE_CASES[rope]["rope_type"]
    padded, mask = left_padded(2 * L)
    with torch.no_grad():  # growing lengths: transformers' dynamic θ is stateful, it keeps the longest seen
        real = mask.bool()
        assert max_diff(back(padded, attention_mask=mask).logits[real],
                        ours(padded, attention_mask=mask).logits[real]) <= ATOL
        assert max_diff(back(x).logits, ours(x).logits) <= ATOL


def test_yarn_cached_generation_matches_uncached():
    ours = from_hf(hf_rope_model("llama", YARN))
    padded, mask = left_padded(L)
    assert torch.equal(greedy(ours, padded, mask, n=20), greedy(ours, padded, mask, n=20, use_cache=False))


def test_bad_scaled_rope_parameters_name_what_is_missing():
    base = dict(vocab_size=V, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                position_embedding_type="rotary")
    with pytest.raises(ValueError, match="factor"):
        ScratchGPTConfig(**base, rope_parameters={"rope_type": "yarn", "original_max_position_embeddings": 8})
    with pytest.raises(ValueError, match="factor"):
        ScratchGPTConfig(**base, rope_parameters={"rope_type": "dynamic"})
    with pytest.raises(ValueError, match="'dynamic', 'yarn'"):
        ScratchGPTConfig(**base, rope_parameters={"rope_type": "longrope", "factor": 2.0})


# ------------------------------------------------------------------------------------------- sliding-window attention

W = 5


def test_sliding_window_mask_sees_exactly_the_last_w_positions():
    for past, T, offset in [(0, 12, 0), (7, 3, 0), (9, 1, 5), (9, 4, 5)]:
        S = past + T - offset
        allowed = causal_mask(T, S, past=past, sliding_window=W, key_offset=offset)
        for i in range(T):
            for j in range(S):
                query, key = past + i, offset + j
                assert bool(allowed[i, j]) == (query - W < key <= query), (past, T, offset, i, j)


@pytest.mark.parametrize("implementation", ["eager", "sdpa", "flash_attention_2"])
def test_the_window_is_left_out_only_when_it_cannot_bite(implementation):
    kwargs = dict(batch_size=1, causal=True, implementation=implementation, dtype=torch.float32, device="cpu")
    mask, extra = attention_inputs(None, query_length=1, key_length=W, past=W + 3, key_offset=4,
                                   sliding_window=W, **kwargs)
    assert mask is None  # a decoding step over a full sliding cache: W keys, all visible
    mask, extra = attention_inputs(None, query_length=8, key_length=8, sliding_window=W, **kwargs)
    if implementation.startswith("flash"):
        assert mask is None and extra == {"sliding_window": W}  # the kernel's own window
    else:
        assert mask is not None and mask[0, 0, 7, 2] < 0 and mask[0, 0, 7, 3] == 0


def mistral(window: int | None = W, **kwargs) -> transformers.MistralForCausalLM:
    config = transformers.MistralConfig(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                        rms_norm_eps=1e-6, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                        sliding_window=window, tie_word_embeddings=False, **kwargs)
    return perturb(transformers.MistralForCausalLM(config), SCALE)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_mistral_with_a_window_shorter_than_the_sequence_converts_with_the_same_logits(implementation):
    hf = mistral()
    hf.set_attn_implementation(implementation)
    ours = from_hf(hf)
    ours.set_attn_implementation(implementation)
    assert ours.config.sliding_window == W
    x = torch.randint(3, V, (2, 4 * W))
    with torch.no_grad():
        assert max_diff(hf(x).logits, ours(x).logits) <= ATOL
    padded, mask = left_padded(3 * W)
    with torch.no_grad():
        real = mask.bool()
        assert max_diff(hf(padded, attention_mask=mask).logits[real],
                        ours(padded, attention_mask=mask).logits[real]) <= ATOL
    assert torch.equal(greedy(hf, padded, mask, n=2 * W), greedy(ours, padded, mask, n=2 * W))


def test_the_window_changes_what_a_late_token_sees():
    ours = from_hf(mistral())
    full = ScratchGPTForCausalLM(ScratchGPTConfig(**{**ours.config.to_dict(), "sliding_window": None})).eval()
    full.load_state_dict(ours.state_dict())
    x = torch.randint(3, V, (1, 3 * W))
    with torch.no_grad():
        windowed, unwindowed = ours(x).logits, full(x).logits
    assert max_diff(windowed[:, :W], unwindowed[:, :W]) <= 1e-5  # the first W tokens see everything anyway
    assert max_diff(windowed[:, W:], unwindowed[:, W:]) > 1e-3


def test_ours_with_a_window_converts_to_mistral_with_the_same_logits():
    ours = perturb(from_hf(mistral()), SCALE)
    hf = to_hf(ours, hf_class=transformers.MistralForCausalLM)
    assert hf.config.sliding_window == W
    x = torch.randint(3, V, (2, 4 * W))
    with torch.no_grad():
        assert max_diff(hf(x).logits, ours(x).logits) <= ATOL
    with pytest.raises(ValueError, match="sliding_window"):
        to_hf(ours, hf_class=transformers.LlamaForCausalLM)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_sliding_window_cached_decoding_matches_uncached_with_left_padding(implementation):
    ours = from_hf(mistral())
    ours.set_attn_implementation(implementation)
    padded, mask = left_padded(2 * W)
    cached = greedy(ours, padded, mask, n=2 * W)
    assert torch.equal(cached, greedy(ours, padded, mask, n=2 * W, use_cache=False))
    for row in range(3):  # each row alone, without padding
        alone = greedy(ours, padded[row : row + 1, mask[row].bool()], n=2 * W)
        assert torch.equal(cached[row, -2 * W :], alone[0, -2 * W :])
    # the cache keeps only the window: W − 1 keys per layer (transformers' DynamicSlidingWindowLayer)
    out = ours(padded, attention_mask=mask, use_cache=True)
    cache = out.past_key_values if hasattr(out, "past_key_values") else out.cache
    assert cache.layers[0].keys.shape[-2] == W - 1


def test_sliding_window_chunked_prefill_matches_one_forward():
    ours = from_hf(mistral())
    x = torch.randint(3, V, (2, 4 * W))
    with torch.no_grad():
        whole = ours(x).logits
        out = ours(x[:, :7], use_cache=True)
        cache = out.past_key_values if hasattr(out, "past_key_values") else out.cache
        chunks = [out.logits]
        for start, end in [(7, 9), (9, 16), (16, 4 * W)]:
            out = ours(x[:, start:end], past_key_values=cache, use_cache=True)
            chunks.append(out.logits)
    assert max_diff(torch.cat(chunks, 1), whole) <= 1e-5


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_sliding_window_static_cache_generation_matches_the_dynamic_cache(implementation):
    ours = from_hf(mistral())
    ours.set_attn_implementation(implementation)
    padded, mask = left_padded(2 * W)
    assert torch.equal(greedy(ours, padded, mask, n=2 * W, cache_implementation="static"),
                       greedy(ours, padded, mask, n=2 * W))


def qwen2_windowed() -> transformers.Qwen2ForCausalLM:
    """Qwen2 with `use_sliding_window`: layers from `max_window_layers` on slide, the first ones see everything."""
    config = transformers.Qwen2Config(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                      rms_norm_eps=1e-6, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                      use_sliding_window=True, sliding_window=W, max_window_layers=1)
    return perturb(transformers.Qwen2ForCausalLM(config), SCALE)


def test_qwen2_with_some_sliding_layers_converts_both_ways_with_the_same_logits():
    hf = qwen2_windowed()
    assert hf.config.layer_types == ["full_attention", "sliding_attention", "sliding_attention"]
    ours = from_hf(hf)
    assert ours.config.sliding_window == W and ours.config.layer_types == hf.config.layer_types
    x = torch.randint(3, V, (2, 4 * W))
    padded, mask = left_padded(3 * W)
    with torch.no_grad():
        assert max_diff(hf(x).logits, ours(x).logits) <= ATOL
    assert torch.equal(greedy(hf, padded, mask, n=2 * W), greedy(ours, padded, mask, n=2 * W))
    assert torch.equal(greedy(ours, padded, mask, n=2 * W), greedy(ours, padded, mask, n=2 * W, use_cache=False))
    back = to_hf(perturb(ours, SCALE))
    assert type(back) is transformers.Qwen2ForCausalLM and back.config.layer_types == hf.config.layer_types
    with torch.no_grad():
        assert max_diff(back(x).logits, ours(x).logits) <= ATOL


def test_bad_sliding_window_options_raise_value_error():
    base = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
    with pytest.raises(ValueError, match="sliding_window"):
        ScratchGPTConfig(**base, sliding_window=0)
    with pytest.raises(ValueError, match="not an option of scratch_bert .taken only by scratch_gpt"):
        ScratchBertConfig(**base, sliding_window=8)
    with pytest.raises(ValueError, match="one per layer"):
        ScratchGPTConfig(**base, sliding_window=8, layer_types=["sliding_attention"])
    with pytest.raises(ValueError, match="full_attention"):
        ScratchGPTConfig(**base, sliding_window=8, layer_types=["sliding_attention", "local"])
    with pytest.raises(ValueError, match="sliding_window` is None"):
        ScratchGPTConfig(**base, layer_types=["sliding_attention", "full_attention"])


def test_model_card_names_the_sliding_window(tmp_path):
    from scratchformers.model_card import write_model_card

    from_hf(qwen2_windowed()).save_pretrained(tmp_path / "qwen")
    card = Path(write_model_card(tmp_path / "qwen", {}, ["my-corpus"], None)).read_text()
    assert f"sliding-window attention (W={W}, 2 of 3 layers)" in card
    from_hf(mistral()).save_pretrained(tmp_path / "mistral")
    card = Path(write_model_card(tmp_path / "mistral", {}, ["my-corpus"], None)).read_text()
    assert f"sliding-window attention (W={W}, every layer)" in card


def saved_for_backward_bytes(model, input_ids: torch.Tensor) -> int:
    """Bytes of every distinct storage autograd keeps for backward during one training forward (weights excluded)."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=input_ids, labels=input_ids)
    return sum(storages.values())


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_rotary_attention_keeps_no_more_for_backward_than_transformers_llama(implementation):
    """Only v (H_kv·D per token) of the fused q/k/v projection is kept, not the whole (H + 2·H_kv)·D output."""
    hf = hf_rope_model("llama", {"rope_type": "default", "rope_theta": 10000.0})
    hf.set_attn_implementation(implementation)
    ours = from_hf(hf)
    ours.set_attn_implementation(implementation)
    x = torch.randint(3, V, (4, 32))
    # a view kept by mistake costs B·T·(H + H_kv)·D·4 = 24 KiB per layer here; allow a few scalars (the loss's)
    assert saved_for_backward_bytes(ours, x) <= saved_for_backward_bytes(hf, x) + 64
