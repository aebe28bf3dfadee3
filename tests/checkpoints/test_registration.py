"""Every family is registered with the Auto classes and its checkpoints name all of them in `auto_map`."""

import json

import pytest
from families import FAMILIES
from transformers import AutoConfig, AutoModel

import scratchformers
from scratchformers import (
    ScratchRNNConfig,
)

TINY = {family.config_class: family.tiny for family in FAMILIES.values()}


@pytest.mark.parametrize("config_class", list(TINY), ids=lambda c: c.model_type)
def test_checkpoint_names_every_auto_class_of_its_family(config_class, tmp_path):
    config = config_class(**TINY[config_class])
    assert type(AutoConfig.for_model(config_class.model_type)) is config_class
    model = AutoModel.from_config(config)
    model.save_pretrained(tmp_path)
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map == config_class.family_auto_map
    assert {"AutoConfig", "AutoModel"} <= set(auto_map)
    for reference in auto_map.values():
        module, name = reference.split(".")
        assert (tmp_path / f"{module}.py").exists()
        assert hasattr(getattr(scratchformers, module), name)


def test_forward_signatures_are_frozen_and_true_for_every_class():
    """generate() inspects a custom model's forward at every step: ours carry a precomputed `__signature__`, which
    must equal the real one (the Trainer and generate() read argument names from it)."""
    import inspect

    import torch

    import scratchformers

    for name in scratchformers.__all__:
        cls = getattr(scratchformers, name)
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)) or "forward" not in cls.__dict__:
            continue
        forward = cls.__dict__["forward"]
        assert "__signature__" in vars(forward), name
        frozen = inspect.signature(forward)
        del forward.__signature__
        try:
            assert frozen == inspect.signature(forward), name
        finally:
            forward.__signature__ = frozen


def test_a_recurrent_checkpoint_carries_only_the_recurrent_code(tmp_path):
    """A remote-code checkpoint carries its modeling module and every module that imports relatively (transformers'
    `get_relative_import_files`): the recurrent family needs none of the Transformer blocks, so at most 10 modules."""
    model = AutoModel.from_config(ScratchRNNConfig(**TINY[ScratchRNNConfig]))
    model.save_pretrained(tmp_path)
    carried = {path.name for path in tmp_path.glob("*.py")}
    assert len(carried) <= 10, sorted(carried)
    assert not carried & {"layers.py", "attention.py", "embeddings.py", "cache.py"}, sorted(carried)
