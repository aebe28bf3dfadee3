"""Static KV cache: the encoder-decoder generates the same tokens with it as with the dynamic cache, and a cached GPT
decoding step compiles to one graph (no graph break, no recompilation per step) with the eager step's logits."""

from __future__ import annotations

import copy

import pytest
import torch
import torch._dynamo
from transformers import CompileConfig
from transformers.cache_utils import EncoderDecoderCache, StaticCache

from scratchformers import (
    ScratchGPTConfig,
    ScratchGPTForCausalLM,
    ScratchTransformerConfig,
    ScratchTransformerForConditionalGeneration,
)
from scratchformers.compat import cache_field, output_cache


def spread(model):
    """Random weights with a wider spread than the init, so a random tiny model does not repeat one token forever
    and a wrong cache or mask shows up as different tokens."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    return model.eval()


def seq2seq(tiny: dict, implementation: str = "eager") -> ScratchTransformerForConditionalGeneration:
    model = spread(ScratchTransformerForConditionalGeneration(ScratchTransformerConfig(**tiny)))
    model.set_attn_implementation(implementation)
    return model


def gpt(tiny: dict, implementation: str = "eager", layers: int = 1) -> ScratchGPTForCausalLM:
    model = spread(ScratchGPTForCausalLM(ScratchGPTConfig(**{**tiny, "num_hidden_layers": layers})))
    model.set_attn_implementation(implementation)
    return model


def padded_source() -> tuple[torch.Tensor, torch.Tensor]:
    """Two sources of 7 tokens, the second with 3 padded positions at the end."""
    x = torch.randint(3, 64, (2, 7))
    mask = torch.ones_like(x)
    mask[1, 4:] = 0
    return x.masked_fill(mask == 0, 0), mask


# --- encoder-decoder: static == dynamic ----------------------------------------------------------------------------------


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("num_beams", [1, 3], ids=["greedy", "beam3"])
def test_seq2seq_static_cache_generation_matches_the_dynamic_cache(tiny, implementation, num_beams):
    model = seq2seq(tiny, implementation)
    x, mask = padded_source()
    kwargs = dict(attention_mask=mask, max_new_tokens=8, min_new_tokens=8, do_sample=False, num_beams=num_beams,
                  return_dict_in_generate=True, output_scores=True)
    static = model.generate(x, cache_implementation="static", **kwargs)
    dynamic = model.generate(x, **kwargs)
    assert isinstance(output_cache(static), EncoderDecoderCache)
    assert isinstance(output_cache(static).self_attention_cache, StaticCache)
    assert isinstance(output_cache(static).cross_attention_cache, StaticCache)
    assert torch.equal(static.sequences, dynamic.sequences)
    for a, b in zip(static.scores, dynamic.scores, strict=True):  # every step's scores, not only the argmax
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(static.scores[1], static.scores[-1], atol=1e-3)  # later steps do read the cache


@pytest.mark.parametrize("cache_implementation", [None, "static"])
def test_cross_attention_keys_and_values_are_computed_once_per_source(tiny, cache_implementation):
    model = seq2seq(tiny)
    calls = []
    for layer in model.model.decoder.layers:
        layer.cross_attn.kv_proj.register_forward_hook(lambda *_: calls.append(1))
    x, mask = padded_source()
    model.generate(x, attention_mask=mask, max_new_tokens=6, min_new_tokens=6, do_sample=False,
                   cache_implementation=cache_implementation)
    assert len(calls) == len(model.model.decoder.layers)  # once per layer, not once per generated token


# --- GPT: one cached decoding step under torch.compile ---------------------------------------------------------------------


def prefilled(model, max_cache_len: int = 12):
    """A left-padded batch run through the model into a StaticCache; returns (cache, the next decoding step's inputs
    exactly as generate() prepares them: input_ids (B, 1), position_ids (B, 1), a 4-D mask over the cache's slots)."""
    x = torch.randint(3, 64, (2, 5))
    mask = torch.ones_like(x)
    mask[0, :2] = 0
    cache = StaticCache(config=model.config, max_cache_len=max_cache_len)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = model(x, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True).logits
    ids = torch.cat([x, logits[:, -1].argmax(-1, keepdim=True)], 1)
    mask = torch.cat([mask, torch.ones(2, 1, dtype=mask.dtype)], 1)
    step = model.prepare_inputs_for_generation(
        ids, next_sequence_length=1, **cache_field(cache), attention_mask=mask, position_ids=positions[:, -1:] + 1,
        use_cache=True,
    )
    step["full_mask"] = mask
    return cache, step


def next_step(step: dict, logits: torch.Tensor) -> dict:
    """The following step's inputs: the argmax token, positions + 1, and the 2-D/4-D masks one slot further."""
    full = torch.cat([step["full_mask"], torch.ones(2, 1, dtype=step["full_mask"].dtype)], 1)
    prepared = step["attention_mask"].clone()
    prepared[..., full.shape[1] - 1] = 0 if prepared.is_floating_point() else True
    return dict(step, input_ids=logits[:, -1].argmax(-1, keepdim=True), position_ids=step["position_ids"] + 1,
                attention_mask=prepared, full_mask=full)


def call(model, step: dict, cache, variant: str):
    """One decoding step with the inputs a caller may give: generate()'s 4-D mask, or a 2-D padding mask,
    with or without explicit position_ids."""
    kwargs = dict(input_ids=step["input_ids"], cache=cache, use_cache=True)
    kwargs["attention_mask"] = step["attention_mask"] if variant.startswith("4d") else step["full_mask"]
    if variant.endswith("positions"):
        kwargs["position_ids"] = step["position_ids"]
    with torch.no_grad():
        return model(**kwargs).logits


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_a_cached_decoding_step_has_no_graph_break(tiny, implementation):
    model = gpt(tiny, implementation)
    cache, step = prefilled(model)
    torch._dynamo.reset()
    with torch.no_grad():
        explained = torch._dynamo.explain(model)(
            input_ids=step["input_ids"], position_ids=step["position_ids"], attention_mask=step["attention_mask"],
            cache=cache, use_cache=True,
        )
    assert explained.graph_break_count == 0, [b.reason for b in explained.break_reasons]
    assert explained.graph_count == 1


@pytest.mark.parametrize(
    "implementation,variant",
    [("eager", "4d+positions"), ("sdpa", "4d+positions"), ("eager", "4d"), ("eager", "2d+positions"), ("sdpa", "2d")],
)
def test_compiled_fullgraph_decoding_steps_match_eager_without_recompiling(tiny, implementation, variant):
    model = gpt(tiny, implementation)
    cache, step = prefilled(model)
    compiled_cache = copy.deepcopy(cache)
    graphs = []

    def counting_backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend=counting_backend)
    for _ in range(3):  # a baked-in past length would give wrong logits from the second step on
        expected = call(model, step, cache, variant)
        got = call(compiled, step, compiled_cache, variant)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        step = next_step(step, expected)
    # generate()'s 4-D mask keeps every shape fixed: one graph for all steps. A 2-D mask grows by one each step:
    # dynamo compiles once more with a dynamic length, then reuses that graph.
    assert len(graphs) == (1 if variant.startswith("4d") else 2)
    assert int(cache.get_seq_length()) == int(compiled_cache.get_seq_length()) == 5 + 3


def test_eager_calls_with_a_static_cache_are_still_validated(tiny):
    model = gpt(tiny)
    cache, step = prefilled(model)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model(input_ids=torch.full((2, 1), 64), cache=cache, use_cache=True)
    with pytest.raises(ValueError, match=r"attention_mask` must have shape \(batch, past \+ sequence\) = \(2, 6\)"):
        model(input_ids=step["input_ids"], attention_mask=torch.ones(2, 4, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="contains position 64"):
        model(input_ids=step["input_ids"], position_ids=torch.full((2, 1), 64), cache=cache)


@pytest.mark.parametrize("model_family", ["gpt", "seq2seq"])
def test_generate_compiles_the_decoding_step_with_compile_config(tiny, model_family):
    """transformers compiles `model.__call__` for decoding steps (not the prefill) when the cache is static and a
    compile_config allows CPU; fullgraph=True would raise on any graph break."""
    model = gpt(tiny) if model_family == "gpt" else seq2seq({**tiny, "num_hidden_layers": 1,
                                                               "encoder_layers": 1, "decoder_layers": 1})
    x, mask = padded_source()
    graphs, calls = [], []

    def counting_backend(graph_module, example_inputs):
        graphs.append(graph_module)

        def run(*args):
            calls.append(1)
            return graph_module.forward(*args)

        return run

    torch._dynamo.reset()
    config = CompileConfig(fullgraph=True, backend=counting_backend, mode=None)
    config._compile_all_devices = True  # transformers compiles only on accelerators unless told otherwise
    kwargs = dict(attention_mask=mask, max_new_tokens=6, min_new_tokens=6, do_sample=False)
    compiled = model.generate(x, cache_implementation="static", compile_config=config, **kwargs)
    assert torch.equal(compiled, model.generate(x, **kwargs))
    assert len(graphs) == 1 and len(calls) == 5  # one graph, reused by the 5 steps after the prefill
