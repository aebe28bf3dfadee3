"""`load_checked` takes every argument `from_pretrained` takes, with the same meaning: each call is compared with
`AutoModel*.from_pretrained` on the same folder, for every family."""

from __future__ import annotations

import pytest
import torch
from families import FAMILIES
from transformers import AutoConfig

from scratchformers import (
    safe_loading,
)
from scratchformers.safe_loading import load_checked


def saved(tmp_path, family: str, dtype: torch.dtype = torch.bfloat16):
    """A checkpoint saved in `dtype` (bf16 by default); returns (folder, the Auto class for it)."""
    torch.manual_seed(0)
    model = FAMILIES[family].lm(FAMILIES[family].config()).to(dtype)
    model.save_pretrained(tmp_path)
    return tmp_path, FAMILIES[family].auto_lm


def assert_same_model(ours, theirs) -> None:
    assert type(ours) is type(theirs)
    ours_state, their_state = ours.state_dict(), theirs.state_dict()
    assert ours_state.keys() == their_state.keys()
    for name, tensor in ours_state.items():
        assert tensor.dtype == their_state[name].dtype and tensor.device == their_state[name].device, name
        torch.testing.assert_close(tensor, their_state[name], rtol=0, atol=0)


def test_from_pretrained_arguments_are_read_from_transformers():
    arguments = safe_loading.from_pretrained_arguments()
    for name in ("dtype", "device_map", "revision", "attn_implementation", "config", "output_loading_info"):
        assert name in arguments
    assert "num_labels" not in arguments and "hidden_size" not in arguments  # config fields stay config fields


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", ["auto", torch.float32, "float16"], ids=str)
def test_dtype_means_what_it_means_to_from_pretrained(tmp_path, family, dtype):
    folder, auto_class = saved(tmp_path, family)
    ours, theirs = load_checked(folder, dtype=dtype), auto_class.from_pretrained(folder, dtype=dtype)
    assert ours.dtype == theirs.dtype == {"auto": torch.bfloat16, "float16": torch.float16}.get(dtype, dtype)
    assert_same_model(ours, theirs)


@pytest.mark.parametrize("family", FAMILIES)
def test_device_map_revision_and_attention_backend_pass_through(tmp_path, family):
    folder, auto_class = saved(tmp_path, family, torch.float32)
    call = dict(device_map="cpu", revision="main", attn_implementation="eager")
    ours, theirs = load_checked(folder, **call), auto_class.from_pretrained(folder, **call)
    assert_same_model(ours, theirs)
    assert getattr(ours, "hf_device_map", None) == getattr(theirs, "hf_device_map", None)
    assert ours.device.type == "cpu"
    assert ours.config._attn_implementation == theirs.config._attn_implementation == "eager"


@pytest.mark.parametrize("family", FAMILIES)
def test_config_object_and_loading_info_pass_through(tmp_path, family):
    folder, auto_class = saved(tmp_path, family, torch.float32)
    config = AutoConfig.from_pretrained(folder)
    config.output_hidden_states = True
    (ours, our_info), (theirs, their_info) = (
        load(folder, config=config, output_loading_info=True) for load in (load_checked, auto_class.from_pretrained)
    )
    assert_same_model(ours, theirs)
    assert ours.config.output_hidden_states and theirs.config.output_hidden_states
    assert our_info == their_info
