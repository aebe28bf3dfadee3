"""docs/self-attention.md is what scripts/self_attention_example.py renders from the committed checkpoint (so the page
cannot go stale), and the script's numbers equal the attention formula recomputed here from the raw weights with
plain tensor algebra (no package function)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from scratchformers import attention_walkthrough as example
from scratchformers.pretrained import current_weight_name

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "self_attention_example.py"
CHECKPOINT = ROOT / "docs" / "self-attention" / "checkpoint"
NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


def _numbers(text: str) -> tuple[str, list[float]]:
    """The text with every number replaced by '#', and the numbers."""
    return NUMBER.sub("#", text), [float(n.replace(",", "")) for n in NUMBER.findall(text)]


def run_script(*flags: str) -> subprocess.CompletedProcess:
    """scripts/self_attention_example.py with `flags`, as a user runs it."""
    return subprocess.run([sys.executable, str(SCRIPT), *flags], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained():
    """(model in eval mode, tokenizer) of the committed checkpoint."""
    return AutoModelForCausalLM.from_pretrained(CHECKPOINT).eval(), AutoTokenizer.from_pretrained(CHECKPOINT)


def test_committed_page_is_what_the_script_renders(tmp_path):
    run = run_script("--out", str(tmp_path / "page.md"))
    assert run.returncode == 0, run.stderr[-3000:]
    page = (tmp_path / "page.md").read_text()
    committed_text, committed_numbers = _numbers((ROOT / "docs" / "self-attention.md").read_text())
    text, numbers = _numbers(page)
    assert committed_text == text, "docs/self-attention.md is stale: run python scripts/self_attention_example.py"
    # the last printed digit may differ across CPUs/BLAS builds; nothing more
    assert numbers == pytest.approx(committed_numbers, abs=2e-3, rel=1e-4)


def test_numbers_equal_the_formula_from_the_raw_weights(trained):
    model, tokenizer = trained
    ex = example.walkthrough(model, tokenizer, example.SENTENCE, head=1)
    w = load_file(str(CHECKPOINT / "model.safetensors"))
    p = "model.decoder."
    ids = torch.tensor(tokenizer(example.SENTENCE)["input_ids"])
    T, C, H = len(ids), model.config.hidden_size, model.config.num_attention_heads
    D = C // H
    w = {current_weight_name(name): tensor for name, tensor in w.items()}  # (saved before `tokens` → `embed_tokens`)
    x = w[p + "embeddings.embed_tokens.weight"][ids] + w[p + "embeddings.positions.weight"][:T]
    X = F.layer_norm(x, (C,), w[p + "layers.0.self_attn_residual.norm.weight"],
                     w[p + "layers.0.self_attn_residual.norm.bias"], model.config.layer_norm_eps)  # pre-LN
    qkv = X @ w[p + "layers.0.self_attn.qkv_proj.weight"].T + w[p + "layers.0.self_attn.qkv_proj.bias"]  # (T, 3C)
    q, k, v = (qkv[:, i * C + D : i * C + 2 * D] for i in range(3))  # head 1 of each
    scores = q @ k.T / math.sqrt(D)
    weights = torch.softmax(scores + torch.triu(torch.full((T, T), float("-inf")), 1), dim=-1)
    assert ex["tokens"] == tokenizer.convert_ids_to_tokens(ids)
    for name, expected in (("X", X), ("Q", q), ("K", k), ("V", v), ("scores", scores), ("weights", weights),
                           ("z", weights @ v)):
        torch.testing.assert_close(torch.tensor(ex[name]), expected, atol=1e-5, rtol=1e-4, msg=name)
    torch.testing.assert_close(torch.tensor(ex["weights"]).sum(-1), torch.ones(T))
    assert all(diff < 1e-5 for diff in ex["checks"].values()), ex["checks"]


def test_post_ln_model_attends_over_the_raw_embedding_sum(trained):
    """In a post-LN layer the LayerNorm comes after attention: X is E + P itself."""
    from scratchformers import ScratchGPTConfig, ScratchGPTForCausalLM

    _, tokenizer = trained
    torch.manual_seed(0)
    config = ScratchGPTConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                              intermediate_size=32, max_position_embeddings=32, norm_placement="post")
    model = ScratchGPTForCausalLM(config).eval()
    ex = example.walkthrough(model, tokenizer, example.SENTENCE)
    torch.testing.assert_close(torch.tensor(ex["X"]), torch.tensor(ex["E"]) + torch.tensor(ex["P"]))
    assert all(diff < 1e-5 for diff in ex["checks"].values()), ex["checks"]
    with pytest.raises(ValueError, match="heads 0 … 1"):
        example.walkthrough(model, tokenizer, example.SENTENCE, head=2)


def test_embedding_is_static_and_attention_output_contextual(trained):
    model, tokenizer = trained
    last = len(tokenizer(example.SENTENCE)["input_ids"]) - 1
    contrast = example.static_vs_contextual(model, tokenizer, example.SENTENCE, example.OTHERS, last)
    embedding, layer_input, attention, _ = contrast["rows"].values()
    for i in range(len(example.OTHERS)):
        assert embedding[i]["max_abs_diff"] == 0 and embedding[i]["cosine"] == pytest.approx(1.0)
        assert layer_input[i]["max_abs_diff"] == 0  # same token at the same position: the same X
        assert attention[i]["max_abs_diff"] > 1e-3 and attention[i]["cosine"] < 1 - 1e-5  # context changed it
    # a whole new context moves the vector further than one changed token
    assert attention[1]["cosine"] < attention[0]["cosine"]
    first = example.static_vs_contextual(model, tokenizer, example.SENTENCE, [example.FIRST_WORD_OTHER], 0)
    assert all(cells[0]["max_abs_diff"] < example.EQUAL for cells in first["rows"].values())  # sees only itself
    with pytest.raises(ValueError, match="not '·language'|not 'Ġlanguage'"):
        example.static_vs_contextual(model, tokenizer, example.SENTENCE, ["a b c d e f g h i j k l m n o p"], last)


@pytest.mark.parametrize("flags, named", [(["--head", "-1"], "--head"), (["--checkpoint", "docs"], "--checkpoint"),
                                          (["--train", "--checkpoint", "elsewhere"], "--train")])
def test_usage_errors_exit_with_status_2(flags, named):
    run = run_script(*flags)
    assert run.returncode == 2 and named in run.stderr.strip().splitlines()[-1]
