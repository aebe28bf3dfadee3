"""Padding-free packing: several sequences in one row, `position_ids` restarting at each (what
`DataCollatorWithFlattening` builds). Attention stays inside each sequence for every backend, so a packed row gives
the logits of its sequences run alone, and the loss is the token-weighted loss of the separate sequences."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY
from transformers import AttentionInterface, DataCollatorWithFlattening, GPT2LMHeadModel
from transformers.masking_utils import find_packed_sequence_indices

from scratchformers import ScratchBertConfig, ScratchBertForMaskedLM, ScratchGPTConfig, ScratchGPTForCausalLM
from scratchformers.convert import to_hf
from scratchformers.masks import attention_inputs, flash_sequence_lengths, sequence_ids_from_position_ids

LENGTHS = [5, 3, 7]  # three sequences packed into one row of 15 tokens


def tiny_model(family: str, implementation: str, **overrides):
    """A tiny GPT or BERT with weights moved off their init (LayerNorms too), dropout off, in eval mode."""
    config_class, model_class = {
        "gpt": (ScratchGPTConfig, ScratchGPTForCausalLM),
        "bert": (ScratchBertConfig, ScratchBertForMaskedLM),
    }[family]
    model = model_class(config_class(**{**TINY, **overrides}))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.set_attn_implementation(implementation)
    return model.eval()


def sequences(lengths=LENGTHS, vocab: int = TINY["vocab_size"]) -> list[torch.Tensor]:
    return [torch.randint(3, vocab, (n,)) for n in lengths]


def pack(seqs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch `DataCollatorWithFlattening` makes of these sequences: input_ids, labels, position_ids (1, ΣT)."""
    return DataCollatorWithFlattening()([{"input_ids": s.tolist()} for s in seqs])


def logits_alone(model, seqs) -> torch.Tensor:
    """Each sequence run on its own (no position ids, no mask), logits concatenated along the sequence: (1, ΣT, V)."""
    with torch.no_grad():
        return torch.cat([model(input_ids=s[None]).logits for s in seqs], dim=1)


# ------------------------------------------------------------------------------------------- where sequences start


def test_sequence_ids_follow_transformers_rule():
    """s_t counts the restarts up to t: the same ids as transformers' own packed-sequence finder, any start value."""
    for position_ids in (
        torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]]),
        torch.tensor([[2, 3, 4, 2, 3, 2], [0, 1, 2, 3, 0, 1]]),  # RoBERTa-style start 2; two rows
    ):
        assert torch.equal(sequence_ids_from_position_ids(position_ids), find_packed_sequence_indices(position_ids))


def test_flash_lengths_equal_the_collators():
    """The flash kwargs derived from position ids equal what the collator returns with return_flash_attn_kwargs."""
    seqs = sequences()
    batch = DataCollatorWithFlattening(return_flash_attn_kwargs=True)([{"input_ids": s.tolist()} for s in seqs])
    derived = flash_sequence_lengths(sequence_ids_from_position_ids(batch["position_ids"]))
    for key in ("cu_seq_lens_q", "cu_seq_lens_k"):
        assert torch.equal(derived[key], batch[key])
    assert derived["max_length_q"] == derived["max_length_k"] == batch["max_length_q"] == max(LENGTHS)


def test_ordinary_calls_build_no_packing_mask():
    """Position ids that never restart, a padding mask, or past keys: no packing, so sdpa keeps its causal fast path."""
    one_sequence = torch.arange(6)[None]
    assert attention_inputs(None, 1, 6, 6, True, "sdpa", torch.float32, torch.device("cpu"), 0, one_sequence) == (None, {})
    restarting = torch.tensor([[0, 1, 2, 0, 1, 2]])
    mask, _ = attention_inputs(None, 1, 6, 6, True, "sdpa", torch.float32, torch.device("cpu"), 0, restarting)
    assert mask is not None and bool((mask[0, 0, 3, :3] < 0).all())  # the second sequence cannot see the first


# ------------------------------------------------------------------------------------ a packed row = sequences alone


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("family", ["gpt", "bert"])
def test_packed_row_gives_each_sequences_own_logits(family, implementation):
    model = tiny_model(family, implementation)
    seqs = sequences()
    batch = pack(seqs)
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits  # (1, 15, V)
    torch.testing.assert_close(packed, logits_alone(model, seqs), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_packed_rows_in_a_batch(implementation):
    """Two rows, each packing different sequences (the batch-level (B, T) rule, as in transformers' masking)."""
    model = tiny_model("gpt", implementation)
    first, second = sequences([4, 6]), sequences([7, 3])
    rows = [pack(first), pack(second)]
    with torch.no_grad():
        packed = model(
            input_ids=torch.cat([r["input_ids"] for r in rows]), position_ids=torch.cat([r["position_ids"] for r in rows])
        ).logits
    torch.testing.assert_close(packed, torch.cat([logits_alone(model, first), logits_alone(model, second)]),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_packed_row_matches_hf_gpt2_with_the_same_weights(implementation):
    """transformers' GPT-2 keeps packed sequences apart (in a training-style forward: no cache); ours agrees."""
    ours = tiny_model("gpt", implementation)
    hf = to_hf(ours).eval()
    assert isinstance(hf, GPT2LMHeadModel)
    batch = pack(sequences())
    with torch.no_grad():
        theirs = hf(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        mine = ours(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["gpt", "bert"])
def test_packed_row_longer_than_the_position_table(family):
    """The limit is on the position ids, not the row: 18 tokens through a table of 8 positions, each id < 8."""
    model = tiny_model(family, "sdpa", max_position_embeddings=8)
    seqs = sequences([6, 8, 4])
    batch = pack(seqs)
    assert batch["input_ids"].shape[1] > 8 and int(batch["position_ids"].max()) < 8
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits
    torch.testing.assert_close(packed, logits_alone(model, seqs), atol=1e-5, rtol=1e-5)


def test_position_ids_beyond_the_table_are_refused():
    model = tiny_model("gpt", "sdpa", max_position_embeddings=8)
    batch = pack(sequences([6, 9]))  # the second sequence reaches position 8
    with pytest.raises(ValueError, match=r"`position_ids` contains position 8, outside \[0, 7\]"):
        model(input_ids=batch["input_ids"], position_ids=batch["position_ids"])
    with pytest.raises(ValueError, match="exceeds `max_position_embeddings`=8"):  # no position ids: the row counts
        model(input_ids=batch["input_ids"])


# ------------------------------------------------------------------------------------------------------ the loss


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_collator_loss_is_the_token_weighted_loss_of_the_sequences(implementation):
    """The collator puts -100 at each sequence's first label, so no sequence is scored on its neighbour; the mean
    over the packed row weights each sequence by its n − 1 predicted tokens."""
    model = tiny_model("gpt", implementation)
    seqs = sequences()
    with torch.no_grad():
        packed_loss = model(**pack(seqs)).loss
        total = sum(F.cross_entropy(model(input_ids=s[None]).logits[0, :-1], s[1:], reduction="sum") for s in seqs)
    expected = total / sum(len(s) - 1 for s in seqs)
    torch.testing.assert_close(packed_loss, expected, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------- flash backends

FLASH_CALLS: list[dict] = []


def reference_flash_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Stands in for a flash backend on CPU: with `cu_seq_lens_q/k` it attends inside each flattened segment (what
    flash_attn_varlen_func computes), else over the whole row, causal when the module is. (B, H, T, D) → (B, T, H, D)."""
    FLASH_CALLS.append({"mask": attention_mask, **kwargs})
    B, H, T, D = query.shape
    causal = module.is_causal and T > 1
    if kwargs.get("cu_seq_lens_q") is None:
        out = F.scaled_dot_product_attention(query, key, value, is_causal=causal, scale=scaling)
        return out.transpose(1, 2), None
    q, k, v = (t.transpose(1, 2).reshape(B * T, H, D).transpose(0, 1) for t in (query, key, value))  # (H, B·T, D)
    bounds = kwargs["cu_seq_lens_q"].tolist()
    parts = [F.scaled_dot_product_attention(q[:, a:b], k[:, a:b], v[:, a:b], is_causal=module.is_causal, scale=scaling)
             for a, b in zip(bounds[:-1], bounds[1:])]
    return torch.cat(parts, dim=1).transpose(0, 1).reshape(B, T, H, D), None


AttentionInterface.register("flash_reference", reference_flash_attention)


@pytest.mark.parametrize("family", ["gpt", "bert"])
def test_flash_backends_get_the_sequence_lengths(family):
    """A backend named flash* gets no mask and the collator's cu_seq_lens/max_length for a packed row; with them a
    varlen kernel gives each sequence its own logits. Unpacked calls get no such kwargs."""
    model = tiny_model(family, "eager")
    model.config._attn_implementation = "flash_reference"  # a CPU stand-in for flash_attention_2/3
    seqs = sequences()
    batch = DataCollatorWithFlattening(return_flash_attn_kwargs=True)([{"input_ids": s.tolist()} for s in seqs])
    FLASH_CALLS.clear()
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits
    assert len(FLASH_CALLS) == TINY["num_hidden_layers"]
    for call in FLASH_CALLS:
        assert call["mask"] is None
        assert torch.equal(call["cu_seq_lens_q"], batch["cu_seq_lens_q"])
        assert call["max_length_q"] == call["max_length_k"] == batch["max_length_q"]
    FLASH_CALLS.clear()
    alone = logits_alone(model, seqs)
    assert all("cu_seq_lens_q" not in call for call in FLASH_CALLS)
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # the collator's own flash kwargs are accepted too (we derive the same from position_ids)
        torch.testing.assert_close(model(**{k: v for k, v in batch.items() if k != "labels"}).logits, packed)


# ------------------------------------------------------------------------------------------ scratchformers train clm


def test_train_clm_packing_scores_the_token_weighted_loss_of_the_lines(tmp_path):
    """`train clm --packing`: each validation line is one sequence and the eval batch one padding-free row; with every
    line in one batch, eval_loss is the token-weighted loss of the lines run alone through the saved model."""
    from journey_helpers import tiny_config_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from scratchformers.data import DATA_DIR
    from scratchformers.examples import run_clm

    lines = (DATA_DIR / "prose" / "train.txt").read_text().splitlines()
    train, validation = tmp_path / "train.txt", tmp_path / "validation.txt"
    train.write_text("\n".join(lines[:80]))
    validation.write_text("\n".join(lines[80:88]))
    out = tmp_path / "packed"
    metrics = run_clm.main([
        "--config", str(tiny_config_file(tmp_path)), "--train_file", str(train), "--validation_file", str(validation),
        "--vocab_size", "300", "--block_size", "24", "--packing", "--output_dir", str(out), "--max_steps", "2",
        "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "64", "--report_to", "none",
        "--use_cpu", "true", "--save_strategy", "no", "--disable_tqdm", "true",
    ])  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    total, count = 0.0, 0
    with torch.no_grad():
        for line in filter(str.strip, lines[80:88]):
            ids = torch.tensor(tokenizer(line, truncation=True, max_length=24)["input_ids"])
            if len(ids) >= 2:
                total += F.cross_entropy(model(ids[None]).logits[0, :-1], ids[1:], reduction="sum").item()
                count += len(ids) - 1
    assert count > 24  # several lines, so a leak across them would change the loss
    assert metrics["eval_loss"] == pytest.approx(total / count, abs=1e-5)
