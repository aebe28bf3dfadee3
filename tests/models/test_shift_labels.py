"""`shift_labels=` (already shifted targets, −100 padded: what the Trainer passes under context parallelism) gives
the loss of the unshifted `labels`, and GPT-2's loss for the same `shift_labels` with the same weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import transformers

from scratchformers import ScratchGPTConfig, ScratchGPTForCausalLM
from scratchformers.convert import from_hf


@pytest.fixture
def gpt_pair():
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=61, n_positions=32, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, pad_token_id=0, bos_token_id=1, eos_token_id=2)).eval()
    return hf, from_hf(hf).eval()


def batch():
    x = torch.randint(3, 61, (3, 9))
    labels = x.clone()
    labels[0, :4] = -100  # a prompt left out of the loss
    labels[2, -3:] = -100  # right padding
    shifted = F.pad(labels[:, 1:], (0, 1), value=-100)  # what the Trainer builds from labels
    return x, labels, shifted


def test_shift_labels_give_the_loss_of_the_unshifted_labels_and_gpt2s(gpt_pair):
    hf, ours = gpt_pair
    x, labels, shifted = batch()
    with torch.no_grad():
        by_labels = ours(x, labels=labels).loss
        by_shift = ours(x, shift_labels=shifted).loss
        by_both = ours(x, labels=labels, shift_labels=shifted).loss  # the Trainer passes both
        gpt2 = hf(x, labels=labels, shift_labels=shifted).loss  # GPT-2 scores shift_labels only alongside labels
    torch.testing.assert_close(by_shift, by_labels)
    torch.testing.assert_close(by_both, by_labels)
    torch.testing.assert_close(by_shift, gpt2, atol=1e-5, rtol=1e-5)


def test_shift_labels_are_used_as_they_are_when_given_with_labels(gpt_pair):
    """Under context parallelism a rank's slice of `labels` cannot be shifted locally (its last target is on the next
    rank): `shift_labels` win, as in transformers' ForCausalLMLoss."""
    hf, ours = gpt_pair
    x, labels, _ = batch()
    other = torch.randint(3, 61, x.shape)  # targets no shift of `labels` gives
    other[1, -1] = -100
    with torch.no_grad():
        ours_loss = ours(x, labels=labels, shift_labels=other, num_items_in_batch=20).loss
        gpt2_loss = hf(x, labels=labels, shift_labels=other, num_items_in_batch=20).loss
        logits = ours(x).logits
    expected = F.cross_entropy(logits.reshape(-1, 61), other.reshape(-1), ignore_index=-100, reduction="sum") / 20
    torch.testing.assert_close(ours_loss, expected)
    torch.testing.assert_close(ours_loss, gpt2_loss, atol=1e-5, rtol=1e-5)


def test_shift_labels_are_not_a_label_column_the_trainer_requires(tiny, tmp_path):
    """The Trainer treats every forward parameter naming "label" as a label column and, in evaluation, computes the
    loss only for batches holding all of them: a named `shift_labels` parameter cost `eval_loss` (as for GPT-2, it
    comes through **kwargs)."""
    from datasets import Dataset

    model = ScratchGPTForCausalLM(ScratchGPTConfig(**tiny))
    x = torch.randint(3, 64, (4, 6))
    rows = Dataset.from_dict({"input_ids": x.tolist(), "labels": x.tolist()})
    args = transformers.TrainingArguments(str(tmp_path), per_device_eval_batch_size=2, report_to=[], use_cpu=True)
    trainer = transformers.Trainer(model=model, args=args, eval_dataset=rows)
    assert trainer.label_names == ["labels"]
    assert "eval_loss" in trainer.evaluate()


def test_bad_shift_labels_are_refused_by_name(tiny):
    model = ScratchGPTForCausalLM(ScratchGPTConfig(**tiny))
    x = torch.randint(3, 64, (2, 5))
    with pytest.raises(ValueError, match=r"`shift_labels` must have shape \(2, 5\)"):
        model(x, shift_labels=torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="`shift_labels` contains 64"):
        model(x, shift_labels=torch.full((2, 5), 64))


def test_trainer_step_with_shift_labels_trains_like_labels(tiny, tmp_path):
    """A Trainer batch carrying `shift_labels` (as context parallelism makes it) trains to the same weights."""
    from datasets import Dataset

    x, labels, shifted = batch()
    weights = {}
    for key, data in (("labels", dict(labels=labels)), ("shift_labels", dict(shift_labels=shifted))):
        torch.manual_seed(0)
        model = ScratchGPTForCausalLM(ScratchGPTConfig(**tiny))
        rows = Dataset.from_dict({"input_ids": x.tolist(), **{k: v.tolist() for k, v in data.items()}})
        args = transformers.TrainingArguments(str(tmp_path / key), per_device_train_batch_size=3, max_steps=2,
                                              learning_rate=1e-2, report_to=[], save_strategy="no", use_cpu=True,
                                              logging_strategy="no", seed=0, data_seed=0,
                                              remove_unused_columns=False)  # shift_labels is no named parameter
        transformers.Trainer(model=model, args=args, train_dataset=rows).train()
        weights[key] = model.lm_head.weight.detach().clone()
    torch.testing.assert_close(weights["shift_labels"], weights["labels"], atol=1e-6, rtol=1e-5)
