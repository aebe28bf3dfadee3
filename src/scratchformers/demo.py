"""The one-command demo: tokenizer + small GPT on the shipped prose → perplexity → save → reload via Auto → generate."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

from .configuration_scratch_gpt import ScratchGPTConfig
from .data import load_prose, resolve_data_dir, tokenize_and_group
from .modeling_scratch_gpt import ScratchGPTForCausalLM
from .tokenization import train_tokenizer

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def reload_and_generate(checkpoint: str | os.PathLike, prompt: str, max_new_tokens: int = 40) -> str:
    """Load `checkpoint` in a fresh Python process with `trust_remote_code=True` (as a Hub user would) and generate."""
    code = textwrap.dedent(
        f"""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        tok = AutoTokenizer.from_pretrained({str(checkpoint)!r}, trust_remote_code=True)
        model = AutoModelForCausalLM.from_pretrained({str(checkpoint)!r}, trust_remote_code=True).eval()
        inputs = tok({prompt!r}, return_tensors="pt")
        torch.manual_seed(0)
        out = model.generate(**inputs, max_new_tokens={max_new_tokens}, do_sample=True, top_k=40, temperature=0.8)
        print(type(model).__module__ + "." + type(model).__name__)
        print(tok.decode(out[0], skip_special_tokens=True))
        """
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"reloading {checkpoint} in a fresh process failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip()


def run_demo(
    output_dir: str | os.PathLike = "outputs/demo",
    max_steps: int = 600,
    block_size: int = 64,
    vocab_size: int = 2048,
    config: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
) -> dict:
    """Train a byte-level BPE tokenizer and a small GPT on the shipped prose; evaluate, save, reload, generate."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    prose_dir = resolve_data_dir(data_dir) / "prose"
    print(f"[1/5] training a byte-level BPE tokenizer (vocab {vocab_size}) on {prose_dir}")
    tokenizer = train_tokenizer([prose_dir / "train.txt"], kind="bpe", vocab_size=vocab_size)

    print("[2/5] tokenising and grouping the prose into blocks of", block_size)
    blocks = tokenize_and_group(load_prose(data_dir), tokenizer, block_size=block_size)

    config_path = Path(config) if config else CONFIG_DIR / "gpt-tiny.json"
    fields = json.loads(config_path.read_text())
    fields.pop("model_type", None)
    fields |= dict(
        vocab_size=len(tokenizer),
        max_position_embeddings=max(block_size, fields.get("max_position_embeddings", block_size)),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = ScratchGPTForCausalLM(ScratchGPTConfig(**fields))
    print(f"[3/5] training a {model.num_parameters() / 1e6:.2f}M-parameter GPT for {max_steps} steps ({config_path.name})")
    args = TrainingArguments(
        output_dir=str(out / "trainer"),
        max_steps=max_steps,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=32,
        learning_rate=1e-3,
        warmup_steps=max(1, max_steps // 20),
        lr_scheduler_type="cosine",
        weight_decay=0.01,
        logging_steps=max(1, max_steps // 30),
        eval_strategy="no",
        save_strategy="no",
        report_to=[],
        seed=seed,
        use_cpu=True,
    )
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=blocks["train"],
        eval_dataset=blocks["validation"],
        data_collator=collator,
    )
    trainer.train()
    metrics = trainer.evaluate()
    perplexity = math.exp(metrics["eval_loss"])
    print(f"[4/5] validation loss {metrics['eval_loss']:.3f}, perplexity {perplexity:.1f}")

    checkpoint = out / "checkpoint"
    trainer.save_model(str(checkpoint))
    tokenizer.save_pretrained(str(checkpoint))
    print(f"[5/5] saved to {checkpoint}; reloading it in a fresh process with trust_remote_code=True")
    sample = reload_and_generate(checkpoint, "The import statement")
    print(sample)
    losses = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]
    result = {"checkpoint": str(checkpoint), "eval_loss": metrics["eval_loss"], "perplexity": perplexity,
              "sample": sample, "train_losses": losses}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    print(f"results: {out / 'results.json'}")
    return result
