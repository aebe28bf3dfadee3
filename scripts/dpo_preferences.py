"""Held-out preference accuracy of a chat model before and after LoRA DPO on the shipped translation preferences
(docs/dpo.md).

The pairs are ``scratchformers.data.preference_pairs``: "Translate to German: <en>" → the right German (chosen) or a
corrupted one (rejected: another sentence's German, or the right words shuffled). Training uses the train split, the
accuracy the test split (disjoint). Accuracy is the share of test pairs with log π(chosen|x) > log π(rejected|x)
(``scratchformers.dpo.completion_logprobs``; TRL's tokenization), with a 95 % bootstrap interval
(``scratchformers.metrics.significance.mean_with_confidence``); after training also the implicit-reward accuracy
(r = β·(log π − log π_ref), what TRL logs as rewards/accuracies) and the paired change.

    scratchformers convert ~/.cache/scratchformers/SmolLM2-135M-Instruct.Q4_1.gguf outputs/smollm2
    OMP_NUM_THREADS=1 python scripts/dpo_preferences.py outputs/smollm2 --output outputs/dpo-preferences.json
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer

from scratchformers.data import PREFERENCE_CORRUPTIONS, preference_pairs
from scratchformers.dpo import PREFERENCE_COLUMNS, completion_logprobs
from scratchformers.metrics.significance import mean_with_confidence
from scratchformers.sft import LORA_TARGET_MODULES, lora_config


def summary(values: list[float]) -> dict[str, float]:
    """The mean with its 95 % bootstrap interval, rounded for the report."""
    return {k: round(v, 4) for k, v in mean_with_confidence(values).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a causal LM checkpoint folder with a chat template (e.g. converted SmolLM2)")
    parser.add_argument("--train-pairs", type=int, default=160)
    parser.add_argument("--test-pairs", type=int, default=200)
    parser.add_argument("--max-steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path("outputs/dpo-preferences.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    pairs = preference_pairs(seed=args.seed, max_per_split={"train": args.train_pairs, "test": args.test_pairs})
    train = Dataset.from_list([{c: r[c] for c in PREFERENCE_COLUMNS} for r in pairs["train"]])
    test = Dataset.from_list([{c: r[c] for c in PREFERENCE_COLUMNS} for r in pairs["test"]])
    kinds = [r["corruption"] for r in pairs["test"]]

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, trust_remote_code=True, dtype=torch.float32)
    config = DPOConfig(
        output_dir=str(args.output.with_suffix("")), max_steps=args.max_steps, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=8, learning_rate=args.learning_rate, lr_scheduler_type="constant", beta=args.beta,
        max_length=128, bf16=False, gradient_checkpointing=False, use_cpu=True, report_to=[], save_strategy="no",
        logging_steps=5, disable_tqdm=True, seed=args.seed,
    )
    peft = lora_config(model, args.lora_r, 2 * args.lora_r, 0.0, LORA_TARGET_MODULES)
    trainer = DPOTrainer(model=model, args=config, train_dataset=train, eval_dataset=test, processing_class=tokenizer,
                         peft_config=peft)
    trainable, total = trainer.model.get_nb_trainable_parameters()
    before = completion_logprobs(trainer.model, trainer.get_eval_dataloader())
    train_start = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - train_start
    after = completion_logprobs(trainer.model, trainer.get_eval_dataloader())

    right_before = (before[0] > before[1]).float().tolist()
    right_after = (after[0] > after[1]).float().tolist()
    reward_right = ((after[0] - before[0]) > (after[1] - before[1])).float().tolist()
    report = {
        "model": args.model, "settings": vars(args) | {"output": str(args.output)},
        "train_pairs": len(train), "test_pairs": len(test), "steps": trainer.state.global_step,
        "trainable_parameters": trainable, "total_parameters": total,
        "margin_accuracy_before": summary(right_before), "margin_accuracy_after": summary(right_after),
        "margin_accuracy_change": summary([a - b for a, b in zip(right_after, right_before)]),
        "implicit_reward_accuracy_after": summary(reward_right),
        "by_corruption": {kind: {"pairs": kinds.count(kind),
                                 "before": round(sum(r for r, k in zip(right_before, kinds) if k == kind)
                                                 / max(1, kinds.count(kind)), 4),
                                 "after": round(sum(r for r, k in zip(right_after, kinds) if k == kind)
                                                / max(1, kinds.count(kind)), 4)}
                          for kind in PREFERENCE_CORRUPTIONS},
        "train_log": [h for h in trainer.state.log_history if "loss" in h],
        "train_seconds": round(train_seconds, 1), "wall_seconds": round(time.perf_counter() - start, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "torch_threads": torch.get_num_threads(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "train_log"}, indent=2))


if __name__ == "__main__":
    main()
