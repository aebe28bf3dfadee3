"""The LM losses backpropagate through the output layer only at labelled positions (MLM's masked tokens, a prompt
masked out of a fine-tuning loss, target padding) — yet give exactly the plain computation's loss, gradients and
logits, and the logits stay differentiable everywhere."""

import pytest
import torch
import torch.nn.functional as F
from families import FAMILIES

from scratchformers.losses import SPLIT_BELOW, next_token_labels


def _model(family: str, tiny: dict):
    extra = {"final_logits_bias": True} if family == "transformer" else {}
    model = FAMILIES[family].lm(FAMILIES[family].config(**extra))
    if family == "transformer":  # a non-zero output bias, so the split head must add it on both row sets
        model.final_logits_bias.normal_()
    return model


def _labels(ids: torch.Tensor, fraction: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    labels = torch.where(torch.rand(ids.shape, generator=g) < fraction, ids, torch.full_like(ids, -100))
    labels[0, 1] = ids[0, 1] if fraction else -100
    return labels


def _inputs(family: str, ids: torch.Tensor) -> dict:
    seq2seq = family in ("transformer", "rnn")
    return {"input_ids": ids, "decoder_input_ids": ids} if seq2seq else {"input_ids": ids}


def _rows_through_the_output_layer(model) -> list[int]:
    """A list that records, for each backward pass through `model.lm_head`, how many rows it ran on."""
    rows = []

    def on_forward(module, args, out):
        if out.requires_grad:
            out.register_hook(lambda grad: rows.append(grad.shape[:-1].numel()))

    model.lm_head.register_forward_hook(on_forward)
    return rows


def _grads(model) -> dict[str, torch.Tensor]:
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return grads


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("fraction", [0.0, 0.15, 0.5, 1.0])
def test_loss_gradients_and_logits_equal_the_plain_computation(tiny, family, fraction):
    torch.manual_seed(0)
    model = _model(family, tiny)
    ids = torch.randint(3, tiny["vocab_size"], (3, 10))
    labels = _labels(ids, fraction)
    inputs = _inputs(family, ids)
    rows = _rows_through_the_output_layer(model)

    out = model(**inputs, labels=labels)
    out.loss.backward()
    fast = _grads(model)
    fast_rows, rows[:] = list(rows), []

    logits = model(**inputs).logits  # the plain computation, written out
    targets = next_token_labels(labels) if family == "gpt" else labels
    plain_loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum") / (targets != -100).sum().clamp(min=1)
    plain_loss.backward()
    plain = _grads(model)
    torch.testing.assert_close(out.loss, plain_loss, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out.logits, logits, atol=1e-6, rtol=1e-5)
    assert fast.keys() == plain.keys()
    for name in plain:
        torch.testing.assert_close(fast[name], plain[name], atol=1e-6, rtol=1e-4, msg=name)

    scored = int((targets != -100).sum())
    split = 0 < scored <= SPLIT_BELOW * targets.numel()
    assert fast_rows == [scored if split else targets.numel()]  # rows through the output layer in backward

    # the returned logits stay differentiable everywhere: a user's own loss on them reaches every position
    model(**inputs, labels=labels).logits.square().mean().backward()
    through = _grads(model)
    model(**inputs).logits.square().mean().backward()
    for name, grad in _grads(model).items():
        torch.testing.assert_close(through[name], grad, atol=1e-6, rtol=1e-4, msg=name)


def test_gpt_fine_tuning_with_a_masked_prompt_uses_the_split(tiny):
    """Instruction-tuning style: the prompt's labels are −100, only the answer is scored."""
    torch.manual_seed(0)
    model = _model("gpt", tiny)
    ids = torch.randint(3, tiny["vocab_size"], (2, 12))
    labels = ids.clone()
    labels[:, :8] = -100  # prompt
    rows = _rows_through_the_output_layer(model)
    model(ids, labels=labels).loss.backward()
    assert rows == [2 * 4]  # positions 7…10 of each row predict the answer tokens 8…11: 4 rows each, not 12



def test_compiled_training_forward_takes_the_plain_path_with_the_same_loss(tiny):
    """Under torch.compile the row split (a data-dependent shape) is skipped: no graph break, the same loss."""
    torch.manual_seed(0)
    model = _model("gpt", tiny)
    ids = torch.randint(3, tiny["vocab_size"], (2, 12))
    labels = ids.clone()
    labels[:, :8] = -100
    eager = model(ids, labels=labels).loss
    explained = torch._dynamo.explain(model)(ids, labels=labels)
    assert explained.graph_break_count == 0, [b.reason for b in explained.break_reasons]
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)(ids, labels=labels).loss
    torch.testing.assert_close(compiled, eager, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cpu_cross_entropy_in_chunks_equals_one_call(monkeypatch, label_smoothing):
    from scratchformers import losses

    logits = torch.randn(7, 5, 11, requires_grad=True)
    labels = torch.randint(0, 11, (7, 5))
    labels[0, :3] = -100
    labels[6] = -100  # a chunk with nothing scored
    monkeypatch.setattr(losses, "CHUNK_ELEMENTS", 3 * 11)  # 3 rows per chunk: 12 chunks of (B·T = 35, V = 11)
    chunked = losses.token_cross_entropy(logits, labels, label_smoothing=label_smoothing)
    (grad_chunked,) = torch.autograd.grad(chunked, logits)
    flat = F.cross_entropy(logits.view(-1, 11), labels.view(-1), label_smoothing=label_smoothing)
    (grad_flat,) = torch.autograd.grad(flat, logits)
    torch.testing.assert_close(chunked, flat)
    torch.testing.assert_close(grad_chunked, grad_flat)
