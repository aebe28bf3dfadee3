#!/usr/bin/env python
"""Train and evaluate a seq2seq model for translation, in the manner of Hugging Face's `run_translation.py`.

Arguments come from three dataclasses through `HfArgumentParser`: `ModelArguments`, `DataArguments` and
`Seq2SeqTrainingArguments` (every Trainer option works: `--max_steps`, `--label_smoothing_factor`, `--fp16`, …).
With no arguments it trains `configs/transformer-tiny.json` on the shipped English→German pairs with a shared BPE
tokenizer trained on the training split, then reports BLEU and chrF of beam search on the test split:

    python scripts/run_translation.py --output_dir outputs/transformer-en-de
    python scripts/run_translation.py --source_lang en --target_lang hi \\
        --train_file data/translation/en-hi/train.jsonl --validation_file data/translation/en-hi/validation.jsonl \\
        --test_file data/translation/en-hi/test.jsonl
    python scripts/run_translation.py --model_type scratch_transformer --config_overrides d_model=256,num_heads=4

Defaults follow the paper (§5.3–5.4): Adam(β₂=0.98, ε=1e−9), linear warm-up then inverse square root
(`--lr_scheduler_type inverse_sqrt`; `--noam_factor F` sets the peak to F·d_model^−0.5·warmup^−0.5),
label smoothing 0.1, beam search with 4 beams.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
from datasets import load_dataset
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    Seq2SeqTrainingArguments,
    set_seed,
)

import scratchformers  # noqa: F401  (registers our families with the Auto classes)
from scratchformers.data import preprocess_translation, resolve_data_dir
from scratchformers.examples.common import (
    CONFIG_DIR,
    RunArguments,
    check_file,
    check_training_args,
    default_pin_memory,
    describe_data,
    display_path,
    hold_out,
    keeps_earlier_run,
    prepare_output_dir,
    record_training_data,
    refuse_fsdp_on_cpu,
    resume_checkpoint,
    save_checkpoint,
    shipped_config,
    tokenizer_source,
)
from scratchformers.metrics import compute_translation_metrics
from scratchformers.seq2seq import noam_learning_rate
from scratchformers.tokenization import train_tokenizer
from scratchformers.training import AtomicCheckpointSeq2SeqTrainer
from scratchformers_light.arguments import TRANSLATION_TRAINING_DEFAULTS as TRAINING_DEFAULTS
from scratchformers_light.arguments import TranslationDataArguments as DataArguments
from scratchformers_light.arguments import TranslationModelArguments as ModelArguments
from scratchformers_light.arguments import build_parser

logger = logging.getLogger("run_translation")
EN_DE = resolve_data_dir() / "translation" / "en-de"  # the shipped pairs (data/, or the wheel's copy)


def _overrides(text: str | None) -> dict:
    """'a=1,b=x' → {"a": 1, "b": "x"} (values parsed as JSON where they parse)."""
    result = {}
    for item in filter(None, (text or "").split(",")):
        if "=" not in item:
            raise ValueError(f"--config_overrides item {item!r} is not key=value")
        key, value = item.split("=", 1)
        try:
            result[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            result[key.strip()] = value
    return result


def load_tokenizer(model_args: ModelArguments, data_args: DataArguments, resume: str | None = None):
    """The given tokenizer, the one of the checkpoint resumed (``resume``) or of --model_name_or_path, or a new
    shared source/target BPE trained on the training pairs."""
    name = tokenizer_source(model_args, resume)
    if name:
        return AutoTokenizer.from_pretrained(name, trust_remote_code=model_args.trust_remote_code)
    logger.info("training a shared %d-entry BPE tokenizer on %s", model_args.vocab_size, data_args.train_file)
    return train_tokenizer([data_args.train_file], kind="seq2seq_bpe", vocab_size=model_args.vocab_size)


def load_model(model_args: ModelArguments, tokenizer):
    """A checkpoint, or a new model whose vocabulary and special ids follow the tokenizer."""
    if model_args.model_name_or_path:
        return AutoModelForSeq2SeqLM.from_pretrained(
            model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code
        )
    if model_args.model_type:
        base = AutoConfig.for_model(model_args.model_type)
    else:
        base = AutoConfig.from_pretrained(model_args.config, trust_remote_code=model_args.trust_remote_code)
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.pad_token_id
    settings = {
        **base.to_dict(),
        **_overrides(model_args.config_overrides),
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "decoder_start_token_id": start,
    }
    config = type(base).from_dict(settings)  # re-validated with the new values
    if not getattr(config, "is_encoder_decoder", False):
        raise ValueError(f"model type {config.model_type!r} is not an encoder-decoder; translation needs one.")
    return AutoModelForSeq2SeqLM.from_config(config, trust_remote_code=model_args.trust_remote_code)


def make_compute_metrics(tokenizer):
    """`compute_metrics` for `predict_with_generate`: decode, then corpus BLEU and chrF from the local modules."""

    def compute_metrics(eval_pred) -> dict[str, float]:
        preds, labels = eval_pred.predictions, eval_pred.label_ids
        preds = preds[0] if isinstance(preds, tuple) else preds
        preds = np.where(preds < 0, tokenizer.pad_token_id, preds)
        labels = np.where(labels < 0, tokenizer.pad_token_id, labels)
        hypotheses = [t.strip() for t in tokenizer.decode(preds.tolist(), skip_special_tokens=True)]
        references = [[t.strip()] for t in tokenizer.decode(labels.tolist(), skip_special_tokens=True)]
        scores = compute_translation_metrics(hypotheses, references)
        scores["gen_len"] = float(np.mean([np.count_nonzero(row != tokenizer.pad_token_id) for row in preds]))
        return {k: round(v, 4) for k, v in scores.items()}

    return compute_metrics


@keeps_earlier_run
def main(argv: list[str] | None = None) -> dict[str, float]:
    """Parse arguments (a JSON file path also works), train, save a complete checkpoint, report BLEU/chrF."""
    parser = build_parser((ModelArguments, DataArguments, RunArguments, Seq2SeqTrainingArguments), __doc__,
                          TRAINING_DEFAULTS)
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) == 1 and argv[0].endswith(".json"):
        given = json.loads(Path(argv[0]).read_text())
        model_args, data_args, run_args, training_args = parser.parse_dict({**TRAINING_DEFAULTS, **given})
    else:
        model_args, data_args, run_args, training_args, unknown = parser.parse_args_into_dataclasses(
            args=argv, return_remaining_strings=True)
        if unknown:
            from .common import unknown_flags_message

            raise ValueError(unknown_flags_message(unknown))
        given = {a[2:].split("=", 1)[0].replace("-", "_") for a in argv if a.startswith("--")}
    refuse_fsdp_on_cpu(training_args)
    default_pin_memory(training_args, set(given))
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.INFO)
    check_training_args(training_args)
    own = data_args.train_file is not None
    for flag in ("train_file", "validation_file", "test_file"):
        check_file(f"--{flag}", getattr(data_args, flag))
    if not own:  # the shipped en-de pairs, all three splits
        data_args.train_file = str(EN_DE / "train.jsonl")
        data_args.validation_file = data_args.validation_file or str(EN_DE / "validation.jsonl")
        data_args.test_file = data_args.test_file or str(EN_DE / "test.jsonl")
    if not (model_args.model_name_or_path or model_args.model_type):
        config_path = shipped_config(model_args.config)
        if not config_path.is_file():
            raise ValueError(f"--config {model_args.config!r} does not exist; shipped configs: "
                             f"{sorted(p.name for p in CONFIG_DIR.glob('*.json'))}")
        model_args.config = str(config_path)
    _overrides(model_args.config_overrides)  # a malformed --config_overrides fails here, before any training
    prepare_output_dir(training_args.output_dir, run_args.overwrite_output_dir, training_args.resume_from_checkpoint)
    training_args.resume_from_checkpoint = resume_checkpoint(training_args.output_dir,
                                                             training_args.resume_from_checkpoint)
    set_seed(training_args.seed)

    files = {"train": data_args.train_file}
    if data_args.validation_file:
        files["validation"] = data_args.validation_file
    if data_args.test_file:
        files["test"] = data_args.test_file
    raw = load_dataset("json", data_files=files)
    for split in raw:
        if "translation" not in raw[split].column_names:
            raise ValueError(f"{files[split]} has no 'translation' field; each line must be "
                             '{"translation": {"<source_lang>": ..., "<target_lang>": ...}}')
    if "validation" not in raw:
        raw["train"], raw["validation"] = hold_out(raw["train"], data_args.validation_split_percentage,
                                                   training_args.seed, data_args.train_file)
    for split, limit in (
        ("train", data_args.max_train_samples),
        ("validation", data_args.max_eval_samples),
        ("test", data_args.max_predict_samples),
    ):
        if split in raw and limit is not None:
            raw[split] = raw[split].select(range(min(limit, len(raw[split]))))
    pair = raw["train"][0]["translation"]
    for lang in (data_args.source_lang, data_args.target_lang):
        if lang not in pair:
            raise ValueError(f"language {lang!r} is not in the pairs of {data_args.train_file}; found {sorted(pair)}")
    summary = describe_data(data_args.train_file if own else None, data_args.validation_file,
                            data_args.validation_split_percentage, training_args.seed)
    print(f"data: {summary} {len(raw['train'])} training and {len(raw['validation'])} validation pairs")

    tokenizer = load_tokenizer(model_args, data_args, training_args.resume_from_checkpoint)
    model = load_model(model_args, tokenizer)
    if data_args.noam_factor is not None:
        warmup = int(training_args.warmup_steps)
        training_args.learning_rate = noam_learning_rate(model.config.hidden_size, warmup, data_args.noam_factor)
    logger.info("%s with %.2fM parameters", type(model).__name__, model.num_parameters() / 1e6)

    tokenized = preprocess_translation(
        raw,
        tokenizer,
        data_args.source_lang,
        data_args.target_lang,
        data_args.max_source_length,
        data_args.max_target_length,
        prefix=data_args.source_prefix,
    )
    trainer = AtomicCheckpointSeq2SeqTrainer(  # checkpoints appear whole or not at all (training.py)
        model=model,
        args=training_args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"],
        processing_class=tokenizer,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100),
        compute_metrics=make_compute_metrics(tokenizer) if training_args.predict_with_generate else None,
    )
    metrics: dict[str, float] = {}
    if training_args.do_train or not training_args.do_eval and not training_args.do_predict:
        result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        metrics.update({f"train_{k}" if not k.startswith("train") else k: v for k, v in result.metrics.items()})
    if training_args.do_eval or training_args.eval_strategy != "no":
        metrics.update(trainer.evaluate(metric_key_prefix="eval"))
    predictions = None
    if "test" in tokenized:
        prediction = trainer.predict(tokenized["test"], metric_key_prefix="test")
        metrics.update(prediction.metrics)
        if training_args.predict_with_generate and trainer.is_world_process_zero():
            preds = np.where(prediction.predictions < 0, tokenizer.pad_token_id, prediction.predictions)
            predictions = [t.strip() for t in tokenizer.decode(preds.tolist(), skip_special_tokens=True)]
    base = model_args.model_name_or_path or model_args.model_type or display_path(model_args.config)
    names = [Path(data_args.train_file).stem] if own else ["scratchformers-en-de"]
    save_checkpoint(
        trainer, tokenizer, training_args.output_dir, metrics, names, base, task="translation",
        language=[data_args.source_lang, data_args.target_lang], license=None if own else "apache-2.0",
        training_summary=summary if own else None,
    )
    if predictions is not None:
        (Path(training_args.output_dir) / "test_predictions.txt").write_text("\n".join(predictions) + "\n")
    record_training_data(
        training_args.output_dir, task="translation", train_file=data_args.train_file,
        validation_file=data_args.validation_file,
        validation_split_percentage=None if data_args.validation_file else data_args.validation_split_percentage,
        test_file=data_args.test_file, seed=training_args.seed, source_lang=data_args.source_lang,
        target_lang=data_args.target_lang,
    )
    summary = {k: metrics[k] for k in ("eval_bleu", "eval_chrf", "test_bleu", "test_chrf") if k in metrics}
    logger.info("results: %s", summary)
    print(f"saved model, tokenizer, trainer state and model card to {training_args.output_dir}")
    return metrics


if __name__ == "__main__":
    main()
