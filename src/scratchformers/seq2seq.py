"""Helpers every encoder-decoder family shares (the Transformer and the RNN seq2seq models).

Teacher forcing: the decoder reads the target shifted one step to the right, starting from
`decoder_start_token_id`, and is trained to predict the unshifted target — so position t sees y₀…y_{t−1} and predicts yₜ.
Flat sibling module (torch only), so checkpoints that import it load with `trust_remote_code=True`.
"""

from __future__ import annotations

import torch

from .checks import check_labels

IGNORE_INDEX = -100


def shift_tokens_right(
    labels: torch.Tensor, pad_token_id: int | None, decoder_start_token_id: int | None, vocab_size: int | None = None
) -> torch.Tensor:
    """Teacher-forcing decoder inputs from labels: [start, y₀, …, y_{T−2}], with −100 (ignored labels) → pad.

    `labels` (B, T) → `decoder_input_ids` (B, T), the same shift HF's seq2seq models (BART, T5, Marian) apply.
    With `vocab_size` the labels are checked first (ids in [0, vocab_size) or −100), so a bad label is reported as
    `labels`, not as the `decoder_input_ids` it would be shifted into.
    """
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"`labels` must be a torch.Tensor, got {type(labels).__name__}.")
    if labels.dim() != 2:
        raise ValueError(f"`labels` must be a (batch, target_length) tensor, got {tuple(labels.shape)}.")
    if vocab_size is not None:
        check_labels(labels, tuple(labels.shape), vocab_size)
    if decoder_start_token_id is None:
        raise ValueError(
            "`decoder_start_token_id` is None: set it in the config (e.g. the tokenizer's bos or pad id) so labels can "
            "be shifted into decoder inputs."
        )
    if pad_token_id is None:
        raise ValueError("`pad_token_id` is None: set it in the config so ignored labels (-100) can be replaced.")
    shifted = labels.new_empty(labels.shape)
    shifted[:, 1:] = labels[:, :-1]
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == IGNORE_INDEX, pad_token_id)


class TeacherForcingMixin:
    """For seq2seq heads: `labels` → decoder inputs, the way `DataCollatorForSeq2Seq(model=...)` and the loss expect."""

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Decoder inputs for `labels`: shifted right behind `decoder_start_token_id`, −100 replaced by padding."""
        return shift_tokens_right(
            labels, self.config.pad_token_id, self.config.decoder_start_token_id, self.config.vocab_size
        )


def noam_learning_rate(d_model: int, warmup_steps: int, factor: float = 1.0) -> float:
    """Peak learning rate of the paper's schedule: factor · d_model^−0.5 · warmup^−0.5 (§5.3, eq. 3).

    lrate = d_model^−0.5 · min(step^−0.5, step · warmup^−1.5) is exactly transformers' `inverse_sqrt` scheduler
    (linear warm-up to the peak, then peak · √(warmup/step)) with `learning_rate` set to this value and
    `warmup_steps` = warmup; the paper used warmup = 4000 with Adam(β₁=0.9, β₂=0.98, ε=1e−9).
    """
    if not isinstance(d_model, int) or d_model <= 0:
        raise ValueError(f"`d_model` must be a positive integer, got {d_model!r}.")
    if not isinstance(warmup_steps, int) or warmup_steps <= 0:
        raise ValueError(f"`warmup_steps` must be a positive integer, got {warmup_steps!r}.")
    return factor * d_model**-0.5 * warmup_steps**-0.5


def noam_schedule_factor(step: int, d_model: int, warmup_steps: int) -> float:
    """The paper's lrate at `step` (≥ 1): d_model^−0.5 · min(step^−0.5, step · warmup^−1.5) (§5.3, eq. 3)."""
    if step < 1:
        raise ValueError(f"`step` counts from 1, got {step!r}.")
    return d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)
