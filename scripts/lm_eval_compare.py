#!/usr/bin/env python
"""Score one of our causal-LM checkpoints with lm-evaluation-harness, and transformers' own class with the same
weights, on the same tasks: see ``scratchformers.lm_eval_tasks.compare``.

    python scripts/lm_eval_compare.py outputs/demo-gpt/checkpoint
    python scripts/lm_eval_compare.py CHECKPOINT --tasks scratch_language_id --limit 50 --json scores.json
"""

from scratchformers.lm_eval_tasks.compare import main

if __name__ == "__main__":
    main()
