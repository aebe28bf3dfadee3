"""GrowingCache: the in-place, amortised-growth KV cache our models make for decoding must behave exactly like
transformers' DynamicCache (same keys/values after any sequence of operations), while copying only new tokens."""

import pytest
import torch
from transformers.cache_utils import DynamicCache, DynamicLayer, EncoderDecoderCache

from scratchformers import ScratchGPTConfig, ScratchGPTForCausalLM
from scratchformers.cache import GrowingCache, GrowingLayer
from scratchformers.compat import cache_field, output_cache


def _kv(batch: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(batch, 2, length, 4, generator=generator), torch.randn(batch, 2, length, 3, generator=generator)


def test_appending_copies_only_new_tokens_and_grows_by_doubling():
    g = torch.Generator().manual_seed(0)
    layer, reference = GrowingLayer(), DynamicLayer()
    buffers = set()
    for step in range(100):
        k, v = _kv(2, 5 if step == 0 else 1, g)
        keys, values = layer.update(k, v)
        ref_keys, ref_values = reference.update(k, v)
        assert torch.equal(keys, ref_keys) and torch.equal(values, ref_values)
        buffers.add(layer.key_buffer.data_ptr())
        assert keys.data_ptr() == layer.key_buffer.data_ptr()  # a view of the buffer, not a copy
    assert layer.get_seq_length() == 104
    # capacities 5, 10, 20, 40, 80, 160: 6 buffers for 100 appends (torch.cat allocates 100)
    assert layer.key_buffer.shape[-2] == 160 and len(buffers) <= 6


def test_random_operations_match_dynamic_cache():
    """update / crop / reorder (beam search) / select / repeat in a random order give DynamicLayer's exact tensors."""
    g = torch.Generator().manual_seed(1)
    layer, reference = GrowingLayer(), DynamicLayer()
    batch = 3
    for _ in range(60):
        op = torch.randint(0, 6, (1,), generator=g).item()
        length = reference.get_seq_length()
        if op <= 2 or length == 0:
            k, v = _kv(batch, int(torch.randint(1, 4, (1,), generator=g)), g)
            layer.update(k, v), reference.update(k, v)
        elif op == 3 and length > 1:
            cut = -int(torch.randint(1, length, (1,), generator=g))
            layer.crop(cut), reference.crop(cut)
        elif op == 4:
            order = torch.randint(0, batch, (batch,), generator=g)
            layer.reorder_cache(order), reference.reorder_cache(order)
        elif op == 5 and batch < 6:
            layer.batch_repeat_interleave(2), reference.batch_repeat_interleave(2)
            keep = torch.randperm(2 * batch, generator=g)[:batch]
            layer.batch_select_indices(keep), reference.batch_select_indices(keep)
        assert layer.get_seq_length() == reference.get_seq_length()
        assert torch.equal(layer.keys, reference.keys) and torch.equal(layer.values, reference.values)


def test_reset_starts_empty_and_grad_falls_back_to_concatenation():
    g = torch.Generator().manual_seed(2)
    layer = GrowingLayer()
    layer.update(*_kv(1, 3, g))
    layer.reset()
    assert layer.get_seq_length() == 0
    k, v = _kv(1, 2, g)
    assert torch.equal(layer.update(k, v)[0], k)
    # with autograd recording, an in-place write would corrupt tensors saved for backward: it concatenates instead
    layer = GrowingLayer()
    k1 = torch.randn(1, 2, 3, 4, requires_grad=True)
    k2 = torch.randn(1, 2, 1, 4, requires_grad=True)
    v = torch.randn(1, 2, 3, 3)
    (layer.update(k1, v)[0] ** 2).sum().backward()
    keys, _ = layer.update(k2, v[:, :, :1])
    (keys**2).sum().backward()
    torch.testing.assert_close(k2.grad, 2 * k2)
    torch.testing.assert_close(k1.grad, 4 * k1)  # both backward passes reached k1 intact


def test_growing_cache_is_a_dynamic_cache_with_growing_layers():
    config = ScratchGPTConfig(vocab_size=30, hidden_size=8, num_hidden_layers=2, num_attention_heads=2)
    cache = GrowingCache(config=config)
    assert isinstance(cache, DynamicCache) and all(type(layer) is GrowingLayer for layer in cache.layers)
    lazy = GrowingCache()  # without a config, layers are added on first use
    lazy.update(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4), layer_idx=0)
    assert type(lazy.layers[0]) is GrowingLayer and lazy.get_seq_length() == 3


@pytest.fixture(scope="module")
def gpt():
    torch.manual_seed(0)
    config = ScratchGPTConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=32, max_position_embeddings=64, pad_token_id=0)
    return ScratchGPTForCausalLM(config).eval()


@pytest.mark.parametrize("num_beams", [1, 3])
def test_generate_uses_growing_layers_and_matches_a_users_dynamic_cache(gpt, num_beams):
    x = torch.randint(1, 40, (2, 6))
    mask = torch.ones_like(x)
    mask[0, :2] = 0
    kwargs = dict(attention_mask=mask, max_new_tokens=12, do_sample=False, num_beams=num_beams, pad_token_id=0)
    out = gpt.generate(x, return_dict_in_generate=True, **kwargs)
    made = output_cache(out)
    assert all(type(layer) is GrowingLayer for layer in made.layers)
    users = DynamicCache(config=gpt.config)
    plain = gpt.generate(x, **cache_field(users), **kwargs)
    assert all(type(layer) is DynamicLayer for layer in users.layers)  # the user's cache is left as it is
    assert torch.equal(out.sequences, plain)


def test_encoder_decoder_forward_makes_growing_self_and_cross_caches():
    from scratchformers import ScratchTransformerConfig, ScratchTransformerForConditionalGeneration

    torch.manual_seed(0)
    config = ScratchTransformerConfig(vocab_size=30, hidden_size=16, encoder_layers=1, decoder_layers=1,
                                      num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    model = ScratchTransformerForConditionalGeneration(config).eval()
    src = torch.randint(4, 30, (2, 7))
    out = model(input_ids=src, decoder_input_ids=torch.randint(4, 30, (2, 3)), use_cache=True)
    assert isinstance(output_cache(out), EncoderDecoderCache)
    for part in (output_cache(out).self_attention_cache, output_cache(out).cross_attention_cache):
        assert all(type(layer) is GrowingLayer for layer in part.layers)
    generated = model.generate(src, max_new_tokens=8, num_beams=2, do_sample=False)
    users = EncoderDecoderCache(DynamicCache(), DynamicCache())
    assert torch.equal(generated, model.generate(src, max_new_tokens=8, num_beams=2, do_sample=False, **cache_field(users)))


def test_assisted_decoding_crops_the_growing_cache_and_matches_greedy(monkeypatch):
    """Assisted generation drafts tokens with a second model and crops rejected ones from the cache; the result must
    equal plain greedy decoding, so a crop followed by in-place writes must not leave stale keys behind (with crop
    made a no-op this test fails)."""
    config = ScratchGPTConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=32, max_position_embeddings=64, pad_token_id=0, initializer_range=0.3)
    torch.manual_seed(0)
    model = ScratchGPTForCausalLM(config).eval()  # wide init: the next token depends on the context
    torch.manual_seed(1)
    assistant = ScratchGPTForCausalLM(config).eval()  # a different random model: many drafts are rejected
    x = torch.randint(1, 40, (1, 6))
    crops = []
    original = GrowingLayer.crop

    def crop(self, n):  # the argument's meaning differs between transformers releases: record the lengths
        before = self.get_seq_length()
        original(self, n)
        crops.append((before, self.get_seq_length()))

    monkeypatch.setattr(GrowingLayer, "crop", crop)
    plain = model.generate(x, max_new_tokens=16, do_sample=False, pad_token_id=0)
    assisted = model.generate(x, max_new_tokens=16, do_sample=False, pad_token_id=0, assistant_model=assistant)
    assert torch.equal(assisted, plain)
    assert any(after < before for before, after in crops)  # rejected drafts were cropped from our cache


def test_a_cache_filled_under_inference_mode_keeps_working_outside_it():
    """torch.inference_mode buffers cannot be written in place outside inference mode: the layer re-buffers."""
    g = torch.Generator().manual_seed(4)
    layer, reference = GrowingLayer(), DynamicLayer()
    with torch.inference_mode():
        for length in (3, 1):  # prefill, then one step: the buffer has spare room
            k, v = _kv(2, length, g)
            layer.update(k, v), reference.update(k, v)
    with torch.no_grad():
        k, v = _kv(2, 1, g)
        keys, values = layer.update(k, v)
        ref_keys, ref_values = reference.update(k, v)
        assert torch.equal(keys, ref_keys) and torch.equal(values, ref_values)
        layer.reorder_cache(torch.tensor([1, 0])), reference.reorder_cache(torch.tensor([1, 0]))
    assert torch.equal(layer.keys, reference.keys) and not layer.key_buffer.is_inference()


def test_a_prompt_cache_can_be_copied_and_reused_as_transformers_documents():
    """HF's prompt-reuse recipe: prefill once, `copy.deepcopy` the cache for each continuation."""
    import copy

    config = ScratchGPTConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=32, max_position_embeddings=64, initializer_range=0.3)
    torch.manual_seed(0)
    model = ScratchGPTForCausalLM(config).eval()
    prompt = torch.randint(0, 50, (1, 6))
    with torch.no_grad():
        prefix = output_cache(model(prompt, use_cache=True))
    assert isinstance(prefix, GrowingCache)
    for _ in range(2):
        x = torch.cat([prompt, torch.randint(0, 50, (1, 3))], dim=1)
        reused = model.generate(x, **cache_field(copy.deepcopy(prefix)), max_new_tokens=8, do_sample=False)
        assert torch.equal(reused, model.generate(x, max_new_tokens=8, do_sample=False))
    assert prefix.get_seq_length() == 6  # the copies were written, not the prefix
