"""Extractive question answering: turn a QA head's start/end logits into answer spans over the original context.

transformers 5 has no `question-answering` pipeline; `answer_spans(model, tokenizer, questions, contexts)` is the
one-call replacement for our QA heads (and any model returning `start_logits`/`end_logits`). The answer is the
span (i, j) of context tokens maximising log P(start = i) + log P(end = j) with i ≤ j < i + max_answer_length
(BERT §4.2), where both softmaxes run over the context tokens only — so question tokens, special tokens and
padding can never be chosen, and padding a batch does not change any answer. Long contexts are read in overlapping
windows (`max_length`, `stride`), and the best span over all windows wins.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def best_spans(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    candidate_mask: torch.Tensor,
    max_answer_length: int = 30,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best valid span per row: argmax over i ≤ j < i + L, both candidates, of log pₛ(i) + log pₑ(j).

    pₛ, pₑ are softmaxes of the logits over the row's candidate positions (`candidate_mask` True). Inputs (B, T);
    returns token indices `starts`, `ends` (B,) and `scores` = pₛ(start)·pₑ(end) (B,).
    """
    if start_logits.shape != end_logits.shape or start_logits.shape != candidate_mask.shape or start_logits.dim() != 2:
        raise ValueError(
            "`start_logits`, `end_logits` and `candidate_mask` must all have shape (batch, sequence), got "
            f"{tuple(start_logits.shape)}, {tuple(end_logits.shape)}, {tuple(candidate_mask.shape)}."
        )
    if isinstance(max_answer_length, bool) or not isinstance(max_answer_length, int) or max_answer_length < 1:
        raise ValueError(f"`max_answer_length` must be a positive integer, got {max_answer_length!r}.")
    candidate_mask = candidate_mask.bool()
    empty = (~candidate_mask.any(-1)).nonzero().flatten()
    if empty.numel():
        raise ValueError(f"Row {int(empty[0])} has no candidate (context) token to answer from.")
    neg = torch.finfo(torch.float32).min
    log_ps = start_logits.float().masked_fill(~candidate_mask, neg).log_softmax(-1)  # (B, T)
    log_pe = end_logits.float().masked_fill(~candidate_mask, neg).log_softmax(-1)
    T = start_logits.shape[-1]
    scores = log_ps.unsqueeze(-1) + log_pe.unsqueeze(-2)  # (B, T, 1) + (B, 1, T) -> (B, T, T): [i, j] = start i, end j
    i = torch.arange(T, device=scores.device)
    length = i.unsqueeze(0) - i.unsqueeze(1)  # [i, j] = j − i
    valid = (length >= 0) & (length < max_answer_length)  # (T, T)
    valid = valid & candidate_mask.unsqueeze(-1) & candidate_mask.unsqueeze(-2)  # (B, T, T)
    scores = scores.masked_fill(~valid, float("-inf"))
    best = scores.flatten(1).argmax(-1)  # (B,)
    starts, ends = best // T, best % T
    return starts, ends, scores.flatten(1).gather(1, best.unsqueeze(1)).squeeze(1).exp()


def answer_spans(
    model: torch.nn.Module,
    tokenizer,
    questions: str | Sequence[str],
    contexts: str | Sequence[str],
    max_answer_length: int = 30,
    max_length: int = 384,
    stride: int = 128,
    batch_size: int = 16,
) -> list[dict]:
    """Answer each question from its context with an extractive QA model, in batches.

    Returns one dict per pair: `answer` (the exact substring of the original context), `start`/`end` (character
    offsets, `context[start:end] == answer`) and `score` (pₛ·pₑ, see `best_spans`). A context longer than the room
    `max_length` leaves beside its question is split into overlapping windows (the tokenizer's
    `return_overflowing_tokens`; consecutive windows share `stride` context tokens, the `doc_stride` of HF's
    question-answering pipeline, so an answer cut by one window's edge lies whole in the next). Every window is
    scored on its own and the answer is the best-scoring span over all windows of its pair, as that pipeline does.
    `batch_size` counts windows per forward pass. Needs a fast tokenizer (offset mappings).
    """
    if isinstance(questions, str):
        questions = [questions]
    if isinstance(contexts, str):
        contexts = [contexts]
    questions, contexts = list(questions), list(contexts)
    if len(questions) != len(contexts):
        raise ValueError(f"Got {len(questions)} questions but {len(contexts)} contexts; pass one context per question.")
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("`answer_spans` needs a fast tokenizer (PreTrainedTokenizerFast) for character offsets.")
    for name, value, low in (("batch_size", batch_size, 1), ("max_length", max_length, 1), ("stride", stride, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}.")
    _check_window_room(tokenizer, questions, max_length, stride)
    device = next(model.parameters()).device
    answers: list[dict] = []
    for first in range(0, len(questions), batch_size):
        q, c = questions[first : first + batch_size], contexts[first : first + batch_size]
        enc = tokenizer(
            q, c, padding=True, truncation="only_second", max_length=max_length, stride=stride,
            return_overflowing_tokens=True, return_offsets_mapping=True, return_tensors="pt",
        )
        offsets = enc.pop("offset_mapping")  # (W, T, 2) character spans in the question or the context, W windows
        window_of = enc.pop("overflow_to_sample_mapping").tolist()  # window -> pair index within this chunk
        is_context = torch.tensor(
            [[sid == 1 for sid in enc.sequence_ids(w)] for w in range(len(window_of))], dtype=torch.bool
        )  # (W, T)
        empty = (~is_context.any(-1)).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f"Context {first + window_of[empty[0]]} has no candidate (context) token to answer from.")
        inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        start_logits, end_logits = [], []
        with torch.no_grad():
            for w0 in range(0, len(window_of), batch_size):
                out = model(**{k: v[w0 : w0 + batch_size].to(device) for k, v in inputs.items()})
                start_logits.append(out.start_logits.cpu())
                end_logits.append(out.end_logits.cpu())
        starts, ends, scores = best_spans(torch.cat(start_logits), torch.cat(end_logits), is_context, max_answer_length)
        for b, context in enumerate(c):
            windows = [w for w, pair in enumerate(window_of) if pair == b]
            w = max(windows, key=lambda i: float(scores[i]))  # the first of equally good windows
            char_start = int(offsets[w, starts[w], 0])
            char_end = int(offsets[w, ends[w], 1])
            answers.append(
                {"answer": context[char_start:char_end], "start": char_start, "end": char_end, "score": float(scores[w])}
            )
    return answers


def _check_window_room(tokenizer, questions: list[str], max_length: int, stride: int) -> None:
    """Raise ValueError unless each window leaves room for context tokens and `stride` is smaller than that room
    (the tokenizers library panics otherwise): room = max_length − question tokens − special tokens."""
    special = tokenizer.num_special_tokens_to_add(pair=True)
    lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]]
    for i, n in enumerate(lengths):
        room = max_length - n - special
        if room < 1:
            raise ValueError(
                f"Question {i} has {n} tokens: with {special} special tokens it leaves no room for context in "
                f"max_length={max_length}; raise max_length or shorten the question."
            )
        if stride >= room:
            raise ValueError(
                f"`stride`={stride} must be smaller than the {room} context tokens a window of question {i} holds "
                f"(max_length={max_length} minus {n} question and {special} special tokens)."
            )
