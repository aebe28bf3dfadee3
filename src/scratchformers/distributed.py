"""Sharded data parallelism (FSDP2) for our models, on GPUs and on CPUs, without going through accelerate.

Fully Sharded Data Parallel (FSDP; Zhao et al. 2023, "PyTorch FSDP: Experiences on Scaling Fully Sharded Data
Parallel", https://arxiv.org/abs/2304.11277; ZeRO-3 in Rajbhandari et al. 2020) keeps on each of the N processes
only 1/N of every parameter, of its gradient and of its optimizer state. Before a unit's forward (and again in
backward) the unit's full parameters are all-gathered; after backward its gradients are reduce-scattered, so every
rank updates only its own shard. torch's FSDP2 (`torch.distributed.fsdp.fully_shard`,
https://docs.pytorch.org/docs/stable/distributed.fsdp.fully_shard.html) represents each sharded parameter as a
`DTensor` split along dim 0, and works with the gloo backend on CPU as well as with NCCL on GPUs.

`apply_fsdp2(model)` shards a model the way accelerate's `TRANSFORMER_BASED_WRAP` policy would: every submodule whose
class name is in the model's `_no_split_modules` (for the Transformer families, each `TransformerLayer`) becomes one
unit, and the root takes what is left (embeddings, final norm, the tied output layer). Use it in your own training
loop launched with `torchrun --nproc_per_node N` (see `scripts/train_fsdp2.py`); save with `save_fsdp2_pretrained`.

Why not `accelerate launch --config_file configs/accelerate/fsdp.yaml` on CPU: accelerate 1.x turns FSDP on only for
accelerator back ends (`MULTI_GPU`, `MULTI_XPU`, ...). With `--use_cpu` it picks `MULTI_CPU` and drops the FSDP
plugin, so the run is plain DDP with full copies of the weights; without `--use_cpu` on a machine without GPUs every
process trains alone. `check_fsdp_device` detects that case so our scripts stop with a clear error instead.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "apply_fsdp2",
    "check_fsdp_device",
    "fsdp_requested",
    "full_state_dict",
    "save_fsdp2_pretrained",
]

_TRUE = ("1", "true", "yes", "on")


def apply_fsdp2(
    model: nn.Module,
    *,
    mesh: Any = None,
    reshard_after_forward: bool = True,
    mp_policy: Any = None,
    offload_policy: Any = None,
) -> nn.Module:
    """Shard `model` in place with FSDP2: one `fully_shard` unit per module named in `model._no_split_modules`, then
    the root. Returns `model` (now also an `FSDPModule`).

    Call it in every process after `torch.distributed.init_process_group` and before building the optimizer (the
    optimizer must see the sharded `DTensor` parameters). Every rank must build the model with the same weights (same
    seed, or the same checkpoint). Afterwards each parameter is a `DTensor` of the full shape, of which this rank
    holds the rows `torch.chunk(full, world_size, dim=0)[rank]` (`param.to_local()`); `param.full_tensor()`
    gathers it. Then train as usual, each rank on its own part of the global batch: gradients are averaged over the
    ranks (reduce-scatter), so with equal-sized parts of a mean loss the update equals a 1-process step on the whole
    batch.

    Args:
        model: a model with `_no_split_modules` (every scratchformers class has it: "TransformerLayer" for the
            Transformer families, the encoder and decoder for the RNN family).
        mesh: the 1-D `DeviceMesh` to shard over. None: all ranks, on CPU when the default process group is gloo,
            else on the current accelerator (set it per rank first, e.g. `torch.cuda.set_device(local_rank)`).
        reshard_after_forward: free the gathered parameters after forward and gather them again in backward (less
            memory, more communication); passed to every unit except the root, which torch never reshards.
        mp_policy: a `torch.distributed.fsdp.MixedPrecisionPolicy` (e.g. bf16 parameters, fp32 gradient reduction).
        offload_policy: a `torch.distributed.fsdp.CPUOffloadPolicy` to keep shards in CPU memory between uses.

    Raises:
        TypeError: `model` is not an `nn.Module`.
        RuntimeError: torch.distributed is not initialized.
        ValueError: the model names no `_no_split_modules`, or no submodule has one of those class names.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, OffloadPolicy, fully_shard

    if not isinstance(model, nn.Module):
        raise TypeError(f"apply_fsdp2 expects a torch.nn.Module, got {type(model).__name__}")
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "apply_fsdp2 needs torch.distributed: launch with `torchrun --nproc_per_node N ...` and call "
            "torch.distributed.init_process_group('gloo' on CPU, 'nccl' on GPUs) first"
        )
    names = set(getattr(model, "_no_split_modules", None) or ())
    if not names:
        raise ValueError(f"{type(model).__name__} has no _no_split_modules: no unit to shard at")
    units = [m for m in reversed(list(model.modules())) if type(m).__name__ in names and m is not model]
    if not units:
        found = sorted({type(m).__name__ for m in model.modules()})
        raise ValueError(f"no submodule of {type(model).__name__} is one of _no_split_modules {sorted(names)}; "
                         f"its module classes are {found}")
    if mesh is None:
        on_cpu = dist.get_backend() == "gloo" or torch.accelerator.current_accelerator() is None
        device_type = "cpu" if on_cpu else torch.accelerator.current_accelerator().type
        mesh = init_device_mesh(device_type, (dist.get_world_size(),))
    kwargs = dict(mesh=mesh, mp_policy=mp_policy or MixedPrecisionPolicy(), offload_policy=offload_policy or OffloadPolicy())
    for unit in units:  # innermost first (reversed pre-order), so a unit never contains an unsharded one
        fully_shard(unit, reshard_after_forward=reshard_after_forward, **kwargs)
    fully_shard(model, **kwargs)
    return model


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full (unsharded) state dict of an FSDP2 model, gathered on CPU in rank 0; `{}` on the other ranks.

    A collective: call it in every rank. Plain tensors, ready for `save_pretrained(state_dict=...)` or safetensors.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def save_fsdp2_pretrained(model: nn.Module, output_dir: str | os.PathLike, **kwargs: Any) -> None:
    """Gather the full weights of an FSDP2-sharded `PreTrainedModel` and let rank 0 `save_pretrained` them.

    The result is an ordinary checkpoint (safetensors + config, and our modeling files for remote code) that
    `from_pretrained` loads without torch.distributed. A collective: call it in every rank. `kwargs` go to
    `save_pretrained`.

    Why not `model.save_pretrained` directly: `fully_shard` swaps the model's class for a subclass defined in torch
    (`FSDPScratchGPTForCausalLM`, module `torch.distributed.fsdp._fully_shard._fsdp_init`), and transformers' remote-code
    export copies the files of the class's module: the checkpoint would get torch's FSDP sources and an `auto_map`
    pointing at `_fsdp_init.FSDPScratchGPTForCausalLM`, which no one can load. Here rank 0 saves under the model's
    own class (restored right after).
    """
    from torch.distributed.fsdp import FSDPModule

    state = full_state_dict(model)
    owner: dict[int, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):  # tied weights: gathered as separate copies,
        if owner.setdefault(id(param), name) != name:  # which save_pretrained cannot recognise as tied: keep the first
            state.pop(name, None)
    if dist.get_rank() == 0:
        sharded_class = type(model)
        own_class = next(c for c in sharded_class.__mro__ if not issubclass(c, FSDPModule))
        model.__class__ = own_class
        try:
            model.save_pretrained(output_dir, state_dict=state, **kwargs)
        finally:
            model.__class__ = sharded_class
    dist.barrier()


def fsdp_requested(training_args: Any = None) -> bool:
    """Whether this run asked for FSDP: `accelerate launch` with an FSDP config (it sets `ACCELERATE_USE_FSDP`), or
    `TrainingArguments(fsdp=...)` / `--fsdp ...`."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in _TRUE:
        return True
    return bool(getattr(training_args, "fsdp", None)) if training_args is not None else False


def check_fsdp_device(training_args: Any) -> None:
    """Refuse FSDP through accelerate/the Trainer on CPU, which accelerate would silently not shard.

    `training_args` is a `TrainingArguments`. Its device is where accelerate decided to train (this sets up
    torch.distributed, as the Trainer would anyway).

    Raises:
        ValueError: FSDP was requested (see `fsdp_requested`) and the run's device is the CPU.
    """
    if not fsdp_requested(training_args) or training_args.device.type != "cpu":
        return
    raise ValueError(
        "FSDP was requested (accelerate's fsdp config or --fsdp) but this run is on CPU, where accelerate does not "
        "shard: it would silently train as plain DDP, or as unconnected single processes without GPUs. "
        "Use GPUs for accelerate's FSDP, configs/accelerate/cpu.yaml for data parallelism on CPU, or FSDP2 on CPU "
        "with scratchformers.distributed.apply_fsdp2 (torchrun --nproc_per_node 2 scripts/train_fsdp2.py, "
        "see docs/distributed.md)"
    )
