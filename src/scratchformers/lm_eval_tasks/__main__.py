"""``python -m scratchformers.lm_eval_tasks`` prints the folder to pass to lm-eval's ``--include_path``."""

from scratchformers.lm_eval_tasks import TASK_DIR

print(TASK_DIR)
