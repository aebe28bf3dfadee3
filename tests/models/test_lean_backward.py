"""The hand-written backward passes of `scratchformers.lean_backward` (RMSNorm, SwiGLU + W_down): the derivative
checked against finite differences, a whole modern decoder's training step against autograd on the written-out
modules (same loss, same gradients), less memory saved for backward, and the cases that keep the written-out path.

Tolerances: the forward runs the same operations as the written-out module, so the loss is compared exactly. The
gradients are the same formulas evaluated in another order (x̂ recomputed, SiLU's derivative in closed form), so they
agree to float32 rounding: assert_close's float32 defaults (rtol 1.3e-6, atol 1e-5) on values of order 1e-2–1.
"""

from __future__ import annotations

import pytest
import torch
from families import LLAMA_OPTIONS, TINY
from torch import nn

from scratchformers import ScratchGPTConfig, ScratchGPTForCausalLM, lean_backward, losses
from scratchformers.layers import RMSNorm

MODERN = {**TINY, **LLAMA_OPTIONS, "num_key_value_heads": 2, "intermediate_size": 48}  # a tiny Llama


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rms_norm_derivative_is_autograds(dtype):
    """∂L/∂x = r(ĝ − x̂·mean(ĝx̂)) and ∂L/∂g = Σ ∂L/∂y ⊙ x̂ against autograd through the written-out formula (which
    runs in float32 whatever x's dtype, as Llama's, so finite differences in float64 would measure float32 rounding).
    bfloat16: within one bfloat16 rounding step of the values (rtol 1.6e-2)."""
    torch.manual_seed(0)
    x = (torch.randn(3, 5, 8) * 3).to(dtype).requires_grad_()
    weight = torch.randn(8).to(dtype).requires_grad_()
    upstream = torch.randn(3, 5, 8).to(dtype)
    lean = torch.autograd.grad(lean_backward.rms_norm(x, weight, 1e-6), (x, weight), upstream)
    normed, _ = lean_backward.rms_normalize(x, 1e-6)
    plain = torch.autograd.grad(weight * normed.to(dtype), (x, weight), upstream)
    for a, b in zip(lean, plain):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
def test_swiglu_down_derivative_matches_finite_differences(bias):
    """gradcheck in float64 of (SiLU(gate) ⊙ up) W_downᵀ + b for [gate up], W_down and b."""
    torch.manual_seed(0)
    down = nn.Linear(6, 4, bias=bias).double()
    gate_up = torch.randn(2, 3, 12, dtype=torch.float64, requires_grad=True)
    inputs = (gate_up, down.weight, down.bias) if bias else (gate_up, down.weight)
    assert torch.autograd.gradcheck(
        lambda g, w, b=None: lean_backward.SwiGLUDownFunction.apply(g, w, b), inputs)


def model_and_batch(**overrides):
    torch.manual_seed(0)
    model = ScratchGPTForCausalLM(ScratchGPTConfig(**{**MODERN, **overrides})).train()
    with torch.no_grad():
        for p in model.parameters():  # move the norm gains off 1 too, so a wrong ∂/∂g shows
            p.add_(torch.randn_like(p) * 0.05)
    ids = torch.randint(3, 64, (2, 11))
    return model, {"input_ids": ids, "labels": ids}


def loss_and_grads(model, batch, lean: bool, monkeypatch) -> tuple[torch.Tensor, dict]:
    calls = []
    real = losses.written_backward_applies

    def counted(*args):
        calls.append(real(*args) and lean)
        return calls[-1]

    with monkeypatch.context() as patch:
        patch.setattr("scratchformers.layers.written_backward_applies", counted)
        model.zero_grad(set_to_none=True)
        loss = model(**batch).loss
        loss.backward()
    assert any(calls) == lean
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_a_training_step_has_the_written_out_loss_and_gradients(monkeypatch):
    """A modern decoder (RMSNorm, SwiGLU, RoPE, GQA): the lean backward gives the loss of the written-out modules
    exactly and every parameter gradient to float32 rounding."""
    model, batch = model_and_batch()
    lean = loss_and_grads(model, batch, True, monkeypatch)
    plain = loss_and_grads(model, batch, False, monkeypatch)
    assert torch.equal(lean[0], plain[0])
    assert lean[1].keys() == plain[1].keys()
    for name in plain[1]:
        torch.testing.assert_close(lean[1][name], plain[1][name], msg=name)


def saved_bytes(model, batch) -> int:
    """Bytes of the distinct non-parameter storages autograd saves for backward in one forward."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            storages[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(**batch)
    return sum(storages.values())


def test_less_is_saved_for_backward(monkeypatch):
    """Per token and layer the written-out blocks save SiLU(gate) and the product (2·d_ff floats) and each norm's x̂
    (2·C floats) that the lean backward recomputes: the saved bytes fall by at least that."""
    model, batch = model_and_batch()
    lean = saved_bytes(model, batch)
    monkeypatch.setattr("scratchformers.layers.written_backward_applies", lambda *args: False)
    plain = saved_bytes(model, batch)
    tokens, layers = batch["input_ids"].numel(), MODERN["num_hidden_layers"]
    C, F = MODERN["hidden_size"], MODERN["intermediate_size"]
    assert plain - lean >= tokens * layers * (2 * F + 2 * C) * 4, (plain, lean)


def test_the_written_out_path_is_kept_where_the_lean_one_would_not_be_exact(monkeypatch):
    """No gradients (inference, export), autograd under autocast, and a W_down that is not a plain Linear (LoRA)
    run the written-out modules."""
    model, batch = model_and_batch()
    applied = []
    for function in (lean_backward.RMSNormFunction, lean_backward.SwiGLUDownFunction):
        real = function.apply
        monkeypatch.setattr(function, "apply", lambda *a, real=real, f=function: applied.append(f) or real(*a))
    with torch.no_grad():
        model(**batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(**batch).loss.backward()
    assert applied == []
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(model, LoraConfig(r=2, target_modules=["fc_out"]))
    lora(**batch).loss.backward()
    assert lean_backward.SwiGLUDownFunction not in applied and lean_backward.RMSNormFunction in applied


def test_rms_norm_module_forward_is_the_same_with_and_without_gradients():
    """RMSNorm's output is bit for bit the same on both paths (float32 and bfloat16 inputs)."""
    norm = RMSNorm(16)
    with torch.no_grad():
        norm.weight.add_(torch.randn(16))
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(4, 16).to(dtype)
        with torch.no_grad():
            plain = norm(x)
        lean = norm(x.requires_grad_())
        assert torch.equal(lean.detach(), plain)
