"""Data parallelism through `accelerate launch`: a real 2-process DDP run on CPU (gloo) against a 1-process run with
the same global batch; and the shipped accelerate configs (DDP, FSDP, DeepSpeed ZeRO-2/3, CPU) are well-formed."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml
from _subprocess_training import (
    ACCELERATE_CPU_CONFIG,
    GLOBAL_BATCH,
    MAX_STEPS,
    ROOT,
    free_port,
    losses,
    max_abs_difference,
    reference_run_dir,
    run_checked,
    train_args,
    weights,
)
from families import FAMILIES as ALL_FAMILIES

from scratchformers import (
    ScratchRNNConfig,
)

CONFIGS = ROOT / "configs" / "accelerate"

# One line per family: (config class, model classes whose `_no_split_modules` FSDP wraps). Tiny sizes.
FAMILIES = [(family.config_class, [family.lm, *family.heads]) for family in ALL_FAMILIES.values()]


def tiny_config(config_class):
    """A tiny config of any family (tests/families.py)."""
    return next(family for family in ALL_FAMILIES.values() if family.config_class is config_class).config()


def accelerate_executable() -> list[str]:
    found = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "accelerate.commands.launch"]


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory) -> Path:
    """The uninterrupted 1-process run with the whole global batch (shared with the other subprocess tests)."""
    return reference_run_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    """scripts/train_tiny.py under `accelerate launch` with configs/accelerate/cpu.yaml: 2 processes, half the batch."""
    out = tmp_path_factory.mktemp("ddp") / "run"
    cmd = [*accelerate_executable(), "launch", "--config_file", str(ACCELERATE_CPU_CONFIG),
           "--main_process_port", str(free_port()),
           *train_args(out, GLOBAL_BATCH // 2, "--dump_rank_weights", "true", "--ddp_find_unused_parameters", "false")]
    run_checked(cmd, out.with_suffix(".log"))
    return out


def test_both_ranks_end_with_identical_weights(ddp_run):
    rank0, rank1 = weights(ddp_run / "rank0.safetensors"), weights(ddp_run / "rank1.safetensors")
    assert max_abs_difference(rank0, rank1) == 0.0


def test_ddp_loss_curve_matches_one_process_with_the_same_global_batch(ddp_run, reference_run):
    ddp, single = losses(ddp_run), losses(reference_run)
    assert len(ddp) == len(single) == MAX_STEPS
    assert ddp[-1] < ddp[0]  # it learned something, so the comparison is not between two flat curves
    torch.testing.assert_close(torch.tensor(ddp), torch.tensor(single), rtol=0, atol=1e-4)


def test_ddp_final_weights_match_one_process(ddp_run, reference_run):
    ddp, single = weights(ddp_run / "model.safetensors"), weights(reference_run / "model.safetensors")
    assert max_abs_difference(ddp, single) < 1e-3  # only all-reduce summation order differs


def test_ddp_checkpoint_holds_every_ranks_rng_state(ddp_run):
    names = {p.name for p in (ddp_run / "checkpoint-6").iterdir()}
    assert {"rng_state_0.pth", "rng_state_1.pth", "model.safetensors", "trainer_state.json"} <= names


def load_yaml(name: str) -> dict:
    return yaml.safe_load((CONFIGS / name).read_text())


@pytest.mark.parametrize(
    "name, distributed_type",
    [("cpu.yaml", "MULTI_GPU"), ("ddp-multi-gpu.yaml", "MULTI_GPU"), ("fsdp.yaml", "FSDP"),
     ("deepspeed-zero2.yaml", "DEEPSPEED"), ("deepspeed-zero3.yaml", "DEEPSPEED")],
)
def test_accelerate_config_loads(name, distributed_type):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(CONFIGS / name))
    assert config.distributed_type.value == distributed_type
    assert config.num_processes >= 2


@pytest.mark.parametrize("name, stage", [("deepspeed-zero2.yaml", 2), ("deepspeed-zero3.yaml", 3)])
def test_deepspeed_configs_set_their_zero_stage(name, stage):
    assert load_yaml(name)["deepspeed_config"]["zero_stage"] == stage


def test_fsdp_config_wraps_by_no_split_modules():
    fsdp = load_yaml("fsdp.yaml")["fsdp_config"]
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert "fsdp_transformer_layer_cls_to_wrap" not in fsdp  # so accelerate reads the model's _no_split_modules


@pytest.mark.parametrize("config_class, model_classes", FAMILIES, ids=["gpt", "bert", "transformer", "rnn"])
def test_no_split_modules_name_the_layer_classes(config_class, model_classes):
    """FSDP's TRANSFORMER_BASED_WRAP shards at the classes in `_no_split_modules`: each must exist in the model and
    together they must hold every parameter outside the embeddings, heads and final norm."""
    from accelerate.utils import FullyShardedDataParallelPlugin

    for model_class in model_classes:
        model = model_class(tiny_config(config_class))
        names = set(model._no_split_modules)
        layers = [m for m in model.modules() if type(m).__name__ in names]
        assert names and layers, f"{model_class.__name__}: no module of the classes {names}"
        assert len(layers) >= (1 if config_class is ScratchRNNConfig else tiny_config(config_class).num_hidden_layers)
        in_layers = {id(p) for layer in layers for p in layer.parameters()}
        share = sum(p.numel() for p in model.parameters() if id(p) in in_layers) / model.num_parameters()
        assert share > 0.5, f"{model_class.__name__}: only {share:.0%} of the parameters are in wrapped layers"
        plugin = FullyShardedDataParallelPlugin(fsdp_version=2, auto_wrap_policy="transformer_based_wrap")
        plugin.set_auto_wrap_policy(model)
        assert {cls.__name__ for cls in plugin.auto_wrap_policy.keywords["transformer_layer_cls"]} == names
