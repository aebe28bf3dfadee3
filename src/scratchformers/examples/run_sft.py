"""Instruction fine-tuning (SFT) of a causal LM checkpoint on chats, with the loss on the assistant's tokens only.

--train_file holds one chat per line in the usual messages format,
{"messages": [{"role": "system" | "user" | "assistant", "content": "..."}, ...]}. Each chat is rendered with the
tokenizer's chat template and only the assistant's tokens are learned (labels -100 elsewhere; see
scratchformers.sft). A tokenizer without a chat template (a `train clm` checkpoint) gets a ChatML template, with
<|im_start|>/<|im_end|> added as special tokens and the embeddings resized. With --packing the chats of a batch are
one padding-free row, position ids restarting at each chat (no attention across chats). With --lora_r N only LoRA
adapters (peft) are trained; --merge_lora saves a plain merged checkpoint, else the adapter alone is saved.

Validation is the assistant-token loss (exp: perplexity) on --validation_file or a seeded held-out part of
--train_file, measured before and after training; --exact_match_samples N also scores greedy exact match of the
last answer on N validation chats, before and after.

    scratchformers train sft --train_file chats.jsonl --model_name_or_path outputs/my-gpt --output_dir outputs/my-chat
    scratchformers train sft --train_file chats.jsonl --model_name_or_path outputs/my-gpt --lora_r 8 --merge_lora \\
        --packing --output_dir outputs/my-chat-lora

Every TrainingArguments flag works (--num_train_epochs, --learning_rate, --eval_strategy, --bf16, --report_to ...).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    DataCollatorWithFlattening,
    Trainer,
    TrainingArguments,
)

from scratchformers.training import AtomicCheckpointTrainer
from scratchformers_light.arguments import ChatDataArguments
from scratchformers_light.arguments import SftDataArguments as DataArguments
from scratchformers_light.arguments import SftModelArguments as ModelArguments

from ..sft import (
    CHATML_TOKENS,
    assistant_token_loss,
    ensure_chat_template,
    exact_match,
    lora_model,
    read_chats,
    tokenize_chats,
)
from .common import (
    RunArguments,
    describe_data,
    finite_perplexity,
    hold_out,
    keeps_earlier_run,
    record_training_data,
    save_checkpoint,
    start_run,
)

logger = logging.getLogger(__name__)


def require_inputs(model_args: ModelArguments, data_args: DataArguments) -> None:
    """The flags SFT cannot run without, and LoRA's ranges. ValueError naming the flag."""
    if data_args.train_file is None:
        raise ValueError('--train_file is required: JSON lines with one {"messages": [...]} chat per line')
    if data_args.max_seq_length < 2:
        raise ValueError(f"--max_seq_length must be >= 2, got {data_args.max_seq_length}")
    check_lora_flags(model_args)


def check_lora_flags(model_args: ModelArguments) -> None:
    """LoRA's flags (``train sft`` and ``train dpo``): ranges, --merge_lora only with an adapter, peft installed
    when one is asked for. ValueError naming the flag."""
    if model_args.lora_r < 0:
        raise ValueError(f"--lora_r must be 0 (full fine-tuning) or a positive rank, got {model_args.lora_r}")
    if not 0 <= model_args.lora_dropout < 1:
        raise ValueError(f"--lora_dropout must be in [0, 1), got {model_args.lora_dropout}")
    if model_args.merge_lora and model_args.lora_r == 0:
        raise ValueError("--merge_lora needs --lora_r > 0 (there is no adapter to merge in full fine-tuning)")
    if model_args.lora_r > 0:
        import importlib.util

        if importlib.util.find_spec("peft") is None:
            raise ValueError("--lora_r needs peft: pip install peft (or scratchformers[lora])")


def missing_checkpoint(model_args: ModelArguments) -> None:
    """``start_run``'s check for a run without --model_name_or_path: SFT has no fresh-model --config to fall back to."""
    raise ValueError("--model_name_or_path is required: the checkpoint folder to fine-tune (from `scratchformers "
                     "train clm` or `scratchformers convert`)")


def load_splits(data_args: ChatDataArguments, seed: int, read_rows: Callable[[str], list[dict]]) -> DatasetDict:
    """``train``/``validation`` rows (``read_rows(path)`` reads and checks a file's rows): validation from
    --validation_file or held out of --train_file (``common.hold_out``, seeded, so ``training_data.json`` can name it
    again). Shared by ``train sft`` and ``train dpo``."""
    splits = DatasetDict(train=Dataset.from_list(read_rows(data_args.train_file)))
    if data_args.validation_file:
        splits["validation"] = Dataset.from_list(read_rows(data_args.validation_file))
    else:
        splits["train"], splits["validation"] = hold_out(
            splits["train"], data_args.validation_split_percentage, seed, data_args.train_file
        )
    return splits


def load_chats(data_args: DataArguments, seed: int) -> DatasetDict:
    """``train``/``validation`` chats (column ``messages``), ``load_splits`` of ``read_chats``."""
    return load_splits(data_args, seed, lambda path: [{"messages": chat} for chat in read_chats(path)])


def load_chat_model(model_args: ModelArguments, chat_template: bool = True) -> tuple[Any, Any, str, list[int]]:
    """(tokenizer, model, base, new_token_ids) for fine-tuning ``--model_name_or_path``: a fast tokenizer (ValueError
    otherwise: offsets are needed), the causal LM, ``base`` its absolute folder (what the adapter config and card
    name). With ``chat_template`` a tokenizer without one gets ChatML (``ensure_chat_template``: tokens added, the
    embeddings resized, their ids returned as ``new_token_ids`` for LoRA to train); without, only a pad token."""
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, trust_remote_code=True)
    if not tokenizer.is_fast:
        raise ValueError(f"{model_args.model_name_or_path}'s tokenizer is not a fast tokenizer: the assistant tokens "
                         "are found with its offsets, which only fast (Rust) tokenizers give")
    base = str(Path(model_args.model_name_or_path).resolve()) if Path(model_args.model_name_or_path).is_dir() \
        else model_args.model_name_or_path
    model = AutoModelForCausalLM.from_pretrained(base, trust_remote_code=True)
    if not chat_template:
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer, model, base, []
    if ensure_chat_template(tokenizer, model):
        print(f"the tokenizer has no chat template: using ChatML ({', '.join(CHATML_TOKENS)} added as special tokens, "
              f"embeddings resized to {len(tokenizer)}; see scratchformers.sft.CHATML_TEMPLATE)")
        return tokenizer, model, base, tokenizer.convert_tokens_to_ids(list(CHATML_TOKENS))
    return tokenizer, model, base, []


def lora_targets(model_args: ModelArguments) -> list[str]:
    """--lora_target_modules as a list of names."""
    return [t.strip() for t in model_args.lora_target_modules.split(",") if t.strip()]


@keeps_earlier_run
def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Parse the flags, fine-tune and evaluate, save the checkpoint (or adapter); returns the metrics."""
    model_args, data_args, run_args, training_args = start_run(
        (ModelArguments, DataArguments, RunArguments, TrainingArguments), argv, __doc__, missing_checkpoint
    )
    require_inputs(model_args, data_args)
    chats = load_chats(data_args, training_args.seed)

    tokenizer, model, base, new_tokens = load_chat_model(model_args)
    positions = getattr(model.config, "max_position_embeddings", None) or data_args.max_seq_length
    max_length = min(data_args.max_seq_length, positions)
    tokenized = tokenize_chats(chats, tokenizer, max_length, num_proc=data_args.preprocessing_num_workers)
    train_set, eval_set = tokenized["train"], tokenized["validation"]
    eval_chats = chats["validation"]["messages"]
    if data_args.max_train_samples is not None:
        train_set = train_set.select(range(min(data_args.max_train_samples, len(train_set))))
    if data_args.max_eval_samples is not None:
        eval_set = eval_set.select(range(min(data_args.max_eval_samples, len(eval_set))))
        eval_chats = eval_chats[: data_args.max_eval_samples]
    for split, part in (("training", train_set), ("validation", eval_set)):
        if len(part) == 0:
            raise ValueError(f"no {split} chat keeps an assistant token within --max_seq_length {max_length}")
    summary = describe_data(data_args.train_file, data_args.validation_file, data_args.validation_split_percentage,
                            training_args.seed)
    print(f"data: {summary} {len(train_set)} training and {len(eval_set)} validation chats")

    padded = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)  # right-padded rows, labels padded with -100
    batch_size = training_args.per_device_eval_batch_size
    match_chats = eval_chats[: data_args.exact_match_samples]
    metrics: dict[str, float] = {}
    if training_args.do_eval:
        metrics["eval_loss_before"] = assistant_token_loss(model, eval_set, padded, batch_size)
        if match_chats:
            metrics["exact_match_before"] = exact_match(model, tokenizer, match_chats, data_args.max_new_tokens,
                                                        batch_size)
        print("before training: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))

    if model_args.lora_r > 0:
        model = lora_model(model, model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout,
                           lora_targets(model_args), trainable_token_ids=new_tokens)
        trainable, total = model.get_nb_trainable_parameters()
        print(f"LoRA r={model_args.lora_r}: training {trainable:,} of {total:,} parameters")
    # what the optimizer updates (tied input/output embeddings counted once), recorded in all_results.json
    metrics["trainable_parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)

    trainer = AtomicCheckpointTrainer(  # checkpoints appear whole or not at all (training.py)
        model=model,
        args=training_args,
        train_dataset=train_set if training_args.do_train else None,
        processing_class=tokenizer,
        data_collator=DataCollatorWithFlattening() if data_args.packing else padded,
    )
    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        metrics.update(result.metrics)
        trainer.log_metrics("train", result.metrics)
    if training_args.do_eval:
        evaluated = {"eval_loss": assistant_token_loss(trainer.model, eval_set, padded, batch_size)}
        evaluated["perplexity"] = finite_perplexity(evaluated["eval_loss"])
        if match_chats:
            evaluated["exact_match"] = exact_match(trainer.model, tokenizer, match_chats, data_args.max_new_tokens,
                                                   batch_size)
        metrics.update(evaluated)
        trainer.log_metrics("eval", evaluated)
        print("after training: " + ", ".join(f"{k} {v:.4f}" for k, v in evaluated.items()))

    save_chat_model(trainer, tokenizer, model_args, data_args, training_args, metrics, summary, base)
    record_training_data(
        training_args.output_dir, task="sft", train_file=data_args.train_file,
        validation_file=data_args.validation_file,
        validation_split_percentage=None if data_args.validation_file else data_args.validation_split_percentage,
        seed=training_args.seed, max_seq_length=max_length,
    )
    return metrics


def save_chat_model(trainer: Trainer, tokenizer, model_args: ModelArguments, data_args: ChatDataArguments,
                    training_args: TrainingArguments, metrics: dict, summary: str, base: str) -> None:
    """Save the fine-tuned model (``train sft``, ``train dpo``): a full checkpoint (full fine-tuning or --merge_lora,
    through ``common.save_checkpoint``) or the LoRA adapter with the tokenizer and a card saying how to load it."""
    out = Path(training_args.output_dir)
    names = [Path(data_args.train_file).stem]
    if model_args.lora_r > 0 and model_args.merge_lora:
        trainer.model = trainer.model.merge_and_unload()  # W + (α/r)·B·A, a plain model again
        trainer.model_wrapped = trainer.model
    if model_args.lora_r == 0 or model_args.merge_lora:
        save_checkpoint(trainer, tokenizer, out, metrics, names, base, task="causal-lm", language=None, license=None,
                        training_summary=summary)
        print(f"saved model, tokenizer and model card to {out}")
        return
    # adapter_config.json + adapter_model.safetensors; with the embeddings when chat tokens were added (what peft's
    # "auto" decides too, but it warns the user about it on every run)
    from transformers import AutoConfig

    from ..model_card import write_model_card

    grown = trainer.model.get_base_model().config.vocab_size > AutoConfig.from_pretrained(
        base, trust_remote_code=True).vocab_size
    trainer.model.save_pretrained(str(out), save_embedding_layers=grown)
    tokenizer.save_pretrained(str(out))
    # the fine-tuned generation config (it also stops at <|im_end|>), which load_adapter puts on the base
    trainer.model.get_base_model().generation_config.save_pretrained(str(out))
    if trainer.is_world_process_zero():
        import json

        (out / "all_results.json").write_text(json.dumps(metrics, indent=2, default=str))
        trainer.state.save_to_json(str(out / "trainer_state.json"))
        usage = f"""A LoRA adapter (peft) on `{base}`. With scratchformers installed:

```python
from scratchformers.sft import load_adapter
model = load_adapter("{out.name}")          # the base from adapter_config.json, resized to this tokenizer
model = model.merge_and_unload()            # optional: a plain model
```

With peft alone: load the base with `AutoModelForCausalLM.from_pretrained(base, trust_remote_code=True)`, call
`resize_token_embeddings(len(tokenizer))` with this folder's tokenizer if it is longer, then
`PeftModel.from_pretrained(model, "{out.name}")`.
"""
        write_model_card(out, metrics, names, base, task="causal-lm", language=None, license=None,
                         training_summary=summary, extra_tags=["lora", "peft"],
                         config=trainer.model.get_base_model().config.to_dict(), usage=usage)
    print(f"saved the LoRA adapter, tokenizer and model card to {out}; load it with "
          f"scratchformers.sft.load_adapter({str(out)!r}) (or pass --merge_lora for a plain checkpoint)")


if __name__ == "__main__":
    main()
