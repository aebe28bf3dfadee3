"""Preference tuning (DPO) of a causal LM checkpoint with TRL's DPOTrainer.

--train_file holds one preference row per line in TRL's format: three strings,
{"prompt": "...", "chosen": "...", "rejected": "..."} (TRL ends each answer with the end-of-sequence token), or chat
messages, {"prompt": [{"role": "user", "content": "..."}], "chosen": [{"role": "assistant", "content": "..."}],
"rejected": [...]}, rendered with the tokenizer's chat template (a tokenizer without one gets ChatML, as in
`train sft`). DPO (Rafailov et al. 2023) raises log π(chosen) − log π(rejected) relative to a frozen reference, with
strength --beta. With --lora_r N only LoRA adapters (peft) are trained and the reference is the model with the
adapter disabled (TRL's default; no second copy); --merge_lora saves a plain merged checkpoint, else the adapter
alone is saved. Without --lora_r every weight is trained against a frozen copy.

Validation (--validation_file or a seeded held-out part of --train_file), before and after training:
preference_accuracy, the share of pairs with log π(chosen|prompt) > log π(rejected|prompt); after training also
reward_accuracy (the implicit reward β·(log π − log π_ref) ranks chosen first) and TRL's eval metrics
(eval_rewards/accuracies, eval_rewards/margins, eval_logps/chosen ...).

    scratchformers train dpo --train_file prefs.jsonl --model_name_or_path outputs/my-chat --output_dir outputs/my-dpo
    scratchformers train dpo --train_file prefs.jsonl --model_name_or_path outputs/my-chat --lora_r 8 \\
        --learning_rate 2e-4 --output_dir outputs/my-dpo-lora

Every TrainingArguments flag works, and TRL's DPOConfig flags (--beta, --loss_type, --max_length ...) with TRL's
defaults: --learning_rate 1e-6, --max_length 1024 (capped at the model's positions), --bf16 unless --fp16,
--gradient_checkpointing (pass --bf16 false --gradient_checkpointing false on a CPU without bfloat16 support).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from scratchformers_light.arguments import DpoDataArguments as DataArguments
from scratchformers_light.arguments import SftModelArguments as ModelArguments
from scratchformers_light.arguments import training_arguments_class

from ..dpo import completion_logprobs, prefers_chosen, read_preferences, reward_prefers_chosen
from ..sft import lora_config
from ..training import AtomicCheckpoints
from .common import RunArguments, describe_data, keeps_earlier_run, record_training_data, start_run
from .run_sft import check_lora_flags, load_chat_model, load_splits, lora_targets, missing_checkpoint, save_chat_model

DPOConfig = training_arguments_class("dpo")  # ValueError (one error line) naming the extra when trl is missing


@keeps_earlier_run
def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Parse the flags, run DPO and evaluate, save the checkpoint (or adapter); returns the metrics."""
    from trl import DPOTrainer  # (installed: DPOConfig came from it)

    class AtomicCheckpointDPOTrainer(AtomicCheckpoints, DPOTrainer):
        """TRL's DPOTrainer whose checkpoints appear whole or not at all, as every `scratchformers train` task's."""

    model_args, data_args, run_args, training_args = start_run(
        (ModelArguments, DataArguments, RunArguments, DPOConfig), argv, __doc__, missing_checkpoint
    )
    if data_args.train_file is None:
        raise ValueError('--train_file is required: JSON lines with one {"prompt", "chosen", "rejected"} row per line')
    check_lora_flags(model_args)
    rows = load_splits(data_args, training_args.seed, read_preferences)  # every row checked before the model loads
    if data_args.max_train_samples is not None:
        rows["train"] = rows["train"].select(range(min(data_args.max_train_samples, len(rows["train"]))))
    if data_args.max_eval_samples is not None:
        rows["validation"] = rows["validation"].select(range(min(data_args.max_eval_samples, len(rows["validation"]))))
    conversational = not isinstance(rows["train"][0]["prompt"], str)

    tokenizer, model, base, new_tokens = load_chat_model(model_args, chat_template=conversational)
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions and (training_args.max_length is None or training_args.max_length > positions):
        training_args.max_length = positions  # (prompt + answer; longer ones are cut at the end)
    summary = describe_data(data_args.train_file, data_args.validation_file, data_args.validation_split_percentage,
                            training_args.seed)
    print(f"data: {summary} {len(rows['train'])} training and {len(rows['validation'])} validation pairs")

    peft = None
    if model_args.lora_r > 0:
        peft = lora_config(model, model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout,
                           lora_targets(model_args), trainable_token_ids=new_tokens)
    trainer = AtomicCheckpointDPOTrainer(
        model=model,
        # full fine-tuning: a frozen copy (TRL would reload the base, which lacks the chat tokens just added); LoRA:
        # none, the reference is the model with the adapter disabled
        ref_model=copy.deepcopy(model) if peft is None else None,
        args=training_args,
        train_dataset=rows["train"],
        eval_dataset=rows["validation"],
        processing_class=tokenizer,
        peft_config=peft,
    )
    if peft is not None:
        trainable, total = trainer.model.get_nb_trainable_parameters()
        print(f"LoRA r={model_args.lora_r}: training {trainable:,} of {total:,} parameters")

    metrics: dict[str, float] = {}
    if training_args.do_eval:
        before = completion_logprobs(trainer.model, trainer.get_eval_dataloader())
        metrics["preference_accuracy_before"] = prefers_chosen(*before).float().mean().item()
        print(f"before training: preference_accuracy {metrics['preference_accuracy_before']:.4f}")
    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        metrics.update(result.metrics)
        trainer.log_metrics("train", result.metrics)
    if training_args.do_eval:
        after = completion_logprobs(trainer.model, trainer.get_eval_dataloader())
        evaluated = {"preference_accuracy": prefers_chosen(*after).float().mean().item(),
                     "reward_accuracy": reward_prefers_chosen(before, after).float().mean().item(),
                     **trainer.evaluate()}
        metrics.update(evaluated)
        trainer.log_metrics("eval", evaluated)
        print(f"after training: preference_accuracy {evaluated['preference_accuracy']:.4f}, reward_accuracy "
              f"{evaluated['reward_accuracy']:.4f}")

    save_chat_model(trainer, tokenizer, model_args, data_args, training_args, metrics, summary, base)
    record_training_data(
        training_args.output_dir, task="dpo", train_file=data_args.train_file,
        validation_file=data_args.validation_file,
        validation_split_percentage=None if data_args.validation_file else data_args.validation_split_percentage,
        seed=training_args.seed, max_length=training_args.max_length,
    )
    return metrics


if __name__ == "__main__":
    main()
