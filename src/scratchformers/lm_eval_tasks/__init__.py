"""Task files for EleutherAI's lm-evaluation-harness that score a causal LM on the corpora shipped in ``data/``.

Point lm-eval at this folder with ``--include_path`` (``python -m scratchformers.lm_eval_tasks`` prints it)::

    lm_eval --model hf --model_args pretrained=CHECKPOINT,trust_remote_code=True \\
        --include_path "$(python -m scratchformers.lm_eval_tasks)" --tasks scratchformers

The tasks (tag ``scratchformers`` runs both):

- ``scratch_prose_perplexity`` (``loglikelihood_rolling``): each paragraph of the held-out prose
  (``data/prose/validation.txt``, 163 paragraphs) scored whole; ``word_perplexity``, ``byte_perplexity``,
  ``bits_per_byte``.
- ``scratch_language_id`` (``multiple_choice``): a sentence of the language-identification test split
  (``data/classification/test.csv``, 360 rows, six languages), then ``Language:``; the six language names are the
  continuations compared; ``acc`` and ``acc_norm`` (log-likelihood per character).

The data is read offline by ``utils.py`` through ``scratchformers.data`` (the repository's ``data/``, a wheel's
``scratchformers/corpora``, or ``$SCRATCHFORMERS_DATA``); ``--metadata '{"data_dir": "..."}'`` picks another copy.
"""

from __future__ import annotations

from pathlib import Path

TASK_DIR = Path(__file__).resolve().parent
TASKS = ("scratch_prose_perplexity", "scratch_language_id")
TAG = "scratchformers"

__all__ = ["TASK_DIR", "TASKS", "TAG"]
