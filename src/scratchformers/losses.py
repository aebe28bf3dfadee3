"""Training objectives shared by the families: token cross-entropy, next-token loss, sequence classification, and
the chunked cross-entropy over the output layer that never holds a training batch's full logits."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .checks import IGNORE_INDEX, check_labels, check_token_labels

CHUNK_ELEMENTS = 1 << 20  # rows × vocabulary scored at once by the CPU cross-entropy
# Chunked loss (`chunked_cross_entropy`). A training forward with labels skips the full logits when they would hold at
# least CHUNKED_LOSS_ABOVE elements (B·T·V; 2²⁴ = 64 MiB in float32, e.g. 2 × 256 tokens at a 49,152 vocabulary), and
# then runs the output layer LOSS_CHUNK_ELEMENTS logits at a time: 2²² (16 MiB in float32) on CPU, under glibc's
# largest mmap threshold, so the allocator recycles each chunk's buffers instead of faulting in fresh pages (see
# CHUNK_ELEMENTS); 2²⁵ (128 MiB) elsewhere, where each chunk is a kernel launch or more and bigger ones keep it busy.
# At large vocabularies the budget alone makes chunks too short: each chunk reads the whole V × C output layer (its
# logits, then ∂L/∂h = G W) and reads and writes the V × C weight-gradient buffer (∂L/∂W += Gᵀh): 16·V·C bytes of
# memory traffic against 6·rows·V·C FLOPs of matmul, so the traffic costs a fraction ≈ (16/6)·F / (B·rows) of the
# chunk's matmul time (F the matmul rate, B the memory bandwidth; ≈ 18/rows on a 2-core EPYC: 190 GFLOP/s, 28 GB/s).
# LOSS_CHUNK_MIN_ROWS = 256 keeps that near 7 %. Measured there (one layer, 1 × 2,048 tokens, 1 thread): at
# Qwen2.5's 151,936 tokens 27 rows a chunk (the budget alone) took 31.4 s a step, 220 rows 22.4 s, HF's full logits
# 26.7 s; at SmolLM2's 49,152 tokens 85 to 682 rows all took 5.3–5.4 s.
CHUNKED_LOSS_ABOVE = 1 << 24
LOSS_CHUNK_ELEMENTS = {"cpu": 1 << 22}
LOSS_CHUNK_ELEMENTS_DEFAULT = 1 << 25
LOSS_CHUNK_MIN_ROWS = 256


def written_backward_applies(x: torch.Tensor, *parameters: torch.Tensor) -> bool:
    """Whether a hand-written backward (the chunked loss's output layer, `lean_backward`) is wanted for input x:
    gradients are on, x or a parameter needs one, and the code is neither being compiled nor under autocast (whose
    casts the hand-written backward does not repeat)."""
    return (torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in parameters))
            and not torch.compiler.is_compiling() and not torch.is_autocast_enabled(x.device.type))


def is_plain_linear(layer: nn.Module) -> bool:
    """Whether `layer` is exactly `nn.Linear` with plain tensors and no hooks: F.linear(x, W, b) is then its forward."""
    return (type(layer) is nn.Linear and not layer._forward_hooks and not layer._forward_pre_hooks
            and type(layer.weight.data) is torch.Tensor)


def token_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    num_items_in_batch: int | torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """L = −(1/N) Σ log p(yₜ) over labelled tokens (label −100 is ignored). N = `num_items_in_batch` when given,
    so gradient accumulation averages over the whole accumulated batch, as the Trainer expects."""
    check_labels(labels, tuple(logits.shape[:-1]), logits.shape[-1])  # a clear error instead of an IndexError
    logits = logits.float().reshape(-1, logits.shape[-1])  # (B·T, V)
    labels = labels.reshape(-1).to(logits.device, torch.long)  # (B·T,)
    # On CPU the rows are scored in ~4 MB chunks (same sum): the allocator recycles buffers that size, while one
    # (B·T, V) log-probability buffer and its gradient are freshly mapped memory every step, whose page faults cost
    # ~5 % of a small model's training step (measured in benchmarks/RESULTS.md). One call elsewhere (GPU kernels).
    rows = max(1, CHUNK_ELEMENTS // logits.shape[-1]) if logits.device.type == "cpu" else logits.shape[0] or 1
    loss = sum(
        (F.cross_entropy(x, y, ignore_index=IGNORE_INDEX, reduction="sum", label_smoothing=label_smoothing)
         for x, y in zip(logits.split(rows), labels.split(rows))),
        start=logits.new_zeros(()),
    )
    if num_items_in_batch is None:  # the mean over labelled tokens; a batch with none (e.g. T = 1) gives 0, not NaN
        num_items_in_batch = (labels != IGNORE_INDEX).sum().clamp(min=1)
    return loss / torch.as_tensor(num_items_in_batch, device=loss.device)


def next_token_labels(labels: torch.Tensor) -> torch.Tensor:
    """Next-token targets: position t predicts token t+1, so target[:, t] = labels[:, t+1] and the last is ignored.

    The labels are shifted (rather than the logits sliced), so the (B, T, V) logits are never copied into a
    contiguous (B, T−1, V) tensor — the same loss, one large copy fewer each way.
    """
    return F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)


SPLIT_BELOW = 0.75  # split the head's rows when at most this fraction of positions is labelled


def loss_chunk_rows(num_classes: int, device: torch.device | str) -> int:
    """Rows of the output layer run at once by `chunked_cross_entropy`: LOSS_CHUNK_ELEMENTS // V, at least
    LOSS_CHUNK_MIN_ROWS (where each chunk's matmuls outweigh reading the output layer once more) and at least 1."""
    budget = LOSS_CHUNK_ELEMENTS.get(torch.device(device).type, LOSS_CHUNK_ELEMENTS_DEFAULT)
    return max(1, LOSS_CHUNK_MIN_ROWS, budget // max(1, num_classes))


def _summed_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Σ over the rows of cross_entropy(logits, y) in float32: logits (n, V), targets (n,) → a float32 scalar."""
    return F.cross_entropy(logits.float(), targets, ignore_index=IGNORE_INDEX, reduction="sum",
                           label_smoothing=label_smoothing)


def _summed_chunk_loss(head: Callable[[torch.Tensor], torch.Tensor], hidden: torch.Tensor, targets: torch.Tensor,
                       label_smoothing: float) -> torch.Tensor:
    """Σ over the rows of one chunk of cross_entropy(head(h), y): hidden (n, C), targets (n,) → a float32 scalar."""
    return _summed_cross_entropy(head(hidden), targets, label_smoothing)


def _distributed() -> bool:
    """Whether this process is one of a distributed run (its parameters may be sharded, gathered or hooked)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _graph_leaves(output: torch.Tensor, exclude: torch.Tensor) -> list[torch.Tensor]:
    """The leaf tensors that back-propagating `output` would give a gradient (its graph's AccumulateGrad nodes), but
    `exclude`: the head's trainable parameters, whatever holds them (a module, a bound method, a LoRA wrapper)."""
    leaves: dict[int, torch.Tensor] = {}
    stack, seen = [output.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)  # AccumulateGrad
        if variable is not None:
            if variable is not exclude:
                leaves[id(variable)] = variable
            continue
        stack.extend(child for child, _ in node.next_functions)
    return list(leaves.values())


class _LossWithGradients(torch.autograd.Function):
    """Σ_chunks Σ_rows CE(head(h), y) with its gradients taken chunk by chunk in the forward (see
    `chunked_cross_entropy`). forward(head, rows, label_smoothing, first, hidden (N, C), labels (N,), *leaves) → a
    float32 scalar, where `first` = (h₀, loss₀) is the first chunk already run (it found the `leaves`, the head's
    trainable tensors); backward(g) → g·∂/∂hidden and g·∂/∂leaf."""

    @staticmethod
    def forward(ctx, head, rows: int, label_smoothing: float, first: tuple, hidden: torch.Tensor,
                labels: torch.Tensor, *leaves: torch.Tensor) -> torch.Tensor:
        wants_hidden = hidden.requires_grad
        grad_hidden = torch.empty_like(hidden) if wants_hidden else None  # (N, C)
        grad_leaves = [torch.zeros_like(p, dtype=torch.float32) for p in leaves]  # summed over chunks
        total = hidden.new_zeros((), dtype=torch.float32)
        for start in range(0, hidden.shape[0], rows):
            if start == 0:
                h, loss = first
            else:
                h = hidden[start:start + rows].detach().requires_grad_(wants_hidden)  # (n, C)
                with torch.enable_grad():
                    loss = _summed_chunk_loss(head, h, labels[start:start + rows], label_smoothing)
            grads = list(torch.autograd.grad(loss, [h] * wants_hidden + list(leaves), allow_unused=True))
            if wants_hidden:
                grad_hidden[start:start + rows] = grads.pop(0)
            for total_grad, grad in zip(grad_leaves, grads):
                if grad is not None:
                    total_grad += grad
            total = total + loss.detach()
        ctx.save_for_backward(*([grad_hidden] if wants_hidden else []), *grad_leaves)
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        saved = [grad * grad_output for grad in ctx.saved_tensors]
        grad_hidden = saved.pop(0) if ctx.needs_input_grad[4] else None
        return None, None, None, None, grad_hidden, None, *saved


class _LinearLossWithGradients(torch.autograd.Function):
    """`_LossWithGradients` for an output layer that is a plain `nn.Linear`, logits = h Wᵀ + b, with its backward
    written out and accumulated in place: per chunk, G = ∂L/∂logits (autograd through F.cross_entropy alone), then
        ∂L/∂h = G W,   ∂L/∂W += Gᵀ h (one addmm into a float32 buffer),   ∂L/∂b += Σ_rows G.
    Autograd would instead hand each chunk a fresh V × C weight gradient to add (a 113 MB tensor per chunk for
    SmolLM2: new pages and an extra pass over it, ~6 % of a training step). forward(hidden (N, C), labels (N,),
    weight (V, C), bias (V,) or None, rows, label_smoothing) → a float32 scalar."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                rows: int, label_smoothing: float) -> torch.Tensor:
        wants_hidden, wants_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[2]
        wants_bias = bias is not None and ctx.needs_input_grad[3]
        grad_hidden = torch.empty(hidden.shape, dtype=hidden.dtype, device=hidden.device) if wants_hidden else None
        # ∂L/∂W: the first chunk's Gᵀh written (no zero-filled V × C buffer to add to), the others added in place
        grad_weight = torch.empty_like(weight, dtype=torch.float32) if wants_weight else None
        grad_bias = torch.zeros_like(bias, dtype=torch.float32) if wants_bias else None
        total = hidden.new_zeros((), dtype=torch.float32)
        for start in range(0, hidden.shape[0], rows):
            h = hidden[start:start + rows]  # (n, C)
            logits = F.linear(h, weight, bias).requires_grad_()  # (n, V), a leaf: only the loss is differentiated
            with torch.enable_grad():
                loss = _summed_cross_entropy(logits, labels[start:start + rows], label_smoothing)
            (grad_logits,) = torch.autograd.grad(loss, logits)  # G, (n, V)
            if wants_hidden:
                torch.mm(grad_logits, weight, out=grad_hidden[start:start + rows])
            if wants_weight:
                grad_weight.addmm_(grad_logits.t().float(), h.float(), beta=0 if start == 0 else 1)
            if wants_bias:
                grad_bias += grad_logits.sum(0)
            total = total + loss.detach()
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        grads = [None if grad is None else grad * grad_output for grad in ctx.saved_tensors]  # (retain_graph-safe)
        return grads[0], None, grads[1], grads[2], None, None


def _loss_with_gradients(head: Callable[[torch.Tensor], torch.Tensor], hidden: torch.Tensor, labels: torch.Tensor,
                         rows: int, label_smoothing: float) -> torch.Tensor:
    """`_LossWithGradients` on (N, C) rows: the first chunk runs here to find the head's trainable leaves
    (`_LinearLossWithGradients` when the head is a plain `nn.Linear`)."""
    parameters = [p for p in (getattr(head, "weight", None), getattr(head, "bias", None)) if p is not None]
    if is_plain_linear(head) and written_backward_applies(hidden, *parameters):
        return _LinearLossWithGradients.apply(hidden.contiguous(), labels, head.weight, head.bias, rows,
                                              label_smoothing)
    h = hidden[:rows].detach().requires_grad_(hidden.requires_grad)
    loss = _summed_chunk_loss(head, h, labels[:rows], label_smoothing)
    if not loss.requires_grad:  # nothing to differentiate: the plain sum
        return sum((_summed_chunk_loss(head, x, y, label_smoothing)
                    for x, y in zip(hidden[rows:].split(rows), labels[rows:].split(rows))), start=loss)
    leaves = _graph_leaves(loss, exclude=h)
    return _LossWithGradients.apply(head, rows, label_smoothing, (h, loss), hidden, labels, *leaves)


def chunked_cross_entropy(
    head: Callable[[torch.Tensor], torch.Tensor],
    hidden_states: torch.Tensor,
    targets: torch.Tensor,
    num_classes: int,
    num_items_in_batch: int | torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    chunk_rows: int | None = None,
) -> torch.Tensor:
    """token_cross_entropy(head(hidden_states), targets, num_items_in_batch, label_smoothing) without ever holding the
    (B·T, V) logits: the output layer and the loss run on `chunk_rows` positions at a time, forward and backward.

    hidden_states (…, C) and targets (…) (−100 ignored) of the same leading shape; `head` maps (n, C) → (n, V) row by
    row (a Linear, BERT's transform + decoder, a LoRA-wrapped Linear: its own forward is called, so whatever wraps or
    adds to it is used; it must not mix rows). Returns the float32 scalar Σ_rows CE / N, N = `num_items_in_batch`, or
    the number of labelled positions (at least 1), exactly as token_cross_entropy.

    How: only the labelled rows are kept (torchtune's LinearCrossEntropyLoss and Apple's Cut Cross-Entropy also drop
    ignored positions before the projection), then the head and the loss run chunk by chunk, and each chunk's
    gradients are taken right away, during the forward (Liger-Kernel's fused linear cross-entropy,
    github.com/linkedin/Liger-Kernel `ops/fused_linear_cross_entropy.py`, does the same in Triton): the loss is a
    scalar, so ∂L/∂h and ∂L/∂θ for an upstream gradient g are g times those for g = 1, and backward only scales the
    stored ∂/∂h (B·T × C, the size of the hidden states) and the head's parameter gradients (summed over chunks in
    float32). So at most one chunk's logits, log-probabilities and their gradients (a few n × V buffers) exist at any
    time, and the head costs what it costs unchunked (2·n·C·V FLOPs forward, twice that backward). `head` is called as
    a module, so LoRA, BERT's transform and BART's output bias are differentiated by autograd as they are
    (`_LossWithGradients`).
    Where the head's parameters may not be the tensors its forward really uses — a distributed run (FSDP/DeepSpeed
    shard and gather them, DDP hooks them) or torch.compile — each chunk instead runs under non-reentrant activation
    checkpointing (`torch.utils.checkpoint`, as Apple's Cut Cross-Entropy recomputes logits blockwise,
    github.com/apple/ml-cross-entropy `cce.py`): backward recomputes the chunk's logits (one more forward of the head,
    a third of its training cost) with the random state restored, so a head with dropout sees the same mask twice.
    The gradients are taken once, so the loss cannot be differentiated twice (create_graph=True).

    Same loss and gradients as the unchunked computation up to float32 summation order: every row's logits,
    log-softmax and gradient are computed by the same operations, only the sums over rows (the loss, and the head's
    parameter gradients Σ_rows g_rᵀ h_r) are added up per chunk and then across chunks instead of in one reduction.
    """
    hidden = hidden_states.reshape(-1, hidden_states.shape[-1])  # (B·T, C)
    labels = targets.reshape(-1).to(hidden.device, torch.long)  # (B·T,)
    if num_items_in_batch is None:  # the mean over labelled tokens; none labelled gives 0, not NaN
        num_items_in_batch = (labels != IGNORE_INDEX).sum().clamp(min=1)
    if not torch.compiler.is_compiling():  # data-dependent shapes: compiled, every row is scored (ignored ones give 0)
        labelled = labels != IGNORE_INDEX
        count = int(labelled.sum())  # one host sync (on a GPU), as logits_and_labelled_loss's split
        if count == 0:  # one ignored row: the loss (0) still reaches every parameter the plain path's does
            hidden, labels = hidden[:1], labels[:1]
        elif count < labels.numel():
            hidden, labels = hidden[labelled], labels[labelled]  # (N, C), (N,): the labelled rows only
    rows = chunk_rows or loss_chunk_rows(num_classes, hidden.device)
    if torch.is_grad_enabled() and not (torch.compiler.is_compiling() or _distributed()):
        total = _loss_with_gradients(head, hidden, labels, rows, label_smoothing)
    else:
        total = hidden.new_zeros((), dtype=torch.float32)
        for h, y in zip(hidden.split(rows), labels.split(rows)):
            if torch.is_grad_enabled():
                total = total + checkpoint(_summed_chunk_loss, head, h, y, label_smoothing, use_reentrant=False)
            else:
                total = total + _summed_chunk_loss(head, h, y, label_smoothing)
    return total / torch.as_tensor(num_items_in_batch, device=total.device)


def wants_chunked_loss(skip_logits: bool | None, training: bool, targets: torch.Tensor | None,
                       num_classes: int) -> bool:
    """Whether a head returns the loss alone, computed by `chunked_cross_entropy`, and no logits.

    `skip_logits` is the forward argument (transformers' Trainer sends `skip_logits=True` for loss-only evaluation with
    Liger kernels, whose patched forwards take it): True asks for it (labels needed), False for the logits as before.
    None (the default) decides: yes when training (`model.train()`) with labels and the logits would hold at least
    CHUNKED_LOSS_ABOVE elements (positions × vocabulary) — Liger's forwards skip them whenever training with labels;
    below the threshold the memory saved is small and the logits are kept. Evaluation (`model.eval()`, as the
    Trainer's evaluation loop does) always returns the logits unless asked.
    """
    if skip_logits is None:
        return training and targets is not None and targets.numel() * num_classes >= CHUNKED_LOSS_ABOVE
    if skip_logits and targets is None:
        raise ValueError("`skip_logits=True` computes only the loss, so it needs `labels` (or `shift_labels`); "
                         "pass labels, or leave `skip_logits` unset to get the logits.")
    return bool(skip_logits)


def logits_and_labelled_loss(
    head: Callable[[torch.Tensor], torch.Tensor],
    hidden_states: torch.Tensor,
    targets: torch.Tensor | None,
    num_classes: int,
    num_items_in_batch: int | torch.Tensor | None = None,
    skip_logits: bool | None = None,
    training: bool = False,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(logits, loss) of a per-position output head, L = token_cross_entropy(head(h), targets) (loss None without
    targets), when only some positions carry a target (−100 elsewhere: MLM's unmasked ~85 %, a prompt masked out of a fine-tuning loss, padding).

    When `wants_chunked_loss(skip_logits, training, targets, num_classes)` — by default, training with labels at a
    large positions × vocabulary — the logits are None and the loss is `chunked_cross_entropy`'s: the same value and
    gradients, without the (B, T, V) logits in memory. Otherwise:

    The loss has gradients only through the labelled rows, so when at most `SPLIT_BELOW` of them are labelled the
    head runs on two disjoint sets of rows: the labelled ones, feeding the loss, and the rest, only for the returned
    logits. Backward then runs the head — the (B·T, C) × (C, V) vocabulary projection, the largest matmul of a small
    language model — on the labelled rows alone. The logits are the same (B, T, V) tensor, still differentiable
    everywhere; the loss and its gradients are those of the plain computation. Counting the scored rows is one
    host sync per call (on a GPU); under torch.compile the split is skipped (its shapes depend on the data).
    """
    if wants_chunked_loss(skip_logits, training, targets, num_classes):
        check_labels(targets, tuple(hidden_states.shape[:-1]), num_classes)
        return None, chunked_cross_entropy(head, hidden_states, targets, num_classes, num_items_in_batch,
                                           label_smoothing)
    if targets is None:  # inference: logits only
        return head(hidden_states), None
    check_labels(targets, tuple(hidden_states.shape[:-1]), num_classes)
    labelled = targets != IGNORE_INDEX  # (B, T)
    count = labelled.numel() if torch.compiler.is_compiling() else int(labelled.sum())  # compiled: no data-dependent split
    if count == 0 or count > SPLIT_BELOW * labelled.numel():
        logits = head(hidden_states)
        return logits, token_cross_entropy(logits, targets, num_items_in_batch, label_smoothing)
    scored = head(hidden_states[labelled])  # (N, V): the rows the loss backpropagates through
    logits = scored.new_empty(*targets.shape, scored.shape[-1])  # (B, T, V)
    logits[labelled] = scored
    logits[~labelled] = head(hidden_states[~labelled])
    return logits, token_cross_entropy(scored, targets[labelled], num_items_in_batch, label_smoothing)


def sequence_classification_loss(logits: torch.Tensor, labels: torch.Tensor, config) -> torch.Tensor:
    """MSE for regression, cross-entropy for single-label, BCE-with-logits for multi-label (HF's `problem_type`).

    When `config.problem_type` is unset it is inferred as HF does: 1 label → regression; integer labels →
    single-label; float multi-hot labels → multi-label. The inferred type is stored on the config.
    """
    num_labels = config.num_labels
    if not isinstance(labels, torch.Tensor):  # before the inference below reads labels.dtype
        raise TypeError(f"`labels` must be a torch.Tensor, got {type(labels).__name__}.")
    if config.problem_type is None:
        if num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    if config.problem_type == "single_label_classification":
        check_labels(labels.view(-1) if labels.dim() == 2 and labels.shape[-1] == 1 else labels,
                     (logits.shape[0],), num_labels)
    elif tuple(labels.shape) not in {tuple(logits.shape), (logits.shape[0],) if num_labels == 1 else ()}:
        raise ValueError(f"`labels` must have shape {tuple(logits.shape)} for {config.problem_type}, "
                         f"got {tuple(labels.shape)}.")
    if config.problem_type == "regression":
        if num_labels == 1:
            return F.mse_loss(logits.reshape(-1).float(), labels.reshape(-1).float())
        return F.mse_loss(logits.float(), labels.float())
    if config.problem_type == "single_label_classification":
        return F.cross_entropy(logits.float().view(-1, num_labels), labels.reshape(-1).long())
    if config.problem_type == "multi_label_classification":
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
    raise ValueError(
        f"`problem_type`={config.problem_type!r} is not supported; allowed values are "
        "('regression', 'single_label_classification', 'multi_label_classification')."
    )


def span_loss(start_logits: torch.Tensor, end_logits: torch.Tensor, start_positions: torch.Tensor,
              end_positions: torch.Tensor) -> torch.Tensor:
    """Extractive QA loss: ½ (CE(start_logits, s) + CE(end_logits, e)) (§4.2). Positions outside [0, T) are ignored
    (clamped to T, as HF does for answers truncated away)."""
    if start_positions is None or end_positions is None:
        raise ValueError("Pass both `start_positions` and `end_positions` (or neither).")
    B, T = start_logits.shape
    for name, positions in (("start_positions", start_positions), ("end_positions", end_positions)):
        if not isinstance(positions, torch.Tensor):
            raise TypeError(f"`{name}` must be a torch.Tensor of token indices, got {type(positions).__name__}.")
        if positions.dtype.is_floating_point or positions.reshape(-1).shape[0] != B:
            raise ValueError(f"`{name}` must hold one integer token index per example ({B}), got {tuple(positions.shape)}.")
    s = start_positions.reshape(-1).clamp(0, T)  # (B,)
    e = end_positions.reshape(-1).clamp(0, T)
    return (F.cross_entropy(start_logits.float(), s, ignore_index=T)
            + F.cross_entropy(end_logits.float(), e, ignore_index=T)) / 2


def token_classification_loss(logits: torch.Tensor, labels: torch.Tensor,
                              num_items_in_batch: torch.Tensor | int | None = None) -> torch.Tensor:
    """Tagging loss: cross-entropy of each token's class logits (B, T, K) against its label (B, T), −100 ignored;
    the labels are checked first (shape, ids in [0, K) or −100: ValueError naming them)."""
    check_token_labels(labels, logits.shape[:2], logits.shape[-1])
    return token_cross_entropy(logits, labels, num_items_in_batch)
