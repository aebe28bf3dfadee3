"""FSDP2 really shards our models on CPU (gloo), and trains them exactly like one process; accelerate's FSDP path,
which does not shard on CPU, is refused by our scripts instead of silently running as DDP.

The 2-process runs are `torch.multiprocessing` workers (gloo, one thread each): every rank builds the model with the
same seed, `apply_fsdp2` shards it at `_no_split_modules`, and each rank trains on its half of every global batch.
The reference is the same model trained in this process on the whole batch.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _subprocess_training import free_port

from scratchformers import (
    ScratchGPTConfig,
    ScratchGPTForCausalLM,
    ScratchTransformerConfig,
    ScratchTransformerForConditionalGeneration,
)
from scratchformers.distributed import apply_fsdp2, full_state_dict

WORLD, STEPS, GLOBAL_BATCH, SEQ, VOCAB, LR = 2, 4, 4, 8, 32, 0.1
FAMILIES = ("gpt", "transformer")


def build(family: str) -> torch.nn.Module:
    """A tiny model of `family`, the same weights in every process (seeded), no dropout."""
    torch.manual_seed(0)
    common = dict(vocab_size=VOCAB, hidden_size=16, num_attention_heads=2, intermediate_size=32,
                  max_position_embeddings=SEQ, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    if family == "gpt":
        return ScratchGPTForCausalLM(ScratchGPTConfig(num_hidden_layers=2, **common))
    return ScratchTransformerForConditionalGeneration(
        ScratchTransformerConfig(encoder_layers=2, decoder_layers=2, **common))


def batches(family: str) -> list[dict[str, torch.Tensor]]:
    """The same global batch of GLOBAL_BATCH rows at each of the STEPS steps, so the loss falls (ids 1..V-1: no
    padding, every label counts)."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, VOCAB, (GLOBAL_BATCH, SEQ), generator=g)
    labels = ids if family == "gpt" else torch.randint(1, VOCAB, (GLOBAL_BATCH, SEQ), generator=g)
    return [{"input_ids": ids, "labels": labels}] * STEPS


def train(model: torch.nn.Module, family: str, rank: int = 0, world: int = 1) -> list[float]:
    """SGD with momentum for STEPS steps (its momentum buffers are sharded too); this rank takes rows [rank·B/world, (rank+1)·B/world) of each global batch.
    Returns the loss of each step averaged over the ranks (the global batch's loss: equal halves, mean losses)."""
    # Not Adam: Adam divides each gradient by its own RMS, so a gradient that is zero in exact arithmetic (the key
    # projection's bias: softmax ignores a shift shared by all keys) but 1e-9 of rounding noise becomes a full
    # ±lr step whose sign depends on the summation order — 2e-5 apart after 4 steps in any two differently
    # batched runs, FSDP or not. SGD keeps the rounding differences at their size.
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    share = GLOBAL_BATCH // world
    losses = []
    for batch in batches(family):
        part = {k: v[rank * share:(rank + 1) * share] for k, v in batch.items()}
        loss = model(**part).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        loss = loss.detach().clone()
        if world > 1:
            dist.all_reduce(loss)
            loss /= world
        losses.append(loss.item())
    return losses


def shard_report(model: torch.nn.Module) -> dict[str, dict]:
    """For every parameter: whether it is a DTensor, its placements, full and local (this rank's) shapes, and
    whether it lies in a `_no_split_modules` unit."""
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor, Shard

    # fully_shard swaps a unit's class for a subclass (TransformerLayer -> FSDPTransformerLayer)
    units = [m for m in model.modules() if isinstance(m, FSDPModule) and m is not model]
    assert units and all({c.__name__ for c in type(m).__mro__} & set(model._no_split_modules) for m in units)
    in_unit = {id(p) for m in units for p in m.parameters()}
    report = {}
    for name, p in model.named_parameters():
        is_d = isinstance(p, DTensor)
        report[name] = dict(dtensor=is_d, row_sharded=is_d and tuple(p.placements) == (Shard(0),),
                            full=tuple(p.shape), local=tuple(p.to_local().shape) if is_d else tuple(p.shape),
                            local_values=p.to_local().detach().clone() if is_d else None, in_unit=id(p) in in_unit)
    return report


def worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        results = {}
        for family in FAMILIES:
            model = apply_fsdp2(build(family))
            losses = train(model, family, rank, WORLD)
            shards = shard_report(model)  # after training: the local values are this rank's part of the result
            results[family] = dict(shards=shards, losses=losses, state=full_state_dict(model))
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def fsdp_runs(tmp_path_factory) -> list[dict]:
    """The results of both ranks of the 2-process FSDP2 run (both families in one launch: a spawn costs seconds)."""
    out = tmp_path_factory.mktemp("fsdp2")
    mp.spawn(worker, args=(free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.fixture(scope="module")
def reference_runs() -> dict[str, tuple[list[float], dict[str, torch.Tensor]]]:
    """Each family trained in this process on the whole global batch."""
    torch.set_num_threads(1)
    runs = {}
    for family in FAMILIES:
        model = build(family)
        losses = train(model, family)
        runs[family] = (losses, {k: v.detach().clone() for k, v in model.state_dict().items()})
    return runs


@pytest.mark.parametrize("family", FAMILIES)
def test_parameters_are_sharded_at_no_split_modules(fsdp_runs, family):
    """Every parameter is a DTensor split along dim 0; each rank holds its torch.chunk of the rows, the two ranks'
    rows together are the whole tensor, and each rank holds about half of each layer's weights."""
    reports = [run[family]["shards"] for run in fsdp_runs]
    assert any(r["in_unit"] for r in reports[0].values())
    for name, first in reports[0].items():
        assert first["dtensor"] and first["row_sharded"], name
        full_rows = first["full"][0]
        rows = [report[name]["local"][0] for report in reports]
        assert rows == [len(c) for c in torch.arange(full_rows).chunk(WORLD)], name
        assert sum(rows) == full_rows
    held = [sum(v["local_values"].numel() for v in report.values() if v["in_unit"]) for report in reports]
    total = sum(torch.Size(v["full"]).numel() for v in reports[0].values() if v["in_unit"])
    assert sum(held) == total
    for h in held:
        assert abs(h / total - 1 / WORLD) < 0.05


@pytest.mark.parametrize("family", FAMILIES)
def test_fsdp2_losses_match_one_process(fsdp_runs, reference_runs, family):
    single, _ = reference_runs[family]
    for run in fsdp_runs:
        assert len(run[family]["losses"]) == STEPS
        torch.testing.assert_close(torch.tensor(run[family]["losses"]), torch.tensor(single), rtol=0, atol=1e-5)
    assert single[-1] < single[0]  # the runs learn, so the curves are not two flat lines


@pytest.mark.parametrize("family", FAMILIES)
def test_fsdp2_final_weights_match_one_process(fsdp_runs, reference_runs, family):
    """The full weights gathered from the shards (rank 0) equal the 1-process run's; each rank's shard of the final
    weights is its chunk of them."""
    _, single = reference_runs[family]
    gathered = fsdp_runs[0][family]["state"]
    assert fsdp_runs[1][family]["state"] == {}  # gathered on rank 0 only (cpu_offload)
    assert gathered.keys() <= single.keys() and len(gathered) > 0
    trained = {k for k in gathered if not torch.equal(gathered[k], build(family).state_dict()[k])}
    assert trained  # the weights moved away from the initial ones
    for name, value in gathered.items():
        torch.testing.assert_close(value, single[name], rtol=0, atol=1e-5, msg=name)
    for name in fsdp_runs[0][family]["shards"]:
        local = [run[family]["shards"][name]["local_values"] for run in fsdp_runs]
        assert torch.equal(torch.cat(local), gathered[name]), name
