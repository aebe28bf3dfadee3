"""Extractive QA span decoding: best valid span, answers over the original text, batched and padding-invariant."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers.modeling_outputs import QuestionAnsweringModelOutput

from scratchformers import ScratchBertConfig, ScratchBertForQuestionAnswering
from scratchformers.data import resolve_data_dir
from scratchformers.qa import answer_spans, best_spans
from scratchformers.tokenization import train_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(resolve_data_dir() / "prose" / "train.txt", kind="wordpiece", vocab_size=400)


def brute_force(start, end, mask, max_len):
    """The best span by trying every (i, j): the definition `best_spans` must agree with."""
    ls = start.masked_fill(~mask, float("-inf")).log_softmax(-1)
    le = end.masked_fill(~mask, float("-inf")).log_softmax(-1)
    best, arg = float("-inf"), None
    for i in range(len(start)):
        for j in range(i, min(i + max_len, len(start))):
            if mask[i] and mask[j] and ls[i] + le[j] > best:
                best, arg = float(ls[i] + le[j]), (i, j)
    return arg, best


@pytest.mark.parametrize("max_answer_length", [1, 3, 30])
def test_best_spans_agrees_with_brute_force(max_answer_length):
    B, T = 6, 12
    start, end = torch.randn(B, T) * 3, torch.randn(B, T) * 3
    mask = torch.rand(B, T) > 0.3
    mask[:, 5] = True  # every row has a candidate
    starts, ends, scores = best_spans(start, end, mask, max_answer_length)
    for b in range(B):
        (i, j), log_score = brute_force(start[b], end[b], mask[b], max_answer_length)
        assert (int(starts[b]), int(ends[b])) == (i, j)
        assert float(scores[b]) == pytest.approx(torch.tensor(log_score).exp().item(), rel=1e-5)
        assert 0 <= ends[b] - starts[b] < max_answer_length


def test_best_spans_never_ends_before_it_starts_or_leaves_the_candidates():
    start = torch.tensor([[9.0, 0.0, 0.0, 5.0, 0.0, 0.0]])  # the start peak is not a candidate
    end = torch.tensor([[0.0, 0.0, 5.0, 0.0, 4.0, 0.0]])  # the best end (2) lies before the best start (3)
    mask = torch.tensor([[False, True, True, True, True, True]])
    starts, ends, _ = best_spans(start, end, mask, max_answer_length=30)
    assert (int(starts[0]), int(ends[0])) == (3, 4)
    starts, ends, _ = best_spans(start, end, mask, max_answer_length=1)
    assert int(ends[0]) == int(starts[0])


def test_best_spans_ignores_padding_columns():
    start, end = torch.randn(2, 7), torch.randn(2, 7)
    mask = torch.ones(2, 7, dtype=torch.bool)
    padded = [torch.cat([x, torch.full((2, 4), 50.0)], 1) for x in (start, end)]
    padded_mask = torch.cat([mask, torch.zeros(2, 4, dtype=torch.bool)], 1)
    for a, b in zip(best_spans(start, end, mask), best_spans(*padded, padded_mask)):
        torch.testing.assert_close(a, b)


def test_best_spans_rejects_bad_input():
    x = torch.zeros(2, 5)
    with pytest.raises(ValueError, match="shape"):
        best_spans(x, torch.zeros(2, 6), torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="max_answer_length"):
        best_spans(x, x, torch.ones(2, 5, dtype=torch.bool), max_answer_length=0)
    with pytest.raises(ValueError, match="Row 1 has no candidate"):
        best_spans(x, x, torch.tensor([[True] * 5, [False] * 5]))


class SpotTheWords(nn.Module):
    """A stand-in QA model: the answer starts at token id `start_id` and ends at `end_id`, wherever they occur."""

    def __init__(self, start_id: int, end_id: int):
        super().__init__()
        self.start_id, self.end_id = start_id, end_id
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the helper a device

    def forward(self, input_ids, **kwargs) -> QuestionAnsweringModelOutput:
        return QuestionAnsweringModelOutput(
            start_logits=20.0 * (input_ids == self.start_id).float(), end_logits=20.0 * (input_ids == self.end_id).float()
        )


def test_answer_is_the_right_span_of_the_original_context(tokenizer):
    start_id = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("assert")[0])
    end_id = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("statement")[-1])
    model = SpotTheWords(start_id, end_id)
    question = "Which statement is the assert statement?"  # the same words in the question must not be chosen
    context = "In Python,  the ASSERT Statement checks a condition."
    (result,) = answer_spans(model, tokenizer, question, context)
    assert result["answer"] == "ASSERT Statement"  # original casing and spacing, although the tokenizer lower-cases
    assert (result["start"], result["end"]) == (context.index("ASSERT"), context.index("ASSERT") + len("ASSERT Statement"))
    assert result["score"] == pytest.approx(1.0, abs=1e-3)


def test_answers_are_batched_and_padding_invariant(tokenizer):
    config = ScratchBertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    model = ScratchBertForQuestionAnswering(config).eval()
    questions = ["What is a module?", "What raises AssertionError?", "Why?"]
    contexts = [
        "A module is a file containing Python definitions and statements.",
        "The assert statement raises AssertionError when its condition is false, unless optimisation is on.",
        "Because.",
    ]
    together = answer_spans(model, tokenizer, questions, contexts, batch_size=2, max_answer_length=5)
    alone = [answer_spans(model, tokenizer, q, c, max_answer_length=5)[0] for q, c in zip(questions, contexts)]
    assert [r["answer"] for r in together] == [r["answer"] for r in alone]
    assert [(r["start"], r["end"]) for r in together] == [(r["start"], r["end"]) for r in alone]
    assert [r["score"] for r in together] == pytest.approx([r["score"] for r in alone], rel=1e-4)
    for r, context in zip(together, contexts):
        assert r["answer"] == context[r["start"] : r["end"]] and r["answer"]
        assert 0.0 < r["score"] <= 1.0


def test_answer_spans_rejects_bad_input(tokenizer):
    model = SpotTheWords(5, 6)
    with pytest.raises(ValueError, match="2 questions but 1 contexts"):
        answer_spans(model, tokenizer, ["a", "b"], ["c"])
    with pytest.raises(TypeError, match="fast tokenizer"):
        answer_spans(model, object(), "a", "b")
    with pytest.raises(ValueError, match="no candidate"):
        answer_spans(model, tokenizer, "what?", "")


# ---------------------------------------------------------------- long contexts: overlapping windows

FILLER = "module "  # one token in the test tokenizer: window edges fall where the test puts them


def spot_assert_statement(tokenizer) -> SpotTheWords:
    """The stand-in model whose answer is 'ASSERT Statement' wherever it occurs."""
    start_id = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("assert")[0])
    end_id = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("statement")[-1])
    return SpotTheWords(start_id, end_id)


def windows(tokenizer, question, context, max_length, stride) -> list[list[int]]:
    """The context token ids of each window the helper reads."""
    enc = tokenizer(question, context, truncation="only_second", max_length=max_length, stride=stride,
                    return_overflowing_tokens=True)
    return [[t for t, s in zip(ids, enc.sequence_ids(w)) if s == 1] for w, ids in enumerate(enc["input_ids"])]


def test_answer_after_the_first_window_is_found(tokenizer):
    model = spot_assert_statement(tokenizer)
    question, tail = "Which statement?", "In Python, the ASSERT Statement checks a condition."
    context = FILLER * 40 + tail
    seen = windows(tokenizer, question, context, max_length=24, stride=4)
    assert len(seen) >= 3 and model.start_id not in seen[0]  # truncation alone would never see the answer
    (result,) = answer_spans(model, tokenizer, question, context, max_length=24, stride=4)
    start = context.index("ASSERT")
    assert (result["answer"], result["start"], result["end"]) == ("ASSERT Statement", start, start + 16)
    assert result["score"] == pytest.approx(1.0, abs=1e-3)


def test_stride_recovers_an_answer_cut_by_a_window_edge(tokenizer):
    model = spot_assert_statement(tokenizer)
    question, max_length = "Which statement?", 24
    for k in range(1, 40):  # place 'assert' as the last context token of the first window
        context = FILLER * k + "the ASSERT Statement checks a condition."
        first = windows(tokenizer, question, context, max_length, stride=0)[0]
        if first[-1] == model.start_id:
            break
    else:
        pytest.fail("no filler length puts 'assert' at the first window's edge")
    assert model.end_id not in first  # the answer is cut in two by the edge
    (cut,) = answer_spans(model, tokenizer, question, context, max_length=max_length, stride=0)
    assert cut["answer"] != "ASSERT Statement" and cut["score"] < 0.5  # a piece of the answer, and unsure of it
    (whole,) = answer_spans(model, tokenizer, question, context, max_length=max_length, stride=3)
    start = context.index("ASSERT")
    assert (whole["answer"], whole["start"], whole["end"]) == ("ASSERT Statement", start, start + 16)
    assert whole["score"] > 0.99


def test_windows_are_batched_and_padding_invariant(tokenizer):
    config = ScratchBertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    model = ScratchBertForQuestionAnswering(config).eval()
    questions = ["What is a module?", "Why?", "What does it check?"]
    contexts = [FILLER * 50 + "A module is a file.", "Because.", "The assert statement checks a condition. " * 6]
    kw = dict(max_length=32, stride=8, max_answer_length=4)
    together = answer_spans(model, tokenizer, questions, contexts, batch_size=2, **kw)
    alone = [answer_spans(model, tokenizer, q, c, batch_size=1, **kw)[0] for q, c in zip(questions, contexts)]
    assert [(r["start"], r["end"]) for r in together] == [(r["start"], r["end"]) for r in alone]
    assert [r["score"] for r in together] == pytest.approx([r["score"] for r in alone], rel=1e-4)
    for r, context in zip(together, contexts):
        assert r["answer"] == context[r["start"] : r["end"]] and r["answer"]


def test_window_settings_are_checked(tokenizer):
    model = SpotTheWords(5, 6)
    with pytest.raises(ValueError, match=r"`stride`=30 must be smaller than the \d+ context tokens"):
        answer_spans(model, tokenizer, "Which statement?", FILLER * 50, max_length=32, stride=30)
    with pytest.raises(ValueError, match="Question 0 has .* no room for context in max_length=8"):
        answer_spans(model, tokenizer, "Which statement is the assert statement?", "x", max_length=8, stride=0)
    with pytest.raises(ValueError, match="`stride` must be an integer >= 0, got -1"):
        answer_spans(model, tokenizer, "a", "b", stride=-1)
