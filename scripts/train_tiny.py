#!/usr/bin/env python
"""Train a tiny scratch_gpt on synthetic sequences with the Hugging Face Trainer: see
``scratchformers.examples.train_tiny``.

    python scripts/train_tiny.py --output_dir runs/tiny --max_steps 20 --save_steps 10 --use_cpu
    accelerate launch --config_file configs/accelerate/cpu.yaml scripts/train_tiny.py --output_dir runs/tiny ...
    python scripts/train_tiny.py --output_dir runs/tiny --max_steps 20 --resume_from_checkpoint true
"""

import sys

from scratchformers.examples.train_tiny import main

if __name__ == "__main__":
    main(sys.argv[1:])
