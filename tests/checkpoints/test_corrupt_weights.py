"""A truncated or corrupt `model.safetensors` loaded through `from_pretrained` (our classes, the Auto classes, and
remote code) raises an OSError naming the file and saying what to do, not the parser's bare message."""

from __future__ import annotations

import pytest
import torch
from families import FAMILIES
from safetensors import SafetensorError
from transformers import AutoModel, AutoModelForSeq2SeqLM

CORRUPTIONS = {
    "truncated": lambda data: data[: len(data) * 2 // 3],  # the parser: "incomplete metadata, file not fully covered"
    "cut-in-header": lambda data: data[:20],
    "garbage-header": lambda data: data[:8] + b"\x00" * (len(data) - 8),
}


def save(family: str, folder, tiny: dict):
    model = FAMILIES[family].lm(FAMILIES[family].config())
    model.save_pretrained(folder)
    return model


@pytest.mark.parametrize("corruption", CORRUPTIONS)
@pytest.mark.parametrize("family", FAMILIES)
def test_corrupt_weights_file_is_named_through_from_pretrained(tmp_path, tiny, family, corruption):
    save(family, tmp_path, tiny)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(CORRUPTIONS[corruption](weights.read_bytes()))
    for loader in (FAMILIES[family].lm, FAMILIES[family].auto_lm, AutoModel):
        with pytest.raises(OSError, match="truncated or corrupt") as raised:
            loader.from_pretrained(tmp_path)
        assert str(weights) in str(raised.value)
        assert "Download it again" in str(raised.value)
        assert isinstance(raised.value.__cause__, SafetensorError)  # the parser's own message stays in the chain


def test_corrupt_weights_file_is_named_through_remote_code(tmp_path, tiny, run_without_package):
    """The override lives in the model code a checkpoint carries, so a user without scratchformers gets it too."""
    save("gpt", tmp_path / "corrupt_gpt", tiny)
    weights = tmp_path / "corrupt_gpt" / "model.safetensors"
    weights.write_bytes(CORRUPTIONS["truncated"](weights.read_bytes()))
    out = run_without_package(f"""
        from transformers import AutoModelForCausalLM
        try:
            AutoModelForCausalLM.from_pretrained({str(tmp_path / "corrupt_gpt")!r}, trust_remote_code=True)
        except OSError as error:
            print(type(error).__name__, error)
    """)
    assert out.startswith("OSError") and "truncated or corrupt" in out and str(weights) in out


def test_a_sound_checkpoint_still_loads_with_its_weights(tmp_path, tiny):
    model = save("transformer", tmp_path, tiny)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
