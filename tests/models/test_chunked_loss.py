"""Chunked cross-entropy (`losses.chunked_cross_entropy`): a training forward with labels at a large positions ×
vocabulary returns the loss without the (B, T, V) logits, running the output layer and the loss a chunk of positions
at a time, forward and backward — with the loss and every parameter gradient of the unchunked path.

Tolerance: the two paths run the same operations on every row (head, log-softmax, its gradient), so they differ only
in the order float32 sums over rows are added up (the loss, and each head parameter's gradient Σ_rows g_rᵀ h_r, are
summed per chunk and then across chunks instead of in one reduction) and in which matmul kernel blocking a chunk of
rows gets. That reassociation error is a few float32 ulps of the sum (≈ 1e-7 relative at these sizes), so every
comparison is `assert_close(atol=1e-6, rtol=1e-5)`: within 1e-5, and a wrong chunk (a missing row, a row counted twice,
a bad normaliser or smoothing term) moves the loss or a gradient by far more than that.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY
from families import FAMILIES
from transformers import DataCollatorWithFlattening, Trainer, TrainingArguments

from scratchformers import (
    ScratchGPTConfig,
    ScratchGPTForCausalLM,
    losses,
)
from scratchformers.losses import chunked_cross_entropy, next_token_labels, token_cross_entropy, wants_chunked_loss
from scratchformers.measure import allocated_peak_mib

CLOSE = dict(atol=1e-6, rtol=1e-5)
CHUNK_ROWS = 7  # rows per chunk in these tests: several chunks, the last one short
V = TINY["vocab_size"]


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of CHUNK_ROWS positions (the default budget would score these tiny batches in one chunk)."""
    monkeypatch.setitem(losses.LOSS_CHUNK_ELEMENTS, "cpu", CHUNK_ROWS * V)
    monkeypatch.setattr(losses, "LOSS_CHUNK_MIN_ROWS", 1)


def model_for(family: str, tied: bool = True, **overrides):
    """A tiny model of `family` in train mode (dropout off), weights moved off their init, a non-zero output bias."""
    extra = {"final_logits_bias": True} if family == "transformer" else {}
    config = FAMILIES[family].config(**extra, **overrides, tie_word_embeddings=tied)
    model = FAMILIES[family].lm(config).train()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        if family == "transformer":  # BART's output bias: the chunked head must add it too
            model.final_logits_bias.normal_()
    return model


def batch_for(family: str, batch: int = 3, length: int = 10) -> dict:
    """Inputs and labels with ignored positions (−100): a masked prompt, padding, random gaps."""
    ids = torch.randint(3, V, (batch, length))
    labels = torch.where(torch.rand(ids.shape) < 0.7, ids, torch.full_like(ids, -100))
    labels[0, :4] = -100
    inputs = {"input_ids": ids, "labels": labels}
    if family in ("transformer", "rnn"):
        inputs["decoder_input_ids"] = torch.randint(3, V, (batch, length))
    return inputs


def head_rows(module: torch.nn.Module) -> list[int]:
    """Records the number of rows of every forward call of `module` (recomputations in backward included)."""
    rows: list[int] = []
    module.register_forward_hook(lambda mod, args, out: rows.append(args[0].shape[:-1].numel()))
    return rows


def grads_of(model) -> dict[str, torch.Tensor]:
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def loss_and_grads(model, inputs: dict, **kwargs):
    out = model(**inputs, **kwargs)
    out.loss.backward()
    return out, grads_of(model)


def assert_same(chunked, plain) -> None:
    (out_c, grads_c), (out_p, grads_p) = chunked, plain
    torch.testing.assert_close(out_c.loss, out_p.loss, **CLOSE)
    assert grads_c.keys() == grads_p.keys() and grads_p
    for name in grads_p:
        torch.testing.assert_close(grads_c[name], grads_p[name], **CLOSE, msg=name)


# --------------------------------------------------------------------------------------- the same loss and gradients


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_loss_and_every_gradient_equal_the_unchunked_path(small_chunks, family, tied):
    """Every head that uses `logits_and_labelled_loss` (GPT, BERT MLM, both seq2seq heads), with a tied and an untied
    output layer, labels with −100 gaps: the same loss and parameter gradients, no logits, and the head run chunk by
    chunk on the labelled rows only."""
    model = model_for(family, tied)
    head = model.lm_head
    weight = head.decoder.weight if family == "bert" else head.weight
    assert (weight is model.get_input_embeddings().weight) == tied
    inputs = batch_for(family)
    targets = next_token_labels(inputs["labels"]) if family == "gpt" else inputs["labels"]
    scored = int((targets != -100).sum())
    rows = head_rows(head)

    plain = loss_and_grads(model, inputs, skip_logits=False)
    assert plain[0].logits is not None
    rows.clear()
    out = model(**inputs, skip_logits=True)
    forward_rows = list(rows)
    out.loss.backward()
    chunked = (out, grads_of(model))

    assert out.logits is None
    assert_same(chunked, plain)
    assert sum(forward_rows) == scored  # the labelled rows only, each once
    assert max(forward_rows) <= CHUNK_ROWS and len(forward_rows) == -(-scored // CHUNK_ROWS)
    assert rows == forward_rows  # backward ran no chunk again: the gradients were taken in the forward


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("family", ["gpt", "rnn"])
def test_a_plain_linear_head_has_its_backward_written_out(small_chunks, family, tied, monkeypatch):
    """An output layer that is a plain nn.Linear (no hooks, so not counted as the test above counts; the seq2seq
    heads hand it over when there is no output bias) goes through `_LinearLossWithGradients` (∂L/∂h = G W, ∂L/∂W += Gᵀh in place): the same loss and gradients, tied or not."""
    model, inputs = model_for(family, tied), batch_for(family)
    calls = []
    real = losses._LinearLossWithGradients.apply
    monkeypatch.setattr(losses._LinearLossWithGradients, "apply", lambda *a: calls.append(1) or real(*a))
    chunked = loss_and_grads(model, inputs, skip_logits=True)
    plain = loss_and_grads(model, inputs, skip_logits=False)
    assert calls == [1] and chunked[0].logits is None
    assert_same(chunked, plain)


@pytest.mark.parametrize("family", ["gpt", "bert"])  # the written-out output layer and the generic path
def test_a_retained_graph_backpropagated_twice_gives_twice_the_gradients(small_chunks, family):
    """`loss.backward(retain_graph=True)` twice accumulates exactly two times one backward's gradients, as the
    unchunked loss does: the gradients taken in the forward are scaled into new tensors, never in place."""
    model, inputs = model_for(family), batch_for(family)
    once = loss_and_grads(model, inputs, skip_logits=True)[1]
    out = model(**inputs, skip_logits=True)
    out.loss.backward(retain_graph=True)
    out.loss.backward()
    twice = grads_of(model)
    assert twice.keys() == once.keys() and once
    for name in once:
        torch.testing.assert_close(twice[name], 2 * once[name], **CLOSE, msg=name)


@pytest.mark.parametrize("num_items", [37, torch.tensor(37)], ids=["int", "tensor"])
def test_num_items_in_batch_normalises_the_sum(small_chunks, num_items):
    """The Trainer's `num_items_in_batch` (an int or a tensor) divides the summed loss, in both paths."""
    model, inputs = model_for("gpt"), batch_for("gpt")
    chunked = loss_and_grads(model, inputs, skip_logits=True, num_items_in_batch=num_items)
    plain = loss_and_grads(model, inputs, skip_logits=False, num_items_in_batch=num_items)
    assert_same(chunked, plain)
    logits = model(inputs["input_ids"]).logits
    expected = F.cross_entropy(logits.flatten(0, 1), next_token_labels(inputs["labels"]).flatten(), reduction="sum") / 37
    torch.testing.assert_close(chunked[0].loss, expected, **CLOSE)


def test_no_labelled_position_gives_zero_and_zero_gradients(small_chunks):
    """All labels −100: loss 0 (not NaN), and a zero gradient for every parameter the plain path reaches."""
    model, inputs = model_for("gpt"), batch_for("gpt")
    inputs["labels"] = torch.full_like(inputs["labels"], -100)
    chunked = loss_and_grads(model, inputs, skip_logits=True)
    plain = loss_and_grads(model, inputs, skip_logits=False)
    assert chunked[0].loss.item() == 0.0
    assert_same(chunked, plain)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("num_items", [None, 25])
def test_label_smoothing_and_ignore_index_in_the_loss_function(label_smoothing, num_items):
    """chunked_cross_entropy(head, h, y) = token_cross_entropy(head(h), y) with label smoothing (the smoothing term
    only over labelled rows, as F.cross_entropy's), −100 ignored, any normaliser; gradients for h and the head's
    parameters (a Linear with a bias)."""
    head = torch.nn.Linear(16, 50)
    h = torch.randn(4, 9, 16, requires_grad=True)
    y = torch.randint(0, 50, (4, 9))
    y[0, :5] = -100
    y[2] = -100
    chunked = chunked_cross_entropy(head, h, y, 50, num_items, label_smoothing, chunk_rows=5)
    grads_c = torch.autograd.grad(chunked, [h, head.weight, head.bias])
    plain = token_cross_entropy(head(h), y, num_items, label_smoothing)
    grads_p = torch.autograd.grad(plain, [h, head.weight, head.bias])
    torch.testing.assert_close(chunked, plain, **CLOSE)
    for c, p in zip(grads_c, grads_p):
        torch.testing.assert_close(c, p, **CLOSE)
    smoothed = losses.logits_and_labelled_loss(head, h, y, 50, num_items, skip_logits=True,
                                               label_smoothing=label_smoothing)
    assert smoothed[0] is None
    torch.testing.assert_close(smoothed[1], plain, **CLOSE)


@pytest.mark.parametrize("path", ["gradients in the forward", "recomputed (distributed, compiled)"])
def test_an_upstream_gradient_scales_every_gradient(path, monkeypatch):
    """The gradients are taken in the forward for an upstream gradient of 1 and scaled in backward: (3·L + 2·L')
    back-propagates 3× and 2× of the plain gradients (gradient accumulation, loss scaling, DPO's sums). The
    checkpointed path kept for distributed runs gives the same; a frozen head and hidden states need no gradient."""
    if path.startswith("recomputed"):
        monkeypatch.setattr(losses, "_distributed", lambda: True)
    head = torch.nn.Linear(16, 50)
    h = torch.randn(3, 7, 16, requires_grad=True)
    y = torch.randint(0, 50, (3, 7))
    chunked = chunked_cross_entropy(head, h, y, 50, chunk_rows=4)
    again = chunked_cross_entropy(head, h, y, 50, chunk_rows=4)
    grads_c = torch.autograd.grad(3 * chunked + 2 * again, [h, head.weight, head.bias])
    plain = token_cross_entropy(head(h), y)
    grads_p = torch.autograd.grad(5 * plain, [h, head.weight, head.bias])
    for c, p in zip(grads_c, grads_p):
        torch.testing.assert_close(c, p, **CLOSE)
    head.requires_grad_(False)
    frozen = chunked_cross_entropy(head, h.detach(), y, 50, chunk_rows=4)
    assert not frozen.requires_grad
    torch.testing.assert_close(frozen, plain.detach(), **CLOSE)


# --------------------------------------------------------------------------------- LoRA, packing, Trainer, compile


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_a_lora_wrapped_head_runs_its_own_forward_per_chunk(small_chunks, tied):
    """peft replaces `lm_head` by a LoRA Linear: the chunked path calls that module, so the adapter is in the loss,
    and lora_A/lora_B get the unchunked gradients."""
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["lm_head"], init_lora_weights=False)
    model = peft.get_peft_model(model_for("gpt", tied), config)
    lora_head = model.base_model.model.lm_head
    assert type(lora_head).__module__.startswith("peft")
    inputs = batch_for("gpt")
    rows = head_rows(lora_head)
    chunked = loss_and_grads(model, inputs, skip_logits=True)
    assert max(rows) <= CHUNK_ROWS and chunked[0].logits is None
    plain = loss_and_grads(model, inputs, skip_logits=False)
    assert_same(chunked, plain)
    assert {name for name in chunked[1]} == {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_A" in name for name in chunked[1]) and any("lora_B" in name for name in chunked[1])


@pytest.mark.parametrize("targets", ["labels", "shift_labels"])
def test_packed_sequences(small_chunks, targets):
    """Padding-free packing (`DataCollatorWithFlattening`: one row, position ids restarting, −100 at each sequence
    start), with `labels` or already shifted `shift_labels` (what the Trainer passes under context parallelism)."""
    model = model_for("gpt")
    packed = DataCollatorWithFlattening()([{"input_ids": torch.randint(3, V, (n,)).tolist()} for n in (6, 4, 9)])
    if targets == "shift_labels":
        packed["shift_labels"] = next_token_labels(packed.pop("labels"))
    chunked = loss_and_grads(model, packed, skip_logits=True)
    plain = loss_and_grads(model, packed, skip_logits=False)
    assert_same(chunked, plain)


def _trainer_run(tmp_path, name: str, chunk: bool, monkeypatch, **arguments):
    """One Trainer run of 2 optimizer steps (SGD, 2 accumulated micro-batches of different label counts) from the same
    weights and data; returns (model, logged losses, rows per lm_head forward)."""
    monkeypatch.setattr(losses, "CHUNKED_LOSS_ABOVE", 0 if chunk else 1 << 62)  # the default decision, forced
    torch.manual_seed(0)
    model = model_for("gpt")
    rows = head_rows(model.lm_head)
    g = torch.Generator().manual_seed(1)
    data = []
    for i in range(8):
        ids = torch.randint(3, V, (12,), generator=g)
        labels = ids.clone()
        labels[: 2 + i] = -100  # a prompt of a different length each: micro-batches hold different label counts
        data.append({"input_ids": ids, "labels": labels})
    args = TrainingArguments(output_dir=str(tmp_path / name), per_device_train_batch_size=2,
                             gradient_accumulation_steps=2, max_steps=2, optim="sgd", learning_rate=0.5,
                             lr_scheduler_type="constant", logging_steps=1, save_strategy="no", report_to=[],
                             use_cpu=True, seed=0, dataloader_num_workers=0, disable_tqdm=True, **arguments)
    trainer = Trainer(model=model, args=args, train_dataset=data)
    trainer.train()
    logged = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return model, logged, rows


def test_trainer_steps_are_unchanged(small_chunks, tmp_path, monkeypatch):
    """The Trainer (model.train(), labels, `num_items_in_batch` over accumulated micro-batches) takes the chunked path
    by default at a large positions × vocabulary, and trains to the same weights and logged losses."""
    chunked_model, chunked_losses, chunked_rows = _trainer_run(tmp_path, "chunked", True, monkeypatch)
    plain_model, plain_losses, plain_rows = _trainer_run(tmp_path, "plain", False, monkeypatch)
    assert max(chunked_rows) <= CHUNK_ROWS < max(plain_rows)  # chunks in one run, whole row sets in the other
    torch.testing.assert_close(torch.tensor(chunked_losses), torch.tensor(plain_losses), **CLOSE)
    plain_weights = dict(plain_model.named_parameters())
    for name, p in chunked_model.named_parameters():
        torch.testing.assert_close(p, plain_weights[name], **CLOSE, msg=name)


def test_trainer_label_smoothing_still_gets_logits(small_chunks, tmp_path, monkeypatch):
    """With `label_smoothing_factor` the Trainer pops the labels and smooths the logits itself: the model, called
    without labels, still returns them while the chunked loss is on by default, and the loss is the smoothed one."""
    monkeypatch.setattr(losses, "CHUNKED_LOSS_ABOVE", 0)
    model, inputs = model_for("gpt"), batch_for("gpt")
    args = TrainingArguments(output_dir=str(tmp_path), label_smoothing_factor=0.1, report_to=[], use_cpu=True)
    loss = Trainer(model=model, args=args).compute_loss(model, dict(inputs))
    logits = model(inputs["input_ids"]).logits[:, :-1]
    targets = inputs["labels"][:, 1:]
    expected = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), label_smoothing=0.1)
    torch.testing.assert_close(loss, expected, **CLOSE)


def test_compiled_chunked_loss_is_one_graph_with_the_same_loss(small_chunks):
    """torch.compile(fullgraph=True): the chunk checkpoints trace without a graph break (every row scored there:
    selecting the labelled rows would be a data-dependent shape), the same loss and gradients."""
    model, inputs = model_for("gpt"), batch_for("gpt")
    plain = loss_and_grads(model, inputs, skip_logits=False)
    out = torch.compile(model, backend="aot_eager", fullgraph=True)(**inputs, skip_logits=True)
    out.loss.backward()
    assert out.logits is None
    assert_same((out, grads_of(model)), plain)


# ------------------------------------------------------------------------------------------ when, and the logits


def test_on_by_default_when_training_with_labels_at_a_large_vocabulary(monkeypatch):
    """The default: chunked when training with labels and positions × vocabulary ≥ CHUNKED_LOSS_ABOVE (2²⁴), e.g.
    2 × 256 tokens at SmolLM2's 49,152; never in evaluation, without labels, or for small batches."""
    labels = torch.zeros(2, 256, dtype=torch.long)
    assert wants_chunked_loss(None, True, labels, 49152)
    assert wants_chunked_loss(None, True, torch.zeros(4, 1024, dtype=torch.long), 49152)
    assert not wants_chunked_loss(None, False, labels, 49152)  # model.eval(): logits, as the Trainer's evaluation needs
    assert not wants_chunked_loss(None, True, None, 49152)
    assert not wants_chunked_loss(None, True, torch.zeros(8, 128, dtype=torch.long), 8192)  # 8.4 M < 16.8 M
    assert wants_chunked_loss(True, False, labels, 64) and not wants_chunked_loss(False, True, labels, 49152)
    with pytest.raises(ValueError, match="skip_logits=True"):
        wants_chunked_loss(True, True, None, 49152)


def test_logits_are_returned_when_asked_for(small_chunks, monkeypatch):
    """Chunked by default here (threshold lowered): no logits in training; `skip_logits=False` brings them back (the
    unchunked path, today's output); evaluation returns them; `skip_logits=True` gives the loss alone anywhere."""
    monkeypatch.setattr(losses, "CHUNKED_LOSS_ABOVE", 0)
    model, inputs = model_for("gpt"), batch_for("gpt")
    default = model(**inputs)
    asked = model(**inputs, skip_logits=False)
    assert default.logits is None and asked.logits is not None
    torch.testing.assert_close(default.loss, asked.loss, **CLOSE)
    torch.testing.assert_close(asked.logits, model(inputs["input_ids"]).logits)
    as_tuple = model(**inputs, return_dict=False)  # HF's tuple drops the None fields: (loss,)
    assert len(as_tuple) == 1
    torch.testing.assert_close(as_tuple[0], default.loss)
    model.eval()
    with torch.no_grad():
        evaluated = model(**inputs)
        loss_only = model(**inputs, skip_logits=True)
    assert evaluated.logits is not None and loss_only.logits is None
    torch.testing.assert_close(loss_only.loss, evaluated.loss, **CLOSE)
    with pytest.raises(ValueError, match="needs `labels`"):
        model(inputs["input_ids"], skip_logits=True)


# ------------------------------------------------------------------------------------------------------ memory


def test_peak_memory_of_forward_and_backward_is_smaller(monkeypatch):
    """A tiny model with a wide vocabulary (32,768 × 2,048 positions = 2²⁶ logits, 256 MiB in float32, chunking on by
    default): the peak allocation of forward + backward with the default chunked loss (chunks of 256 positions, 32 MiB
    of logits) is well under the unchunked one, which holds the logits, their saved log-softmax and their gradient at
    once."""
    vocab, batch, length = 32768, 8, 256
    model = ScratchGPTForCausalLM(ScratchGPTConfig(**{**TINY, "vocab_size": vocab, "max_position_embeddings": length}))
    model.train()
    ids = torch.randint(3, vocab, (batch, length))
    logits_bytes = batch * length * vocab * 4

    def step(**kwargs):
        def run():
            out = model(ids, labels=ids, **kwargs)
            out.loss.backward()
            del out
        return run

    assert wants_chunked_loss(None, True, ids, vocab)  # the default at this size
    model.zero_grad(set_to_none=True)
    plain = allocated_peak_mib(step(skip_logits=False)) * 2**20
    model.zero_grad(set_to_none=True)
    chunked = allocated_peak_mib(step()) * 2**20
    assert plain >= 2 * logits_bytes  # logits and log-probabilities (and then their gradient) of the whole batch
    assert chunked <= 0.5 * plain, (chunked / 2**20, plain / 2**20)
    assert chunked < logits_bytes  # a few chunks' buffers (32 MiB each), never the whole logits


def test_chunk_rows_follow_the_budget_but_never_fall_below_the_minimum():
    """loss_chunk_rows = max(LOSS_CHUNK_MIN_ROWS, budget // V): a small vocabulary gets the budget's rows, a large one
    the minimum (at 151,936 tokens the CPU budget alone would give 27 rows, each re-reading the whole output layer)."""
    budget = losses.LOSS_CHUNK_ELEMENTS["cpu"]
    assert losses.loss_chunk_rows(1000, "cpu") == budget // 1000 > losses.LOSS_CHUNK_MIN_ROWS
    assert budget // 151936 < losses.LOSS_CHUNK_MIN_ROWS == losses.loss_chunk_rows(151936, "cpu") == 256
    assert losses.loss_chunk_rows(151936, "meta") == 256 > losses.LOSS_CHUNK_ELEMENTS_DEFAULT // 151936  # not CPU
