"""Continuous batching (`generate_batch`, `generate(cache_implementation="paged")`, the manager `transformers serve
--continuous-batching` runs) on our decoder-only GPT, and the contract inference servers' "transformers backend"
(vLLM, SGLang) asks of a custom model.

Continuous batching packs the new tokens of every running request into one row and keeps their keys/values in one
paged cache (`PagedAttentionCache`), which our attention must read and write through transformers' paged attention
functions (`paged|eager`, `sdpa`/`paged|sdpa`) with the masks the batcher built. The claim checked for every
decoder-only configuration we support (GPT-2 style, Llama/Qwen2 style with grouped-query attention, multi-query
attention, sliding windows, a per-layer mix of sliding and full layers, the paper's post-LN sinusoidal decoder):
greedy continuous batching decodes exactly the tokens `generate()` decodes for each prompt alone — with prompts longer
than the batch's token budget (chunked prefill) and than the window. transformers' own LlamaForCausalLM and
GPT2LMHeadModel with the same weights (`convert.to_hf`) decode the same tokens under continuous batching too.
Families that cannot be batched this way (encoder-decoder, RNN, BERT, GPT without an LM head) are refused with one
error before any work, not returned FAILED with the error in a log.
"""

from __future__ import annotations

import dataclasses
import inspect
import json

import pytest
import torch
from families import LLAMA_OPTIONS
from torch import nn
from transformers import AutoModel, GenerationConfig
from transformers.generation.configuration_utils import ContinuousBatchingConfig
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

import scratchformers
from scratchformers import attention as attention_module
from scratchformers import compat, pretrained
from scratchformers.cache import GrowingCache
from scratchformers.convert import to_hf
from scratchformers.layers import TransformerStack
from scratchformers.modeling_scratch_gpt import ScratchGPTForCausalLM, ScratchGPTModel

TINY = dict(
    vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=0,
    bos_token_id=1, eos_token_id=2,
)
ROTARY = dict(position_embedding_type="rotary", rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
LLAMA = {**LLAMA_OPTIONS, **ROTARY, "num_key_value_heads": 2}
WINDOW = 4
CONFIGS = {  # every decoder-only shape we support (configuration_scratch_gpt / configuration_common options)
    "gpt2": {},  # learned positions, pre-LN LayerNorm, gelu_new, biases
    "llama": LLAMA,  # rotary, RMSNorm, SwiGLU, grouped-query attention (2 key/value heads for 4)
    "qwen2": {**LLAMA, "attention_bias": True, "attention_output_bias": False},  # q/k/v biases, none on W_o
    "multi-query": {**LLAMA, "num_key_value_heads": 1},
    "paper": dict(position_embedding_type="sinusoidal", norm_placement="post", activation="relu"),
    "sliding": {**LLAMA, "sliding_window": WINDOW},  # Mistral: every layer sees the last W positions
    "sliding+full": {**ROTARY, "sliding_window": WINDOW, "layer_types": ["sliding_attention", "full_attention"]},
}
SLIDING = {name for name, options in CONFIGS.items() if options.get("sliding_window")}
# 2 … 37 tokens: one prompt longer than the batch's token budget below (its prefill is split over batches), two longer
# than the window; each decodes MAX_NEW tokens or stops at the EOS id (2), in both ways of decoding
PROMPTS = [[5, 6, 7], [8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18], [20, 21], list(range(3, 40))]
MAX_NEW = 8
IMPLEMENTATIONS = ["sdpa", "eager"]  # continuous batching runs them as sdpa (paged|sdpa) and paged|eager

needs_exact_sliding_window = pytest.mark.skipif(
    not compat.paged_sliding_window_is_exact(),
    reason="the installed transformers' paged cache reads the wrong sliding-window slots "
    "(compat.paged_sliding_window_is_exact); such models are refused there (test_sliding_window_refused_...)",
)


def cb_config(**overrides) -> ContinuousBatchingConfig:
    """A small paged cache (16 pages of 8 tokens) and a 32-token batch budget: fast on a CPU, and the 37-token prompt
    is prefilled in chunks. (The page size field is `block_size` in older releases, `page_size` in newer ones.)"""
    names = {field.name for field in dataclasses.fields(ContinuousBatchingConfig)}
    page = "page_size" if "page_size" in names else "block_size"
    return ContinuousBatchingConfig(**{"num_blocks": 16, "max_batch_tokens": 32, page: 8, **overrides})


def greedy(**overrides) -> GenerationConfig:
    return GenerationConfig(**{"max_new_tokens": MAX_NEW, "do_sample": False, "eos_token_id": 2, "pad_token_id": 0,
                               **overrides})


def gpt(options: dict, implementation: str = "sdpa") -> ScratchGPTForCausalLM:
    """A tiny GPT with weights spread wider than the init, so it does not repeat one token and a wrong cache, mask
    or position shows up as other tokens."""
    model = ScratchGPTForCausalLM(scratchformers.ScratchGPTConfig(**{**TINY, **options}))
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0, 0.3)
    model.set_attn_implementation(implementation)
    return model.eval()


def batch_tokens(model, prompts=PROMPTS, **kwargs) -> list[list[int]]:
    """Each prompt's new tokens from `generate_batch`, in prompt order; every request must have finished cleanly."""
    out = model.generate_batch(prompts, generation_config=greedy(), continuous_batching_config=cb_config(),
                               progress_bar=False, **kwargs)
    assert len(out) == len(prompts)
    for result in out.values():
        assert result.error is None, result.error
    return [result.generated_tokens for result in out.values()]


def one_by_one(model, prompts=PROMPTS) -> list[list[int]]:
    """Each prompt's new tokens from `generate()` on that prompt alone (our GrowingCache, no padding)."""
    tokens = []
    for prompt in prompts:
        out = model.generate(torch.tensor([prompt]), generation_config=greedy())
        tokens.append(out[0, len(prompt):].tolist())
    return tokens


@pytest.fixture
def attention_calls(monkeypatch):
    """Record every attention function our attention modules call during the test: (implementation, function,
    keyword names, query length T, key length S)."""
    calls = []
    original = attention_module.attention_function

    def recording_attention_function(implementation, output_attentions=False):
        function = original(implementation, output_attentions)

        def call(module, query, key, value, mask, **kwargs):
            calls.append((implementation, function, set(kwargs), query.shape[2], key.shape[2]))
            return function(module, query, key, value, mask, **kwargs)

        return call

    monkeypatch.setattr(attention_module, "attention_function", recording_attention_function)
    return calls


# ------------------------------------------------------------------------------------------------ the same tokens


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("name", [name for name in CONFIGS if name not in SLIDING])
def test_continuous_batching_decodes_what_generate_decodes(name, implementation):
    model = gpt(CONFIGS[name], implementation)
    assert batch_tokens(model) == one_by_one(model)
    assert model.config._attn_implementation == implementation  # put back after the batch


@needs_exact_sliding_window
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("name", sorted(SLIDING))
def test_continuous_batching_with_a_sliding_window_decodes_what_generate_decodes(name, implementation):
    model = gpt(CONFIGS[name], implementation)
    assert max(len(prompt) for prompt in PROMPTS) + MAX_NEW > 2 * WINDOW  # the window really slides
    assert batch_tokens(model) == one_by_one(model)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_paged_cache_is_read_and_written_through_transformers_attention_functions(
    implementation, attention_calls, monkeypatch
):
    """Every attention call of the batch goes to transformers' paged function for the backend (never our written-out
    eager) with the batcher's read/write indices; our own GrowingCache is never made: the paged cache is the only one.
    Where the model writes the paged cache (`compat.PAGED_CACHE_WRITTEN_BY_MODEL`) the function gets more keys than
    queries once requests decode (the cached ones, read back from the pages); where the function writes and reads it,
    it gets the cache itself."""

    def no_second_cache(*args, **kwargs):
        raise AssertionError("a GrowingCache was made during continuous batching")

    monkeypatch.setattr(GrowingCache, "__init__", no_second_cache)
    model = gpt(CONFIGS["llama"], implementation)
    batch_tokens(model)
    assert attention_calls
    for used, function, kwargs, _, _ in attention_calls:
        assert used == "paged|eager" if implementation == "eager" else used in ("sdpa", "paged|sdpa")
        assert function is ALL_ATTENTION_FUNCTIONS.get_interface(used, None)
        assert function is not attention_module.scaled_dot_product_attention
        assert {"read_index", "write_index", "cu_seq_lens_q", "cu_seq_lens_k"} <= kwargs
    if compat.PAGED_CACHE_WRITTEN_BY_MODEL:
        assert any(key_length > query_length for *_, query_length, key_length in attention_calls)
    else:
        assert all("cache" in kwargs for _, _, kwargs, _, _ in attention_calls)


def test_generate_with_the_paged_cache_implementation_is_continuous_batching():
    """`generate(cache_implementation="paged")` hands the prompts to `generate_batch` (transformers returns the
    sequences as one (1, B, P + N) tensor); equal-length prompts so that no row ends early."""
    model = gpt(CONFIGS["llama"])
    model.generation_config.eos_token_id = None  # rows of equal length (transformers stacks them)
    x = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    out = model.generate(x, cache_implementation="paged", continuous_batching_config=cb_config(),
                         max_new_tokens=6, do_sample=False)
    expected = model.generate(x, max_new_tokens=6, do_sample=False)
    assert torch.equal(out.reshape(expected.shape), expected)


def test_the_manager_transformers_serve_uses_decodes_what_generate_decodes():
    """`transformers serve --continuous-batching` keeps a manager running and adds requests as they come."""
    model = gpt(CONFIGS["gpt2"])
    with model.continuous_batching_context_manager(generation_config=greedy(),
                                                   continuous_batching_config=cb_config()) as manager:
        ids = [manager.add_request(prompt, max_new_tokens=MAX_NEW) for prompt in PROMPTS[:2]]
        results = {}
        while len(results) < len(ids):
            result = manager.get_result(timeout=10)
            assert result is not None, "no result within 10 s"
            if result.is_finished():
                results[result.request_id] = result.generated_tokens
    assert [results[i] for i in ids] == one_by_one(model, PROMPTS[:2])


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_transformers_own_twin_batches_to_the_same_tokens(name, implementation):
    """The same weights in transformers' own GPT2LMHeadModel / LlamaForCausalLM, continuously batched too."""
    model = gpt(CONFIGS[name], implementation)
    twin = to_hf(model).eval()
    assert type(twin).__name__ == {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM"}[name]
    assert batch_tokens(model) == batch_tokens(twin)


# -------------------------------------------------------------------------------------------------- the forward


def test_logits_to_keep_lists_the_positions_continuous_batching_needs():
    """Continuous batching passes each request's last position in the packed row as `logits_to_keep`."""
    model = gpt(CONFIGS["gpt2"])
    x = torch.randint(3, 64, (1, 9))
    with torch.no_grad():
        full = model(x).logits
        kept = model(x, logits_to_keep=torch.tensor([2, 5, 8])).logits
        last = model(x, logits_to_keep=1).logits
    assert torch.allclose(kept, full[:, [2, 5, 8]], atol=1e-6)
    assert torch.allclose(last, full[:, -1:], atol=1e-6)
    assert model._supports_logits_to_keep()


def test_paged_eager_outside_continuous_batching_is_still_causal():
    """A model left on `paged|eager` (set by hand) and called without a paged cache gets our causal mask: transformers'
    paged function applies none itself (its own Llama sees the future there)."""
    model = gpt(CONFIGS["llama"], "eager")
    x = torch.randint(3, 64, (2, 7))
    with torch.no_grad():
        expected, tokens = model(x).logits, model.generate(x, max_new_tokens=4, do_sample=False)
        model.config._attn_implementation = "paged|eager"
        assert torch.allclose(model(x).logits, expected, atol=1e-5)
        assert torch.equal(model.generate(x, max_new_tokens=4, do_sample=False), tokens)


def test_paged_arguments_without_a_paged_cache_are_still_misspellings():
    model = gpt(CONFIGS["gpt2"])
    with pytest.raises(TypeError, match="read_index"):
        model(torch.tensor([[5, 6]]), read_index=[torch.tensor([0])])


# ------------------------------------------------------------------------------------------------------ refusals


def refused_models() -> dict[str, nn.Module]:
    tiny = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    rnn = scratchformers.ScratchRNNConfig(vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return {
        "transformer": scratchformers.ScratchTransformerForConditionalGeneration(
            scratchformers.ScratchTransformerConfig(**tiny)),
        "rnn": scratchformers.ScratchRNNForConditionalGeneration(rnn),
        "bert": scratchformers.ScratchBertForMaskedLM(scratchformers.ScratchBertConfig(**tiny)),
        "gpt body": scratchformers.ScratchGPTModel(scratchformers.ScratchGPTConfig(**tiny)),
        "gpt classifier": scratchformers.ScratchGPTForSequenceClassification(scratchformers.ScratchGPTConfig(**tiny)),
    }


@pytest.mark.parametrize("entry", ["generate_batch", "init_continuous_batching", "continuous_batching_context_manager",
                                   "generate"])
@pytest.mark.parametrize("family", ["transformer", "rnn", "bert", "gpt body", "gpt classifier"])
def test_what_cannot_be_continuously_batched_is_refused_before_any_work(family, entry, monkeypatch):
    model = refused_models()[family]
    if entry == "generate" and not model.can_generate():
        pytest.skip("no generate() on this class")
    before = model.config._attn_implementation
    monkeypatch.setattr(compat.PagedAttentionCache, "__init__",
                        lambda *a, **k: pytest.fail("a paged cache was made"), raising=True)
    calls = {
        "generate_batch": lambda: model.generate_batch([[5, 6, 7]], generation_config=greedy()),
        "init_continuous_batching": lambda: model.init_continuous_batching(generation_config=greedy()),
        "continuous_batching_context_manager": lambda: model.continuous_batching_context_manager(greedy()),
        "generate": lambda: model.generate(torch.tensor([[5, 6, 7]]), cache_implementation="paged",
                                           max_new_tokens=2),
    }
    with pytest.raises(NotImplementedError, match=rf"{type(model).__name__} \(\w+\) cannot run continuous batching"):
        calls[entry]()
    assert model.config._attn_implementation == before  # not switched to a paged implementation
    assert not hasattr(model, "_cached_continuous_batching_manager")


def test_sliding_window_refused_where_the_paged_cache_gets_the_window_wrong(monkeypatch):
    model = gpt(CONFIGS["sliding"])
    monkeypatch.setattr(pretrained, "paged_sliding_window_is_exact", lambda: False)
    with pytest.raises(NotImplementedError, match="sliding_window`=4"):
        model.generate_batch(PROMPTS, generation_config=greedy(), continuous_batching_config=cb_config())
    full = gpt(CONFIGS["llama"])  # no window: not affected
    assert full._continuous_batching_refusal() is None


@pytest.mark.skipif(compat.paged_sliding_window_is_exact(), reason="this transformers' paged cache keeps the window")
def test_sliding_window_refused_on_this_transformers():
    """Where the probe finds the installed ring buffer wrong, the real check (nothing patched) refuses."""
    with pytest.raises(NotImplementedError, match="last W − 1 keys"):
        gpt(CONFIGS["sliding+full"]).generate_batch(PROMPTS, generation_config=greedy(),
                                                    continuous_batching_config=cb_config())


def test_prompt_past_the_learned_position_table_is_refused_before_any_work():
    model = gpt(CONFIGS["gpt2"])  # max_position_embeddings = 64
    with pytest.raises(ValueError, match="max_position_embeddings`=64"):
        model.generate_batch([list(range(3, 63))], generation_config=greedy(max_new_tokens=8),
                             continuous_batching_config=cb_config())


class RingBuffer:
    """A stand-in for transformers' sliding-window slot bookkeeping: `fixed` as in releases that keep each request's
    last W − 1 positions, else as in those that read one slot too early and store a long prefill's first W tokens."""

    fixed = True

    def get_read_indices(self, request_id, past_length, query_length):
        W = self.sliding_window
        if self.fixed:
            length = min(past_length, W - 1)
            start = (past_length - length) % W
        else:
            start, length = (0 if past_length < W else past_length % W), min(past_length, W - 1)
        return [(start + i) % W for i in range(length)] + [self.sentinel_index] * query_length

    def get_write_indices(self, request_id, past_length, query_length):
        W = self.sliding_window
        stored = min(query_length, W)
        start = (past_length + (query_length - stored if self.fixed else 0)) % W
        slots = [(start + i) % W for i in range(stored)]
        trash = [self.write_trash_index] * (query_length - stored)
        return trash + slots if self.fixed else slots + trash


class WrongRingBuffer(RingBuffer):
    fixed = False


@pytest.mark.parametrize("allocator, exact", [(RingBuffer, True), (WrongRingBuffer, False), (object, False)])
def test_sliding_window_probe_tells_a_right_ring_buffer_from_a_wrong_one(allocator, exact, monkeypatch):
    monkeypatch.setattr(compat, "_sliding_window_allocator_class", lambda: allocator)
    compat.paged_sliding_window_is_exact.cache_clear()
    try:
        assert compat.paged_sliding_window_is_exact() is exact
    finally:
        compat.paged_sliding_window_is_exact.cache_clear()


def test_remote_code_checkpoint_runs_continuous_batching(tmp_path, run_without_package):
    """Where scratchformers is not installed: the checkpoint's own modeling files batch continuously."""
    model = gpt(CONFIGS["llama"])
    model.save_pretrained(tmp_path / "ckpt")
    expected = one_by_one(model, PROMPTS[:2])
    out = run_without_package(f"""
        import dataclasses, json, torch
        from transformers import AutoModelForCausalLM, GenerationConfig
        from transformers.generation.configuration_utils import ContinuousBatchingConfig as C
        page = "page_size" if "page_size" in {{f.name for f in dataclasses.fields(C)}} else "block_size"
        model = AutoModelForCausalLM.from_pretrained({str(tmp_path / "ckpt")!r}, trust_remote_code=True).eval()
        assert "scratchformers" not in type(model).__module__
        out = model.generate_batch({PROMPTS[:2]!r}, continuous_batching_config=C(num_blocks=16, max_batch_tokens=32,
            **{{page: 8}}), generation_config=GenerationConfig(max_new_tokens={MAX_NEW}, do_sample=False,
            eos_token_id=2, pad_token_id=0), progress_bar=False)
        print(json.dumps([r.generated_tokens for r in out.values()]))
    """)
    assert json.loads(out.strip().splitlines()[-1]) == expected


# ------------------------------------------------------------------ the inference servers' "transformers backend"
# vLLM (docs/models/supported_models.md, "Writing custom models"; model_executor/models/transformers/base.py) and
# SGLang (docs/supported_models/transformers_fallback.md) load `auto_map["AutoModel"]`, check
# `_supports_attention_backend`, set `config._attn_implementation` to their own registered attention function and call
# the base model as `model(input_ids=(1, T), position_ids=(1, T), use_cache=False, return_dict=False,
# attention_instances=..., **kwargs)`: every keyword must reach that function, which does its own caching and masking.


def test_checkpoint_names_the_base_model_for_auto_model(tmp_path):
    gpt(CONFIGS["gpt2"]).save_pretrained(tmp_path)
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModel"].endswith(".ScratchGPTModel")
    assert type(AutoModel.from_config(scratchformers.ScratchGPTConfig(**TINY))) is ScratchGPTModel


def test_base_model_declares_the_attention_backend():
    assert ScratchGPTModel._supports_attention_backend is True
    assert ScratchGPTModel.is_backend_compatible()


@pytest.fixture
def server_attention():
    """An inference server's attention registered under its own name, as vLLM registers "vllm": it records what it
    gets and computes plain causal attention with transformers' sdpa function (one sequence, so that is right)."""
    name, calls = "test_server", []

    def server_attention_forward(module, query, key, value, attention_mask, **kwargs):
        calls.append(dict(layer=module.layer_idx, mask=attention_mask, kwargs=kwargs))
        kwargs = {k: v for k, v in kwargs.items() if k in ("scaling", "dropout")}
        return sdpa_attention_forward(module, query, key, value, None, is_causal=True, **kwargs)

    ALL_ATTENTION_FUNCTIONS[name] = server_attention_forward
    try:
        yield name, calls
    finally:
        del ALL_ATTENTION_FUNCTIONS[name]


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_server_attention_gets_every_keyword_argument(name, server_attention):
    server, calls = server_attention
    body = AutoModel.from_config(scratchformers.ScratchGPTConfig(**{**TINY, **CONFIGS[name]})).eval()
    x = torch.randint(3, 64, (1, 7))
    positions = torch.arange(7)[None]
    with torch.no_grad():
        expected = body(input_ids=x, position_ids=positions).last_hidden_state
        body.config._attn_implementation = server  # what vLLM's `_patch_config` does before building the model
        instances = {i: object() for i in range(TINY["num_hidden_layers"])}
        out = body(input_ids=x, position_ids=positions, use_cache=False, return_dict=False,
                   attention_instances=instances, forward_batch="opaque")
    assert isinstance(out, tuple) and torch.allclose(out[0], expected, atol=1e-5)
    assert [call["layer"] for call in calls] == list(range(TINY["num_hidden_layers"]))
    for call in calls:
        assert call["mask"] is None  # it registered no mask function: it masks itself
        assert call["kwargs"]["attention_instances"] is instances and call["kwargs"]["forward_batch"] == "opaque"
        assert call["kwargs"]["scaling"] == (TINY["hidden_size"] // TINY["num_attention_heads"]) ** -0.5


def test_every_attention_module_of_the_decoder_is_causal_and_bert_is_not():
    """vLLM takes a model with any module whose `is_causal` is False for encoder-only (EncoderOnlyAttention)."""
    decoder = ScratchGPTModel(scratchformers.ScratchGPTConfig(**TINY))
    flags = [m.is_causal for m in decoder.modules() if hasattr(m, "is_causal")]
    assert flags and all(flags)
    bert = scratchformers.ScratchBertModel(scratchformers.ScratchBertConfig(**TINY))
    assert not any(m.is_causal for m in bert.modules() if hasattr(m, "is_causal"))


@pytest.mark.parametrize("scale_embedding", [False, True])
def test_server_embedding_keeps_the_embedding_scale(scale_embedding):
    """vLLM swaps `get_input_embeddings()` for its own embedding, scaled by the old one's `embed_scale` if any."""
    body = ScratchGPTModel(scratchformers.ScratchGPTConfig(**TINY, scale_embedding=scale_embedding)).eval()
    x = torch.randint(3, 64, (1, 7))
    with torch.no_grad():
        expected = body(input_ids=x).last_hidden_state
        old = body.get_input_embeddings()
        scale = getattr(old, "embed_scale", None)
        assert (scale is not None) == scale_embedding

        class ServerEmbedding(nn.Embedding):  # what vLLM's (Scaled)VocabParallelEmbedding computes
            def forward(self, ids):
                return super().forward(ids) * (scale if scale is not None else 1.0)

        replacement = ServerEmbedding(*old.weight.shape)
        replacement.weight.copy_(old.weight)
        body.set_input_embeddings(replacement)
        assert torch.allclose(body(input_ids=x).last_hidden_state, expected, atol=1e-6)


def test_decoder_class_builds_with_keyword_arguments_only(monkeypatch):
    """vLLM compiles `type(model.get_decoder())`, replacing its __init__ by one that takes keywords only, and marks
    the `input_ids`, `inputs_embeds` and `position_ids` arguments of its forward as dynamic."""
    decoder_class = type(ScratchGPTModel(scratchformers.ScratchGPTConfig(**TINY)).get_decoder())
    assert decoder_class is TransformerStack
    original = decoder_class.__init__

    def keywords_only(self, *, vllm_config=None, prefix="", **kwargs):
        original(self, **kwargs)

    monkeypatch.setattr(decoder_class, "__init__", keywords_only)
    body = ScratchGPTModel(scratchformers.ScratchGPTConfig(**TINY))
    assert {"input_ids", "inputs_embeds", "position_ids"} <= set(inspect.signature(body.decoder.forward).parameters)
