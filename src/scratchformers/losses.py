"""Training objectives shared by the families: token cross-entropy, next-token loss, sequence classification."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def token_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    num_items_in_batch: int | torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """L = −(1/N) Σ log p(yₜ) over labelled tokens (label −100 is ignored). N = `num_items_in_batch` when given,
    so gradient accumulation averages over the whole accumulated batch, as the Trainer expects."""
    logits = logits.float().reshape(-1, logits.shape[-1])  # (B·T, V)
    labels = labels.reshape(-1).to(logits.device)  # (B·T,)
    reduction = "mean" if num_items_in_batch is None else "sum"
    loss = F.cross_entropy(
        logits, labels, ignore_index=IGNORE_INDEX, reduction=reduction, label_smoothing=label_smoothing
    )
    if num_items_in_batch is not None:
        loss = loss / torch.as_tensor(num_items_in_batch, device=loss.device)
    return loss


def causal_lm_loss(
    logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch: int | torch.Tensor | None = None
) -> torch.Tensor:
    """Next-token loss: position t predicts token t+1, so logits[:, t] is scored against labels[:, t+1].

    The labels are shifted (and the last position ignored) rather than the logits sliced, so the (B, T, V) logits
    are never copied into a contiguous (B, T−1, V) tensor — the same loss, one large copy fewer each way.
    """
    shifted = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)  # (B, T): labels[:, t+1], last position ignored
    return token_cross_entropy(logits, shifted, num_items_in_batch)


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
    if config.problem_type == "regression":
        return F.mse_loss(logits.squeeze(-1).float(), labels.squeeze(-1).float()) if num_labels == 1 else F.mse_loss(
            logits.float(), labels.float()
        )
    if config.problem_type == "single_label_classification":
        return F.cross_entropy(logits.float().view(-1, num_labels), labels.view(-1))
    if config.problem_type == "multi_label_classification":
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
    raise ValueError(
        f"`problem_type`={config.problem_type!r} is not supported; allowed values are "
        "('regression', 'single_label_classification', 'multi_label_classification')."
    )
