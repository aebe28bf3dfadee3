"""Helpers for the user-journey tests: a tiny saved checkpoint (no training) and a tiny config file."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from scratchformers import ScratchGPTConfig, ScratchGPTForCausalLM
from scratchformers.data import DATA_DIR
from scratchformers.model_card import write_model_card
from scratchformers.tokenization import train_tokenizer

TINY_GPT = {
    "model_type": "scratch_gpt",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def tiny_config_file(folder: Path) -> Path:
    """Write the tiny GPT config JSON (2 layers, width 32, 2 heads) into ``folder``."""
    path = folder / "gpt-micro.json"
    path.write_text(json.dumps(TINY_GPT))
    return path


def tiny_checkpoint(folder: Path, vocab_size: int = 300) -> Path:
    """An untrained tiny GPT saved like our scripts save one: weights, code, tokenizer, model card."""
    tokenizer = train_tokenizer([DATA_DIR / "prose" / "validation.txt"], kind="bpe", vocab_size=vocab_size)
    fields = {k: v for k, v in TINY_GPT.items() if k != "model_type"}
    config = ScratchGPTConfig(
        **fields,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    ScratchGPTForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_model_card(folder, {"eval_loss": 5.0, "perplexity": 148.4}, ["scratchformers-prose"], "gpt-micro.json")
    return folder


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; AssertionError if the file is not a PNG."""
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])
