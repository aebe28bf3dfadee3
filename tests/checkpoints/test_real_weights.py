"""Real trained Llama-architecture weights: llama2.c's stories260K (tests/data/stories260K, see its README).

transformers' LlamaForCausalLM gets the weights (`llama2c_helpers.llama2c_to_hf`) and is checked against llama2.c's
own forward pass written out from the raw tensors; then `from_hf` / `scratchformers convert` must give our model the
same logits (within 1e-4) and the same greedy tokens, cached and left-padded. Trained weights have the peaked
softmaxes and large activations that random test models lack; the architecture has grouped-query attention
(8 query heads, 4 key/value heads), a tied output layer and an FFN width (172) that is no multiple of anything.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import transformers
from llama2c_helpers import llama2c_to_hf, run_c_logits

from scratchformers import ScratchGPTForCausalLM
from scratchformers.convert import from_hf, main, to_hf

WEIGHTS = Path(__file__).parents[1] / "data" / "stories260K" / "stories260K.bin"
SHA256 = "9414d5a285453a7eab631713d171753232c978f6f97654211469aff8be93c8d6"  # as in the README
ATOL = 1e-4
BOS = 1


@pytest.fixture(scope="module")
def hf_model() -> transformers.LlamaForCausalLM:
    return llama2c_to_hf(WEIGHTS)


@pytest.fixture(scope="module")
def greedy_ids(hf_model) -> torch.Tensor:
    """Transformers' greedy continuation of BOS, 63 tokens: a context the model itself finds likely."""
    with torch.no_grad():
        return hf_model.generate(torch.tensor([[BOS]]), max_new_tokens=63, do_sample=False, min_new_tokens=63)


def test_the_shipped_file_is_the_documented_one():
    assert hashlib.sha256(WEIGHTS.read_bytes()).hexdigest() == SHA256


def test_transformers_llama_computes_what_llama2c_computes(hf_model, greedy_ids):
    with torch.no_grad():
        ours = hf_model(greedy_ids).logits[0]
    reference = run_c_logits(WEIGHTS, greedy_ids[0].tolist())
    assert (ours - reference).abs().max().item() <= ATOL
    assert reference.softmax(-1).max(-1).values.mean() > 0.3  # trained: far from uniform over 512 tokens


def test_converted_model_has_the_same_logits_and_greedy_tokens(hf_model, greedy_ids):
    ours = from_hf(hf_model).eval()
    assert isinstance(ours, ScratchGPTForCausalLM)
    assert ours.config.num_key_value_heads == 4 and ours.config.tie_word_embeddings
    with torch.no_grad():
        assert (ours(greedy_ids).logits - hf_model(greedy_ids).logits).abs().max().item() <= ATOL
        mine = ours.generate(torch.tensor([[BOS]]), max_new_tokens=63, do_sample=False, min_new_tokens=63)
    assert torch.equal(mine, greedy_ids)
    back = to_hf(ours)
    for name, tensor in hf_model.state_dict().items():
        assert torch.equal(back.state_dict()[name], tensor), name


def test_left_padded_batch_generates_as_each_prompt_alone(hf_model, greedy_ids):
    ours = from_hf(hf_model).eval()
    prompts = [greedy_ids[0, :12], greedy_ids[0, :5]]
    batch = torch.zeros(2, 12, dtype=torch.long)
    mask = torch.zeros(2, 12, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        batch[row, 12 - len(prompt):] = prompt
        mask[row, 12 - len(prompt):] = 1
    settings = dict(max_new_tokens=10, min_new_tokens=10, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        together = ours.generate(input_ids=batch, attention_mask=mask, **settings)
        theirs = hf_model.generate(input_ids=batch, attention_mask=mask, **settings)
        for row, prompt in enumerate(prompts):
            alone = ours.generate(prompt[None], **settings)
            assert torch.equal(together[row, 12:], alone[0, len(prompt):])
    assert torch.equal(together, theirs)


def test_convert_command_on_the_saved_checkpoint(hf_model, greedy_ids, tmp_path, capsys):
    hf_model.save_pretrained(tmp_path / "hf")
    assert main([str(tmp_path / "hf"), str(tmp_path / "ours")]) == 0
    assert "LlamaForCausalLM → ScratchGPTForCausalLM" in capsys.readouterr().out
    ours = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "ours").eval()
    assert isinstance(ours, ScratchGPTForCausalLM)
    with torch.no_grad():
        assert (ours(greedy_ids).logits - hf_model(greedy_ids).logits).abs().max().item() <= ATOL
