"""The demo end to end at toy size: every output exists, PNGs are real images, numbers are finite and consistent."""

from __future__ import annotations

import json
import math

import pytest
from huggingface_hub import ModelCard
from journey_helpers import png_size, tiny_config_file

from scratchformers.demo import FAMILIES, run_demo
from scratchformers.hub import check_upload_complete


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = run_demo(output_dir=out / "run", max_steps=4, config=tiny_config_file(out), block_size=16,
                      vocab_size=300, batch_size=4)
    return out / "run", result


def test_demo_writes_every_output(demo, capsys):
    out, result = demo
    for name in ("loss_curve.png", "attention.png", "positional_encoding.png", "results.json"):
        assert (out / name).is_file(), name
    for name in ("loss_curve", "attention", "positional_encoding"):
        width, height = png_size(result["plots"][name])
        assert width > 200 and height > 200


def test_demo_numbers_are_finite_and_consistent(demo):
    out, result = demo
    saved = json.loads((out / "results.json").read_text())
    assert saved["perplexity"] == pytest.approx(math.exp(saved["eval_loss"]))
    assert all(math.isfinite(saved[k]) for k in ("eval_loss", "perplexity", "train_loss"))
    assert all(math.isfinite(v) and v >= 0 for v in saved["timings_s"].values())
    assert saved["max_steps"] == 4


def test_demo_checkpoint_reloads_as_remote_code_and_generates(demo):
    out, result = demo
    # the fresh process loaded the class from the checkpoint's own code, not from the installed package
    assert result["reloaded_class"].startswith("transformers_modules.")
    assert result["reloaded_class"].endswith("modeling_scratch_gpt.ScratchGPTForCausalLM")
    assert result["sample"].startswith(result["prompt"]) and len(result["sample"]) > len(result["prompt"])
    checkpoint = out / "checkpoint"
    assert result["upload_missing"] == [] == check_upload_complete(checkpoint)
    card = ModelCard.load(checkpoint / "README.md")
    assert {r.metric_type for r in card.data.eval_results} == {"loss", "perplexity"}


def test_demo_rejects_unknown_family_and_steps(tmp_path):
    assert FAMILIES == ("gpt", "bert", "translation")
    with pytest.raises(ValueError, match="unknown family 'rnn'"):
        run_demo(output_dir=tmp_path, family="rnn")
    with pytest.raises(ValueError, match="max_steps must be >= 1"):
        run_demo(output_dir=tmp_path, max_steps=0)
