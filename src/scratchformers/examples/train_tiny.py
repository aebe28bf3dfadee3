"""Train a tiny scratch_gpt on synthetic sequences with the Hugging Face Trainer — the smallest end-to-end run
(``scripts/train_tiny.py`` runs ``main``; ``ArithmeticSequences`` is also ``scripts/train_fsdp2.py``'s data).

It is the entry point the distributed and kill-and-resume tests launch, and a quick check that a setup works:

    python scripts/train_tiny.py --output_dir runs/tiny --max_steps 20 --save_steps 10 --use_cpu
    accelerate launch --config_file configs/accelerate/cpu.yaml scripts/train_tiny.py --output_dir runs/tiny ...
    python scripts/train_tiny.py --output_dir runs/tiny --max_steps 20 --resume_from_checkpoint true

The data are `num_sequences` arithmetic progressions modulo the vocabulary (start and step drawn from `data_seed`),
so the loss falls quickly and every run with the same seeds sees the same data. Checkpoints are written atomically
(`scratchformers.training.AtomicCheckpointTrainer`); the final model goes to `output_dir` as safetensors, with
`trainer_state.json` (the loss curve). `--dump_rank_weights` makes every process save its own copy of the weights
as `rank{r}.safetensors`, so a test can check that data-parallel ranks agree.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import torch
from safetensors.torch import save_file
from transformers import HfArgumentParser, TrainerCallback, TrainingArguments, set_seed

from scratchformers import ScratchGPTConfig, ScratchGPTForCausalLM
from scratchformers.examples.common import refuse_fsdp_on_cpu
from scratchformers.training import AtomicCheckpointTrainer


@dataclass
class TinyArguments:
    """The model and data sizes (defaults: a 2-layer, 32-wide GPT on 64 sequences of 16 tokens)."""

    vocab_size: int = field(default=64, metadata={"help": "Vocabulary size of the synthetic data and the model."})
    hidden_size: int = field(default=32, metadata={"help": "Model width."})
    num_layers: int = field(default=2, metadata={"help": "Number of Transformer layers."})
    num_heads: int = field(default=4, metadata={"help": "Attention heads."})
    seq_len: int = field(default=16, metadata={"help": "Tokens per training sequence."})
    num_sequences: int = field(default=64, metadata={"help": "Number of synthetic training sequences."})
    data_seed_synthetic: int = field(default=1234, metadata={"help": "Seed of the synthetic data."})
    dump_rank_weights: bool = field(default=False, metadata={"help": "Every rank saves rank{r}.safetensors."})
    stall_after_save_step: int = field(
        default=0, metadata={"help": "Testing aid: after saving the checkpoint of this step, sleep (to be killed)."}
    )


class ArithmeticSequences(torch.utils.data.Dataset):
    """Sequence i = (a_i + k·d_i) mod V for k = 0…T−1: learnable, deterministic, no files needed."""

    def __init__(self, num_sequences: int, seq_len: int, vocab_size: int, seed: int) -> None:
        """`num_sequences` rows of `seq_len` ids below `vocab_size`; start a_i and step d_i ∈ {1, 2, 3} drawn from
        `seed`. `self.ids` holds them all, shape (num_sequences, seq_len)."""
        g = torch.Generator().manual_seed(seed)
        start = torch.randint(0, vocab_size, (num_sequences, 1), generator=g)
        step = torch.randint(1, 4, (num_sequences, 1), generator=g)
        self.ids = (start + step * torch.arange(seq_len)) % vocab_size  # (N, T)

    def __len__(self) -> int:
        return self.ids.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


class StallAfterSave(TrainerCallback):
    """Sleeps once the checkpoint of `step` is on disk, so a test can SIGKILL the run at a known point."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args, state, control, **kwargs) -> None:
        if state.global_step == self.step:
            print(f"STALLING after checkpoint-{self.step}", flush=True)
            time.sleep(3600)


def main(argv: list[str] | None = None) -> None:
    """Parse `TinyArguments` + `TrainingArguments`, train, save the final model and the trainer state."""
    parser = HfArgumentParser((TinyArguments, TrainingArguments))
    tiny, args = parser.parse_args_into_dataclasses(args=argv)
    refuse_fsdp_on_cpu(args)  # accelerate's FSDP would silently run as DDP on CPU: scripts/train_fsdp2.py shards
    set_seed(args.seed)  # the same initial weights on every rank and in every run with this seed
    config = ScratchGPTConfig(
        vocab_size=tiny.vocab_size,
        hidden_size=tiny.hidden_size,
        num_hidden_layers=tiny.num_layers,
        num_attention_heads=tiny.num_heads,
        intermediate_size=4 * tiny.hidden_size,
        max_position_embeddings=tiny.seq_len,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = ScratchGPTForCausalLM(config)
    data = ArithmeticSequences(tiny.num_sequences, tiny.seq_len, tiny.vocab_size, tiny.data_seed_synthetic)
    callbacks = [StallAfterSave(tiny.stall_after_save_step)] if tiny.stall_after_save_step else []
    trainer = AtomicCheckpointTrainer(model=model, args=args, train_dataset=data, callbacks=callbacks)
    resume = args.resume_from_checkpoint
    if resume is not None and resume.lower() in ("true", "false"):
        resume = resume.lower() == "true" or None
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model()
    trainer.save_state()
    if tiny.dump_rank_weights:
        state = {k: v.detach().cpu().contiguous() for k, v in trainer.model.state_dict().items()}
        state.pop("lm_head.weight", None)  # tied to the token embedding
        save_file(state, os.path.join(args.output_dir, f"rank{args.process_index}.safetensors"))
