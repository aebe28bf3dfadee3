"""Faster decoding (scratchformers.fast_decoding): a static cache, a compiled decoding step and column-major weights
give the dynamic cache's greedy tokens, in generate() and in `scratchformers chat --static-cache / --compile /
--column-major-weights`; int8 weight-only
weights (torchao, skipped without it) stay close to float32."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from chat_helpers import LLAMA_STYLE, reference_answer, save_chat_checkpoint
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from scratchformers import ScratchGPTConfig, ScratchGPTForCausalLM, fast_decoding
from scratchformers.fast_decoding import column_major_weights, generate_settings, quantization_config
from scratchformers_cli import main

needs_torchao = pytest.mark.skipif(importlib.util.find_spec("torchao") is None, reason="torchao is not installed")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """The tiny chat model (chat_helpers), saved."""
    return save_chat_checkpoint(tmp_path_factory.mktemp("chat"))


def llama_style(vocab_size: int = 96, layers: int = 2) -> ScratchGPTForCausalLM:
    """A tiny Llama-style GPT (rotary, RMSNorm, SwiGLU, grouped-query attention) with weights spread wider than the
    init, so greedy decoding does not repeat one token and a wrong cache or mask shows up as other tokens."""
    torch.manual_seed(0)
    model = ScratchGPTForCausalLM(ScratchGPTConfig(**{**LLAMA_STYLE, "num_hidden_layers": layers},
                                                   vocab_size=vocab_size))
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0.0, 0.3)
    return model.eval()


def test_generate_settings_name_the_static_cache_and_a_cpu_compile_config():
    assert generate_settings() == {}
    assert generate_settings(static_cache=True) == {"cache_implementation": "static"}
    settings = generate_settings(compile=True)  # compiling implies the static cache
    assert settings["cache_implementation"] == "static"
    config = settings["compile_config"]
    assert config.fullgraph and config.mode is None and config._compile_all_devices  # CPU: no CUDA graphs


@pytest.mark.parametrize("setup", ["static", "static+compile"])
def test_static_cache_and_compiled_step_give_the_dynamic_cache_tokens(setup):
    model = llama_style()
    x = torch.randint(3, 96, (2, 9))
    mask = torch.ones_like(x)
    mask[1, :3] = 0  # left padding on one row
    kwargs = dict(attention_mask=mask, max_new_tokens=12, min_new_tokens=12, do_sample=False, pad_token_id=0)
    # backend "eager": dynamo traces the whole step (fullgraph) without inductor's code generation, to stay fast
    fast = generate_settings(static_cache=True, compile=setup.endswith("compile"), backend="eager")
    dynamic = model.generate(x, **kwargs)
    assert torch.equal(model.generate(x, **fast, **kwargs), dynamic)
    assert len(set(dynamic[0, 9:].tolist())) > 1  # not one token repeated: the comparison can fail


@pytest.mark.parametrize("flag", ["--static-cache", "--compile", "--column-major-weights"])
def test_chat_with_a_static_cache_or_compiled_step_answers_as_the_dynamic_cache(checkpoint, capsys, monkeypatch,  # noqa: F811
                                                                                flag):
    real = fast_decoding.compile_config
    monkeypatch.setattr(fast_decoding, "compile_config", lambda device_type="cpu", backend="inductor":
                        real(device_type, "eager"))  # dynamo's full-graph trace without inductor: seconds, not minutes
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    expected = reference_answer(model, tokenizer, [{"role": "user", "content": "hello there"}], 10)
    assert main(["chat", str(checkpoint), "--prompt", "hello there", "--greedy", "--max-new-tokens", "10",
                 "--no-stream", flag]) == 0
    assert capsys.readouterr().out.strip() == expected.strip()


@pytest.mark.parametrize("side", ["ours", "hf"])
def test_column_major_weights_keep_every_value_tie_and_saved_file(side, tmp_path):
    """column_major_weights(model): every Linear weight gets the transposed memory layout (strides (1, out)) with the
    same values; ties stay one Parameter; logits and greedy tokens equal the row-major model's (the same products
    summed by another kernel: 1e-5, float32 rounding over sums of a few hundred terms); enable=False restores
    row-major storage, and save_pretrained then writes the same tensors. On our GPT and on HF's own Llama class."""
    if side == "ours":
        model = llama_style()
    else:
        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=4, num_key_value_heads=2,
                                             tie_word_embeddings=True)).eval()
    x = torch.randint(0, 96, (2, 9))
    with torch.no_grad():
        before, state = model(x).logits, {k: v.clone() for k, v in model.state_dict().items()}
    tokens = model.generate(x, do_sample=False, max_new_tokens=8, pad_token_id=0)
    assert column_major_weights(model) is model
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.stride() == (1, m.weight.shape[0]) for m in linears)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, before, atol=1e-5, rtol=1e-5)
    assert torch.equal(model.generate(x, do_sample=False, max_new_tokens=8, pad_token_id=0), tokens)
    column_major_weights(model, enable=False)
    assert all(m.weight.is_contiguous() for m in linears)
    model.save_pretrained(tmp_path)
    reloaded = type(model).from_pretrained(tmp_path)
    assert all(torch.equal(v, state[k]) for k, v in reloaded.state_dict().items())
    with pytest.raises(TypeError, match="torch.nn.Module"):
        column_major_weights(state)


def test_an_unknown_quantization_is_refused_naming_the_allowed_ones(checkpoint, capsys):  # noqa: F811
    with pytest.raises(ValueError, match="int8-weight-only"):
        quantization_config("int4")
    with pytest.raises(SystemExit) as exit_info:
        main(["chat", str(checkpoint), "--prompt", "hi", "--quantize", "int4"])
    assert exit_info.value.code == 2
    assert "int8-weight-only" in capsys.readouterr().err


@needs_torchao
def test_int8_weight_only_logits_stay_close_to_float32(tmp_path):
    """Int8 weight-only rounds each weight to the nearest of 255 levels of its row's scale max|w_row| / 127, an error
    of at most 0.4 % of the row's largest weight. Through this 2-layer model with deliberately large random weights
    (std 0.3, which amplify differences) the logits move by 3.1–3.4 % of their norm (measured, three inputs) and the
    top-1 token agrees at 96–100 % of positions; the bounds, 8 % and 85 %, leave room for other CPUs' kernels while
    still failing for an unquantized-scale or transposed-weight bug (which move the logits by their whole norm).
    (The real SmolLM2-135M: docs/static-cache.md.)"""
    model = llama_style(vocab_size=300)
    model.save_pretrained(tmp_path)
    quantized = AutoModelForCausalLM.from_pretrained(tmp_path, quantization_config=quantization_config(
        "int8-weight-only")).eval()
    from torchao.quantization import Int8Tensor

    layer = quantized.model.decoder.layers[0]
    assert isinstance(layer.self_attn.qkv_proj.weight, Int8Tensor) and isinstance(layer.ffn.fc_in.weight, Int8Tensor)
    assert quantized.lm_head.weight is quantized.model.decoder.embeddings.embed_tokens.weight  # the tied head: float
    x = torch.randint(3, 300, (2, 24))
    with torch.no_grad():
        reference, logits = model(x).logits, quantized(x).logits
    assert ((logits - reference).norm() / reference.norm()).item() < 0.08
    assert (logits.argmax(-1) == reference.argmax(-1)).float().mean().item() >= 0.85


@pytest.mark.parametrize("compile_flag", [False, True])
def test_serve_compile_puts_a_cpu_compile_config_on_the_served_model(checkpoint, compile_flag):  # noqa: F811
    """transformers' `serve --compile` asks for a static cache; it compiles the step by itself on CUDA only. Our
    loader (what the server's model process loads with, after a pickle round trip) adds the CPU compile config."""
    pytest.importorskip("fastapi")
    import pickle

    from scratchformers import serve as serving

    with serving.our_loader(compile_off_cuda=compile_flag) as loader_class:
        loader = loader_class()
        if serving.loader_base()[0] == "ModelLoader":  # it crosses to the model's process by pickle (not in 5.13's
            loader = pickle.loads(pickle.dumps(loader))  # ModelManager, which loads in the server's and holds locks)
    model_id = str(checkpoint) if serving.loader_base()[0] == "ModelLoader" else f"{checkpoint}@main"  # (5.13's form)
    model = loader._load_model(model_id)
    config = model.generation_config.compile_config
    if compile_flag:
        assert config is not None and config.fullgraph and config._compile_all_devices
    else:
        assert config is None or not getattr(config, "_compile_all_devices", False)
