"""FSDP2 really shards our models on CPU (gloo), and trains them exactly like one process; accelerate's FSDP path,
which does not shard on CPU, is refused by our scripts instead of silently running as DDP.

The 2-process runs are `torch.multiprocessing` workers (gloo, one thread each): every rank builds the model with the
same seed, `apply_fsdp2` shards it at `_no_split_modules`, and each rank trains on its half of every global batch.
The reference is the same model trained in this process on the whole batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _subprocess_training import ROOT, free_port, subprocess_env
from families import FAMILIES as ALL_FAMILIES
from families import TINY
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, TrainingArguments

from scratchformers.distributed import apply_fsdp2, check_fsdp_device, full_state_dict
from scratchformers.examples import load_script, train_fsdp2, train_tiny

WORLD, STEPS, GLOBAL_BATCH, SEQ, LR = 2, 4, 4, 8, 0.1
VOCAB = TINY["vocab_size"]
FAMILIES = ("gpt", "transformer")
SCRIPT_FLAGS = ["--max_steps", "6", "--optimizer", "sgd", "--learning_rate", "0.1", "--global_batch_size", "4"]


def build(family: str) -> torch.nn.Module:
    """A tiny model of `family`, the same weights in every process (seeded), no dropout."""
    torch.manual_seed(0)
    return ALL_FAMILIES[family].lm(ALL_FAMILIES[family].config())


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
        # scripts/train_fsdp2.py (its main, scratchformers.examples.train_fsdp2) in this process group, as torchrun would
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD))
        train_fsdp2.main(["--output_dir", os.path.join(out_dir, "script"), *SCRIPT_FLAGS])
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def fsdp_runs(tmp_path_factory) -> list[dict]:
    """The results of both ranks of the 2-process FSDP2 run (both families in one launch: a spawn costs seconds)."""
    out = tmp_path_factory.mktemp("fsdp2")
    mp.spawn(worker, args=(free_port(), str(out)), nprocs=WORLD, join=True)
    runs = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    runs[0]["script_dir"] = out / "script"
    return runs


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


def test_train_fsdp2_script_saves_what_one_process_trains(fsdp_runs, tmp_path, monkeypatch):
    """scripts/train_fsdp2.py on 2 ranks (FSDP2) vs in 1 process: the same losses, the same saved weights, and a
    checkpoint that loads through remote code (save_fsdp2_pretrained saves under the model's own class, not torch's
    FSDPScratchGPTForCausalLM, and writes the tied output layer once)."""
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    torch.set_num_threads(1)
    sharded, single = fsdp_runs[0]["script_dir"], tmp_path / "single"
    train_fsdp2.main(["--output_dir", str(single), *SCRIPT_FLAGS])
    losses = [json.loads((d / "losses.json").read_text()) for d in (sharded, single)]
    torch.testing.assert_close(torch.tensor(losses[0]), torch.tensor(losses[1]), rtol=0, atol=1e-5)
    assert losses[1][-1] < losses[1][0]
    weights = [load_file(str(d / "model.safetensors")) for d in (sharded, single)]
    assert weights[0].keys() == weights[1].keys()
    for name, value in weights[1].items():
        torch.testing.assert_close(weights[0][name], value, rtol=0, atol=1e-5, msg=name)
    configs = [json.loads((d / "config.json").read_text()) for d in (sharded, single)]
    assert configs[0]["auto_map"] == configs[1]["auto_map"]
    assert configs[0]["architectures"] == ["ScratchGPTForCausalLM"]
    assert sorted(p.name for p in sharded.glob("*.py")) == sorted(p.name for p in single.glob("*.py"))
    model = AutoModelForCausalLM.from_pretrained(sharded, trust_remote_code=True)
    ids = torch.arange(1, 9)[None]
    reference = AutoModelForCausalLM.from_pretrained(single)
    torch.testing.assert_close(model(ids).logits, reference(ids).logits, rtol=0, atol=1e-5)


# --- accelerate's FSDP on CPU is refused -------------------------------------------------------------------------

def test_check_fsdp_device_refuses_fsdp_on_cpu(tmp_path, monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    check_fsdp_device(TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[]))  # no FSDP: fine
    with pytest.raises(ValueError, match="on CPU.*apply_fsdp2"):
        check_fsdp_device(TrainingArguments(output_dir=str(tmp_path), use_cpu=True, fsdp="full_shard", report_to=[]))
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what `accelerate launch` with an FSDP config sets
    with pytest.raises(ValueError, match="FSDP was requested"):
        check_fsdp_device(TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[]))


@pytest.mark.parametrize("task", ["clm", "mlm", "translation", "classification", "train_tiny"])
def test_training_entry_points_refuse_fsdp_on_cpu(task, tmp_path, capsys, monkeypatch):
    """Every training entry point stops with one `error:` line and status 2, right after parsing (no data read)."""
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    main = train_tiny.main if task == "train_tiny" else load_script(task)
    with pytest.raises(SystemExit) as exit_info:
        main(["--output_dir", str(tmp_path / "out"), "--use_cpu", "--fsdp", "full_shard", "--report_to", "none"])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "FSDP" in errors[0] and "apply_fsdp2" in errors[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_accelerate_launch_with_the_fsdp_config_on_cpu_stops_instead_of_running_ddp(tmp_path):
    """The shipped configs/accelerate/fsdp.yaml, launched with --use_cpu: accelerate would train plain DDP (full
    weights on every rank); train_tiny.py stops in every rank with the error instead, and saves nothing."""
    out = tmp_path / "run"
    found = os.path.join(os.path.dirname(sys.executable), "accelerate")
    launcher = [found] if os.path.isfile(found) else [sys.executable, "-m", "accelerate.commands.launch"]
    cmd = [*launcher, "launch", "--config_file", str(ROOT / "configs" / "accelerate" / "fsdp.yaml"),
           "--mixed_precision", "no", "--main_process_port", str(free_port()), str(ROOT / "scripts" / "train_tiny.py"),
           "--output_dir", str(out), "--use_cpu", "--max_steps", "2", "--report_to", "none"]
    done = subprocess.run(cmd, env=subprocess_env(), cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode != 0, done.stdout[-2000:]
    assert done.stderr.count("error: FSDP was requested") == WORLD, done.stderr[-3000:]
    assert not (out / "model.safetensors").exists()
