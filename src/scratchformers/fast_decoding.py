"""Faster decoding: a static KV cache with a compiled decoding step, column-major weights, and int8 weight-only weights
(torchao).

A decoding step of a small model on a CPU reads every weight once per token, so its speed is bounded by memory
bandwidth (weights in bytes / bandwidth); what it spends beyond that is per-token overhead — hundreds of small tensor
operations dispatched from Python — and what it reads. The two settings here attack each:

- `generate_settings(static_cache=True, compile=True)`: transformers' static cache (`cache_implementation="static"`:
  fixed-size key/value buffers) and a `CompileConfig`, so `generate()` runs every step after the prefill as one
  `torch.compile`d graph (inductor fuses the elementwise work and removes the Python per layer). The first steps
  compile (tens of seconds on a small CPU); a longer conversation grows the cache and compiles once more.
- `column_major_weights(model)`: the same weights stored transposed in memory, which torch's CPU matrix-vector
  product reads about 1.3–2× faster (the batch-1 decoding step is such products over every weight).
- `quantization_config("int8-weight-only")`: transformers' `TorchAoConfig` with torchao's `Int8WeightOnlyConfig` —
  the Linear weights stored as int8 with one scale per output row, activations kept in float: a quarter of the
  float32 bytes to read (the tied output layer stays float, as transformers leaves tied weights). On a loaded
  2-core CPU it helped in one run and hurt in another (docs/static-cache.md); the greedy tokens stayed the same.

docs/static-cache.md has the measured effect on SmolLM2-135M.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from scratchformers_light.names import QUANTIZATION_METHODS

QUANT_INSTALL_HINT = 'pip install "scratchformers[quant]"'


def compile_config(device_type: str = "cpu", backend: str = "inductor") -> Any:
    """transformers' `CompileConfig` for generate()'s compiled decoding step: `fullgraph=True` (our step is one graph,
    tests/models/test_compile_fullgraph.py), inductor, CUDA graphs (`mode="reduce-overhead"`) on CUDA only. transformers
    compiles on CUDA by itself but on CPU only when `_compile_all_devices` is set, which this does."""
    from transformers import CompileConfig

    config = CompileConfig(fullgraph=True, backend=backend, mode="reduce-overhead" if device_type == "cuda" else None)
    config._compile_all_devices = True  # generation/utils.py `_valid_auto_compile_criteria`: otherwise CUDA only
    return config


def generate_settings(static_cache: bool = False, compile: bool = False, device_type: str = "cpu",
                      backend: str = "inductor") -> dict[str, Any]:
    """generate() keyword arguments for the decoding setup: {} (the default growing dynamic cache), a static cache
    (`cache_implementation="static"`), or a static cache with a compiled step (`compile` implies the static cache:
    a compiled step needs fixed shapes; `backend` is torch.compile's). Greedy tokens are the same in all three
    (tests/generation/test_fast_decoding.py)."""
    if not (static_cache or compile):
        return {}
    settings: dict[str, Any] = {"cache_implementation": "static"}
    if compile:
        settings["compile_config"] = compile_config(device_type, backend)
    return settings


def column_major_weights(model: torch.nn.Module, enable: bool = True) -> torch.nn.Module:
    """Store every `nn.Linear` weight of `model` column-major (in place; returns `model`): the same (out, in) tensor
    with the same values, its memory laid out as the contiguous (in, out) transpose (`W.t().contiguous().t()`), or
    back to row-major with `enable=False`. Tied weights stay tied (one Parameter, converted once); state_dict keys,
    shapes and values, hooks and peft are unchanged. Quantized weights (tensor subclasses) are left as they are.
    Convert back before `save_pretrained` (transformers' check for shared tensors views each one flat, which a
    transposed layout refuses) and before training.

    Why: a decoding step at batch 1 computes y = x Wᵀ with x (1, in) for every Linear, a matrix-vector product that
    must read all of W once per token; then speed is bytes ÷ memory bandwidth. On CPU, torch's matmul for a
    row-major W (what `nn.Linear` stores) reads it at 11–18 GB/s on a 2-core EPYC whose plain read rate is 38 GB/s,
    and at 18–23 GB/s when W is stored transposed (`x @ W_t` with W_t (in, out) contiguous: the kernel streams W_t's
    rows, scaled by x's elements, into y). Measured there on SmolLM2-135M (greedy, batch 1, 2 threads): 17.7 →
    22.8 tokens/s, bit-identical logits. Bigger batches and training gain nothing (matrix-matrix products pack
    either layout; AdamW on column-major weights with row-major gradients runs strided). Works on any model, HF's
    own classes included.

    Raises TypeError when `model` is not an `nn.Module`."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"column_major_weights takes a torch.nn.Module, got {type(model).__name__}")
    seen: set[int] = set()
    with torch.no_grad():
        for module in model.modules():
            weight = getattr(module, "weight", None) if isinstance(module, torch.nn.Linear) else None
            if weight is None or id(weight) in seen or type(weight.data) is not torch.Tensor or weight.dim() != 2:
                continue
            seen.add(id(weight))
            weight.data = weight.data.t().contiguous().t() if enable else weight.data.contiguous()
    return model


def torchao_available() -> bool:
    """Is torchao installed (the `[quant]` extra)?"""
    return importlib.util.find_spec("torchao") is not None


def quantization_config(method: str) -> Any:
    """transformers' quantization config for `method` (one of `QUANTIZATION_METHODS`), to pass as
    `AutoModelForCausalLM.from_pretrained(folder, quantization_config=...)`:

    - "int8-weight-only": `TorchAoConfig(Int8WeightOnlyConfig())` — w ≈ s_o · q_o,i with q int8 and one scale s_o =
      max_i |w_o,i| / 127 per output row (torchao's symmetric per-channel quantization). On a CPU torchao 0.18
      converts the int8 weight back to the activations' dtype at each call and runs the float matmul: fewer bytes
      read from memory, more work for the cores (docs/static-cache.md has when that pays). Tied weights (our output
      layer) stay float.

    Raises ValueError for another method (naming the allowed ones), ImportError when torchao is missing."""
    if method not in QUANTIZATION_METHODS:
        raise ValueError(f"quantization {method!r} is not supported; allowed values are {QUANTIZATION_METHODS}.")
    if not torchao_available():
        raise ImportError(f"quantization {method!r} needs torchao: {QUANT_INSTALL_HINT}")
    from torchao.quantization import Int8WeightOnlyConfig
    from transformers import TorchAoConfig

    return TorchAoConfig(Int8WeightOnlyConfig())
