"""Hand-derived backward passes for the modern decoder's elementwise blocks, which save less for backward than autograd.

Autograd keeps every intermediate an operation's derivative needs; for RMSNorm and the SwiGLU feed-forward most of
them are cheap to recompute from the block's input. Training memory of a small LLM is mostly these saved activations
(the output layer's logits aside, see `losses.chunked_cross_entropy`), so each block here is one
`torch.autograd.Function` whose forward is the same torch operations as the written-out module (the same numbers,
bit for bit) and whose backward is the derivative written out (formulas in each docstring), recomputing what it needs:

| block (per token and layer)  | autograd saves                                      | here                     |
|------------------------------|-----------------------------------------------------|--------------------------|
| RMSNorm, C features          | x, x·r (C floats more than the input)               | x and r (1 float)        |
| SwiGLU + W_down, d_ff = F    | [gate up] (2F), SiLU(gate) (F), the product (F)     | [gate up] (2F)           |

Liger-Kernel (github.com/linkedin/Liger-Kernel, `ops/rms_norm.py`, `ops/swiglu.py`) does the same in Triton, and its
SwiGLU also recomputes SiLU in backward. Used only where they are exact replacements: eager training (gradients
enabled, not under torch.compile, which decides what to save itself), and for the feed-forward only when W_down is a
plain `nn.Linear` with no hooks (a LoRA-wrapped or quantized layer runs its own forward). Inference never comes here,
so exported graphs (ONNX, ExecuTorch, GGUF) see the written-out modules. The layers ask
`losses.written_backward_applies` and `losses.is_plain_linear` (shared with the chunked loss's output layer).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def rms_normalize(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(x̂, r): r = 1/√(mean(x²) + ε) over the last dimension, x̂ = x·r, both float32. x (…, C) → (…, C), (…, 1)."""
    x32 = x.float()
    rstd = torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return x32 * rstd, rstd


class RMSNormFunction(torch.autograd.Function):
    """y = g ⊙ cast(x̂), x̂ = x·r, r = 1/√(mean(x²) + ε) (Zhang & Sennrich 2019), computed in float32 and cast to x's
    dtype before the gain g, as `layers.RMSNorm` (and Llama) do. Saves x and r.

    Backward, with x̂ recomputed from x and r and ĝ = (∂L/∂y ⊙ g) in float32:
        ∂L/∂g = Σ_rows ∂L/∂y ⊙ cast(x̂)
        ∂L/∂x = r · (ĝ − x̂ · mean(ĝ ⊙ x̂))        (∂r/∂xⱼ = −r³ xⱼ / C)
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        normed, rstd = rms_normalize(x, eps)
        ctx.save_for_backward(x, weight, rstd)
        return weight * normed.to(x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        x, weight, rstd = ctx.saved_tensors
        normed = x.float() * rstd  # x̂, (…, C)
        grad_weight = None
        if ctx.needs_input_grad[1]:
            grad_weight = (grad_output * normed.to(x.dtype)).reshape(-1, x.shape[-1]).sum(0).to(weight.dtype)
        grad_x = None
        if ctx.needs_input_grad[0]:
            g = (grad_output * weight).float()  # ĝ
            projection = (g * normed).mean(-1, keepdim=True)  # mean(ĝ ⊙ x̂), (…, 1)
            grad_x = torch.addcmul(g, normed, projection, value=-1).mul_(rstd).to(x.dtype)
        return grad_x, grad_weight, None


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """`RMSNormFunction`: x (…, C), weight (C,) → (…, C) in x's dtype (weight's, where it promotes)."""
    return RMSNormFunction.apply(x, weight, eps)


class SwiGLUDownFunction(torch.autograd.Function):
    """out = (SiLU(gate) ⊙ up) W_downᵀ + b, [gate up] = the fused W_gate/W_up projection (Shazeer 2020), SiLU(z) =
    z·σ(z). Saves [gate up] and W_down; backward recomputes a = SiLU(gate) ⊙ up:
        ∂L/∂W_down = (∂L/∂out)ᵀ a,   ∂L/∂b = Σ_rows ∂L/∂out,   ∂L/∂a = (∂L/∂out) W_down
        ∂L/∂up = ∂L/∂a ⊙ SiLU(gate),   ∂L/∂gate = ∂L/∂a ⊙ up ⊙ σ(gate)(1 + gate(1 − σ(gate)))
    """

    @staticmethod
    def forward(ctx, gate_up: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        gate, up = gate_up.chunk(2, dim=-1)  # (…, F) each
        ctx.save_for_backward(gate_up, weight)
        ctx.has_bias = bias is not None
        return F.linear(F.silu(gate) * up, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        gate_up, weight = ctx.saved_tensors
        gate, up = gate_up.chunk(2, dim=-1)
        silu = F.silu(gate)  # recomputed
        grad_out = grad_output.reshape(-1, grad_output.shape[-1])  # (N, C)
        grad_weight = grad_bias = grad_gate_up = None
        if ctx.needs_input_grad[1]:
            grad_weight = grad_out.t() @ (silu * up).reshape(-1, up.shape[-1])  # (C, F)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_out.sum(0)
        if ctx.needs_input_grad[0]:
            grad_a = grad_output @ weight  # (…, F)
            grad_gate_up = torch.empty_like(gate_up)  # both halves written in place: no concatenation
            grad_gate, grad_up = grad_gate_up.chunk(2, dim=-1)
            torch.mul(grad_a, silu, out=grad_up)
            # ∂L/∂a ⊙ up ⊙ SiLU'(gate), SiLU'(z) = σ(z)(1 + z(1 − σ(z))): aten's fused kernel (one pass, as autograd's)
            torch.ops.aten.silu_backward.grad_input(grad_a * up, gate, grad_input=grad_gate)
        return grad_gate_up, grad_weight, grad_bias


def swiglu_down(gate_up: torch.Tensor, down: nn.Linear) -> torch.Tensor:
    """`SwiGLUDownFunction` through a plain `nn.Linear` W_down: gate_up (…, 2F) → (…, C)."""
    return SwiGLUDownFunction.apply(gate_up, down.weight, down.bias)
