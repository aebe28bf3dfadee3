"""One HF-parity test per converted architecture, generated from the conversion specs: for each spec's language-model
class (GPT2LMHeadModel, LlamaForCausalLM, …, BertForMaskedLM, MarianMTModel), HF's model with seeded random weights
and ours converted from it (`from_hf`) give

(a) the same logits,
(b) the same greedy tokens (models that generate),
(c) the same logits at the real positions of a padded batch as HF's batch and as each row run alone: left padding for
    decoder-only models (how they generate), right padding of the source for encoders (BERT, BART/Marian's encoder).

Tolerance: 1e-4 absolute on fp32 logits of size ~1. Both sides compute the same formulas in a different order (our fused
q/k/v projection, our attention path), so they differ by float32 rounding (≤ 1e-5 measured); a missing, swapped or
untransposed tensor moves logits by > 1e-2 because every weight is moved off its init (`twin_helpers.perturb`).
"""

from __future__ import annotations

import pytest
import torch
import transformers
from families import FAMILIES, TINY
from twin_helpers import max_diff, perturb

import scratchformers
from scratchformers.convert import from_hf
from scratchformers_light.conversions import SPECS

ATOL = 1e-4
NEW_TOKENS = 6

# Each architecture's tiny config: our family's tiny options (tests/families.py) under the spec's own renames, plus
# what the renames do not carry, in HF's spelling (layer counts of both stacks, key-value heads, a short window that
# the test sequences exceed, a decoder start token inside the tiny vocabulary).
HF_EXTRA = {
    "GPT-2": {},
    "Llama": {"num_key_value_heads": 2},
    "Qwen2": {"num_key_value_heads": 1},
    "Mistral": {"num_key_value_heads": 2, "sliding_window": 4},
    "BERT": {},
    "BART": {"encoder_layers": 2, "decoder_layers": 2, "decoder_start_token_id": 2},
    "Marian": {"encoder_layers": 2, "decoder_layers": 1, "decoder_start_token_id": 0, "scale_embedding": True},
}
LM_CLASSES = {family.lm.__name__ for family in FAMILIES.values()}
CASES = [(spec, head) for spec in SPECS for head in spec.classes if head.ours in LM_CLASSES]


def test_every_spec_has_a_language_model_class_and_a_tiny_config():
    assert [spec.name for spec, _ in CASES] == [spec.name for spec in SPECS]
    assert set(HF_EXTRA) == {spec.name for spec in SPECS}


def hf_config(spec) -> transformers.PretrainedConfig:
    """The spec's HF config class with `TINY` renamed as the spec renames it (a tuple: each HF name takes the value)."""
    kwargs = {}
    for ours, value in TINY.items():
        theirs = spec.renames.get(ours, ())
        for name in (theirs,) if isinstance(theirs, str) else theirs:
            kwargs[name] = value
    return getattr(transformers, spec.hf_config)(**{**kwargs, **HF_EXTRA[spec.name]})


def twins(spec, head) -> tuple[torch.nn.Module, torch.nn.Module]:
    """HF's model with seeded random weights, and ours converted from it."""
    torch.manual_seed(0)
    hf = perturb(getattr(transformers, head.hf)(hf_config(spec)))
    ours = from_hf(hf)
    assert type(ours) is getattr(scratchformers, head.ours)
    return hf, ours


def random_ids(shape: tuple[int, int], seed: int) -> torch.Tensor:
    """Seeded ids (B, T) that are no special token (pad 0, bos 1, eos 2)."""
    return torch.randint(3, TINY["vocab_size"], shape, generator=torch.Generator().manual_seed(seed))


def padded_batch(side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids (3, 9) whose rows 0 and 1 have 4 and 1 padding slots on `side`, and their attention mask."""
    x = random_ids((3, 9), seed=1)
    mask = torch.ones_like(x)
    for row, pads in ((0, 4), (1, 1)):
        mask[row, :pads] = 0
    if side == "right":
        mask = mask.flip(-1)
    return x.masked_fill(mask == 0, TINY["pad_token_id"]), mask


def logits(model, x: torch.Tensor, mask: torch.Tensor | None = None, decoder_ids: torch.Tensor | None = None,
           hf: bool = False) -> torch.Tensor:
    """Logits (B, T, V) for ids `x` (B, S) (encoder-decoders: for the decoder prefix `decoder_ids` (B, T)). HF's
    decoder-only models are given the positions generate() gives them, counted over real tokens (GPT-2's learned
    positions would otherwise count the left padding); ours derive them from the mask."""
    kwargs = {} if mask is None else {"attention_mask": mask}
    if decoder_ids is not None:
        kwargs["decoder_input_ids"] = decoder_ids
    elif hf and mask is not None:
        kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        return model(x, **kwargs).logits


@pytest.mark.parametrize("spec, head", CASES, ids=[head.hf for _, head in CASES])
def test_converted_model_gives_hf_logits_greedy_tokens_and_padded_batch_logits(spec, head):
    hf, ours = twins(spec, head)
    seq2seq = ours.config.is_encoder_decoder
    generates = type(ours).can_generate()
    x = random_ids((2, 10), seed=3)
    prefix = random_ids((3, 5), seed=4) if seq2seq else None  # a decoder prefix per source row (encoder-decoders)

    # (a) the same logits
    assert max_diff(logits(hf, x, decoder_ids=prefix[:2] if seq2seq else None, hf=True),
                    logits(ours, x, decoder_ids=prefix[:2] if seq2seq else None)) <= ATOL

    # (c) a padded batch: the same logits at real positions as HF's batch, and as each row alone
    x, mask = padded_batch("left" if generates and not seq2seq else "right")
    ours_batch, hf_batch = logits(ours, x, mask, prefix), logits(hf, x, mask, prefix, hf=True)
    real = torch.ones(ours_batch.shape[:2], dtype=torch.bool) if seq2seq else mask.bool()  # the prefix: no padding
    assert max_diff(ours_batch[real], hf_batch[real]) <= ATOL
    for row in range(len(x)):
        alone = logits(ours, x[row : row + 1, mask[row].bool()], decoder_ids=prefix[row : row + 1] if seq2seq else None)
        assert max_diff(ours_batch[row][real[row]], alone[0]) <= ATOL

    # (b) the same greedy tokens, for the padded batch
    if generates:
        settings = dict(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False)
        expected = hf.generate(x, attention_mask=mask, **settings)
        assert expected.shape[1] == (1 if seq2seq else x.shape[1]) + NEW_TOKENS
        assert torch.equal(ours.generate(x, attention_mask=mask, **settings), expected)
