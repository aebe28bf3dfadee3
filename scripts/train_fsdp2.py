#!/usr/bin/env python
"""Train a tiny scratch_gpt with FSDP2 (really sharded) in a plain torch loop, on CPUs (gloo) or GPUs (NCCL): see
``scratchformers.examples.train_fsdp2``.

    torchrun --nproc_per_node 2 scripts/train_fsdp2.py --output_dir runs/fsdp2 --max_steps 20            # CPU
    torchrun --nproc_per_node 8 scripts/train_fsdp2.py --output_dir runs/fsdp2 --device cuda              # GPUs
    python scripts/train_fsdp2.py --output_dir runs/one --max_steps 20       # the same run in one process
"""

import sys

from scratchformers.examples.train_fsdp2 import main

if __name__ == "__main__":
    main(sys.argv[1:])
