"""Preference tuning (DPO, Rafailov et al. 2023) with TRL's ``DPOTrainer``: reading preference rows, and scoring how
often a model prefers the chosen answer.

A preference row is TRL's format, one JSON object a line: ``{"prompt", "chosen", "rejected"}``, either three strings
(the *standard* format; TRL appends the end-of-sequence token to each answer) or chat messages (the *conversational*
format: ``prompt`` a list of ``{"role", "content"}`` turns ending on the user's, ``chosen``/``rejected`` each a list
holding the assistant's answer), rendered with the tokenizer's chat template.

DPO trains the policy π_θ against a frozen reference π_ref with the loss
−log σ(β·[(log π_θ(y_w|x) − log π_ref(y_w|x)) − (log π_θ(y_l|x) − log π_ref(y_l|x))]) (eq. 7), y_w chosen, y_l
rejected; r(x, y) = β·(log π_θ(y|x) − log π_ref(y|x)) is the *implicit reward* TRL logs as ``rewards/chosen`` and
``rewards/rejected``, and ``rewards/accuracies`` is the share of pairs with r(x, y_w) > r(x, y_l). With a LoRA
adapter (peft) the reference is the same model with the adapter disabled (TRL's default), so no second copy is held.

Before training π_θ = π_ref and every implicit reward is 0, so the accuracy that can be compared before and after is
the *log-probability margin*: the share of pairs with log π(y_w|x) > log π(y_l|x) (``completion_logprobs``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from .sft import check_chat, read_json_lines

#: The columns of a preference row (TRL's explicit-prompt preference format).
PREFERENCE_COLUMNS = ("prompt", "chosen", "rejected")
PREFERENCE_ROW = '{"prompt": ..., "chosen": ..., "rejected": ...} (three strings, or chat messages)'


def check_preference(row: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``row``'s ``PREFERENCE_COLUMNS``, checked: all three strings, or chat messages (``prompt`` turns without an
    assistant answer at the end, ``chosen``/``rejected`` lists of assistant messages; roles and contents checked by
    ``sft.check_chat``). ``where`` names the row in errors. Raises ValueError naming the missing or bad column."""
    missing = [c for c in PREFERENCE_COLUMNS if c not in row]
    if missing:
        hint = " (a {\"messages\": [...]} chat is `train sft`'s format)" if "messages" in row else ""
        raise ValueError(f"{where} lacks {', '.join(repr(c) for c in missing)}; each line must be {PREFERENCE_ROW}"
                         f"{hint}")
    values = [row[c] for c in PREFERENCE_COLUMNS]
    if all(isinstance(v, str) for v in values):
        return {c: row[c] for c in PREFERENCE_COLUMNS}
    if not all(isinstance(v, list) for v in values):
        kinds = ", ".join(f"{c}: {type(row[c]).__name__}" for c in PREFERENCE_COLUMNS)
        raise ValueError(f"{where}: prompt, chosen and rejected must be all strings or all lists of chat messages, got "
                         f"{kinds}")
    for column in ("chosen", "rejected"):
        answer = check_chat(row["prompt"] + row[column], f"{where} (prompt + {column})")[len(row["prompt"]):]
        if not answer or any(m["role"] != "assistant" for m in answer):
            raise ValueError(f"{where}: {column!r} must be a non-empty list of assistant messages")
    if row["prompt"] and row["prompt"][-1].get("role") == "assistant":
        raise ValueError(f"{where}: the prompt ends with an assistant message; the answer belongs in chosen/rejected")
    return {c: row[c] for c in PREFERENCE_COLUMNS}


def read_preferences(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The preference rows of a JSON-lines file (``check_preference`` each; blank lines skipped), all in one format.
    Raises ValueError naming the file and line of the first bad row, or an empty file; FileNotFoundError."""
    rows, kinds = [], set()
    for where, row in read_json_lines(path, PREFERENCE_ROW):
        rows.append(check_preference(row, where))
        kinds.add(isinstance(rows[-1]["prompt"], str))
        if len(kinds) > 1:
            raise ValueError(f"{where} mixes plain-string and chat-message rows; use one format per file")
    if not rows:
        raise ValueError(f"{path} holds no preference rows; each line must be {PREFERENCE_ROW}")
    return rows


@torch.no_grad()
def completion_logprobs(model: Any, batches: Iterable[Mapping[str, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """log π(y|x) = Σₜ log π(yₜ | x, y<ₜ) over each answer's tokens, for the chosen and the rejected answer of every
    pair, with the model's plain forward (full logits, float32 log-softmax).

    ``batches`` are TRL's ``DataCollatorForPreference`` batches (e.g. ``DPOTrainer.get_eval_dataloader()``):
    ``input_ids`` (2B, T) with the B chosen sequences first, then the B rejected, right-padded; ``attention_mask``
    (2B, T); ``completion_mask`` (2B, T), 1 on answer tokens. Returns (chosen, rejected), each (N,) over all pairs.
    This is what TRL logs as ``logps/chosen`` / ``logps/rejected`` (their batch means).
    """
    model.eval()
    device = next(model.parameters()).device
    chosen, rejected = [], []
    for batch in batches:
        ids = batch["input_ids"].to(device)  # (2B, T)
        logits = model(input_ids=ids, attention_mask=batch["attention_mask"].to(device), use_cache=False).logits
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (2B, T-1, V): predicts tokens 1..T-1
        token_logp = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)  # (2B, T-1)
        summed = (token_logp * batch["completion_mask"][:, 1:].to(device)).sum(dim=1)  # (2B,)
        c, r = summed.chunk(2)
        chosen.append(c.cpu())
        rejected.append(r.cpu())
    return torch.cat(chosen), torch.cat(rejected)


def prefers_chosen(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """(N,) bool: log π(y_w|x) > log π(y_l|x), the model ranks the chosen answer above the rejected one (inputs: the
    (N,) log-probabilities of ``completion_logprobs``). Its mean is the log-probability-margin accuracy."""
    return chosen > rejected


def reward_prefers_chosen(before: tuple[torch.Tensor, torch.Tensor], after: tuple[torch.Tensor, torch.Tensor]
                          ) -> torch.Tensor:
    """(N,) bool: r(x, y_w) > r(x, y_l) with the implicit reward r = β·(log π_θ − log π_ref) (DPO eq. 5; β > 0 drops
    out of the comparison), π_ref = the model ``before`` training, π_θ ``after``: each a (chosen, rejected) pair of
    (N,) log-probabilities from ``completion_logprobs``. Its mean is TRL's ``rewards/accuracies`` over the pairs."""
    return (after[0] - before[0]) > (after[1] - before[1])
