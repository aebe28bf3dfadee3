"""Train a tiny scratch_gpt with FSDP2 (really sharded) in a plain torch loop — on CPUs (gloo) or GPUs (NCCL);
``scripts/train_fsdp2.py`` runs ``main``.

    torchrun --nproc_per_node 2 scripts/train_fsdp2.py --output_dir runs/fsdp2 --max_steps 20            # CPU
    torchrun --nproc_per_node 8 scripts/train_fsdp2.py --output_dir runs/fsdp2 --device cuda              # GPUs
    python scripts/train_fsdp2.py --output_dir runs/one --max_steps 20       # the same run in one process

`scratchformers.distributed.apply_fsdp2` shards the model at its `_no_split_modules` (each TransformerLayer, then the
root); every rank trains on its 1/N of each global batch, and `save_fsdp2_pretrained` gathers the full weights into an
ordinary checkpoint (`from_pretrained` loads it without torch.distributed). Writes `output_dir/losses.json` (the
global batch's loss at every step). The model and data are those of `scripts/train_tiny.py` (arithmetic progressions);
replace `build_model` and `global_batches` with your own. This is the FSDP path that works on CPU:
`accelerate launch --config_file configs/accelerate/fsdp.yaml` needs GPUs (see docs/distributed.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist

from scratchformers import ScratchGPTConfig, ScratchGPTForCausalLM
from scratchformers.distributed import apply_fsdp2, save_fsdp2_pretrained
from scratchformers.examples.train_tiny import ArithmeticSequences


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (argparse; a bad value exits with status 2)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output_dir", required=True)
    p.add_argument("--max_steps", type=int, default=20)
    p.add_argument("--global_batch_size", type=int, default=8, help="rows per step over all ranks together")
    p.add_argument("--learning_rate", type=float, default=1e-2)
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw", help="sgd: with momentum 0.9")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--hidden_size", type=int, default=32)
    p.add_argument("--num_layers", type=int, default=2)
    p.add_argument("--num_heads", type=int, default=4)
    p.add_argument("--vocab_size", type=int, default=64)
    p.add_argument("--seq_len", type=int, default=16)
    p.add_argument("--num_sequences", type=int, default=64)
    return p.parse_args(argv)


def build_model(args: argparse.Namespace) -> ScratchGPTForCausalLM:
    """The same weights in every rank (seeded); no dropout, so runs are deterministic."""
    torch.manual_seed(args.seed)
    return ScratchGPTForCausalLM(ScratchGPTConfig(
        vocab_size=args.vocab_size, hidden_size=args.hidden_size, num_hidden_layers=args.num_layers,
        num_attention_heads=args.num_heads, intermediate_size=4 * args.hidden_size,
        max_position_embeddings=args.seq_len, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    ))


def global_batches(args: argparse.Namespace) -> Iterator[torch.Tensor]:
    """`max_steps` global batches of `global_batch_size` rows, cycling through the data in order."""
    ids = ArithmeticSequences(args.num_sequences, args.seq_len, args.vocab_size, seed=1234).ids
    for step in range(args.max_steps):
        rows = torch.arange(step * args.global_batch_size, (step + 1) * args.global_batch_size) % len(ids)
        yield ids[rows]


def main(argv: Sequence[str] | None = None) -> list[float]:
    """Train (sharded when launched by torchrun with several processes), save; returns the loss of every step."""
    args = parse(argv)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if args.global_batch_size % world:
        print(f"error: --global_batch_size {args.global_batch_size} is not divisible by the {world} processes",
              file=sys.stderr)
        raise SystemExit(2)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no GPU", file=sys.stderr)
        raise SystemExit(2)
    started = False
    if world > 1 and not dist.is_initialized():
        if args.device == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if args.device == "cuda" else "gloo")
        started = True
    rank = dist.get_rank() if world > 1 else 0
    device = torch.device(args.device, torch.cuda.current_device()) if args.device == "cuda" else torch.device("cpu")

    model = build_model(args)
    if world > 1:
        apply_fsdp2(model)  # moves the shards to the mesh's device
    else:
        model.to(device)
    if args.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate, momentum=0.9)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
    share = args.global_batch_size // world
    losses = []
    for step, batch in enumerate(global_batches(args), start=1):
        part = batch[rank * share:(rank + 1) * share].to(device)
        loss = model(input_ids=part, labels=part).loss  # gradients are averaged over the ranks: the global mean
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        loss = loss.detach()
        if world > 1:
            dist.all_reduce(loss)
            loss = loss / world
        losses.append(loss.item())
        if rank == 0:
            print(f"step {step}: loss {losses[-1]:.4f}", flush=True)

    if world > 1:
        save_fsdp2_pretrained(model, args.output_dir)
    else:
        model.save_pretrained(args.output_dir)
    if rank == 0:
        with open(os.path.join(args.output_dir, "losses.json"), "w") as f:
            json.dump(losses, f)
    if started:
        dist.destroy_process_group()
    return losses
