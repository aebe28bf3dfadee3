"""Training objectives shared by the families: token cross-entropy, next-token loss, sequence classification."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .checks import check_labels

IGNORE_INDEX = -100
CHUNK_ELEMENTS = 1 << 20  # rows × vocabulary scored at once by the CPU cross-entropy


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


def logits_and_labelled_loss(
    head: Callable[[torch.Tensor], torch.Tensor],
    hidden_states: torch.Tensor,
    targets: torch.Tensor | None,
    num_classes: int,
    num_items_in_batch: int | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logits, loss) of a per-position output head, L = token_cross_entropy(head(h), targets) (loss None without
    targets), when only some positions carry a target (−100 elsewhere: MLM's unmasked ~85 %, a prompt masked out of a fine-tuning loss, padding).

    The loss has gradients only through the labelled rows, so when at most `SPLIT_BELOW` of them are labelled the
    head runs on two disjoint sets of rows: the labelled ones, feeding the loss, and the rest, only for the returned
    logits. Backward then runs the head — the (B·T, C) × (C, V) vocabulary projection, the largest matmul of a small
    language model — on the labelled rows alone. The logits are the same (B, T, V) tensor, still differentiable
    everywhere; the loss and its gradients are those of the plain computation. Counting the scored rows is one
    host sync per call (on a GPU); under torch.compile the split is skipped (its shapes depend on the data).
    """
    if targets is None:  # inference: logits only
        return head(hidden_states), None
    check_labels(targets, tuple(hidden_states.shape[:-1]), num_classes)
    labelled = targets != IGNORE_INDEX  # (B, T)
    count = labelled.numel() if torch.compiler.is_compiling() else int(labelled.sum())  # compiled: no data-dependent split
    if count == 0 or count > SPLIT_BELOW * labelled.numel():
        logits = head(hidden_states)
        return logits, token_cross_entropy(logits, targets, num_items_in_batch)
    scored = head(hidden_states[labelled])  # (N, V): the rows the loss backpropagates through
    logits = scored.new_empty(*targets.shape, scored.shape[-1])  # (B, T, V)
    logits[labelled] = scored
    logits[~labelled] = head(hidden_states[~labelled])
    return logits, token_cross_entropy(scored, targets[labelled], num_items_in_batch)


def sequence_classification_loss(logits: torch.Tensor, labels: torch.Tensor, config) -> torch.Tensor:
    """MSE for regression, cross-entropy for single-label, BCE-with-logits for multi-label (HF's `problem_type`).

    When `config.problem_type` is unset it is inferred as HF does: 1 label → regression; integer labels →
    single-label; float multi-hot labels → multi-label. The inferred type is stored on the config.
    """
    num_labels = config.num_labels
    if config.problem_type is None:
        if num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"`labels` must be a torch.Tensor, got {type(labels).__name__}.")
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
