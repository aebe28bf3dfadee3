"""Tiny twins for generation tests: HF's native model and ours with the same weights, sized to a local tokenizer."""

from __future__ import annotations

import torch
import transformers
from families import FAMILIES

from scratchformers.convert import from_hf
from scratchformers.data import resolve_data_dir
from scratchformers.tokenization import train_tokenizer


def perturb(model: torch.nn.Module, scale: float = 0.3) -> torch.nn.Module:
    """Move every trained parameter (norm gains and biases too) and BART/Marian's zero `final_logits_bias` off their
    init, so that a tensor converted wrongly changes the logits and a tiny model's tokens vary (not one token
    repeated); frozen tables (Marian's sinusoids) stay. Returns the model in eval mode."""
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * scale)
        for name, buffer in model.named_buffers():
            if name.endswith("final_logits_bias"):
                buffer.add_(torch.randn_like(buffer) * scale)
    return model.eval()


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest absolute difference of two tensors of one shape."""
    return (a - b).abs().max().item()


def greedy(model, input_ids, attention_mask=None, n: int = 8, **kwargs) -> torch.Tensor:
    """Exactly `n` greedy tokens after `input_ids` (B, T) → (B, T + n); pad id 0, `kwargs` to generate()."""
    return model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=n, min_new_tokens=n,
                          do_sample=False, pad_token_id=0, **kwargs)


def gpt_tokenizer():
    """A byte-level BPE (GPT-2 style) trained on the shipped prose, padding on the left for generation."""
    tokenizer = train_tokenizer(resolve_data_dir() / "prose" / "validation.txt", "bpe", vocab_size=300)
    tokenizer.padding_side = "left"
    return tokenizer


def seq2seq_tokenizer():
    """A shared source/target BPE (Marian style) trained on the shipped en-de pairs."""
    return train_tokenizer(resolve_data_dir() / "translation" / "en-de" / "validation.jsonl", "seq2seq_bpe", 300)


def gpt_twins(tokenizer, seed: int = 0, layers: int = 2) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(GPT2LMHeadModel, our GPT) with the same weights, sized to `tokenizer`."""
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=layers, n_head=4, resid_pdrop=0.0,
        embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    hf = perturb(transformers.GPT2LMHeadModel(config))
    return hf, from_hf(hf).eval()


def bart_twins(tokenizer) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(BartForConditionalGeneration, our ScratchTransformerForConditionalGeneration) with the same weights."""
    torch.manual_seed(0)
    config = transformers.BartConfig(
        vocab_size=len(tokenizer), max_position_embeddings=160, d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, dropout=0.0,
        attention_dropout=0.0, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id, forced_eos_token_id=None,
    )
    hf = perturb(transformers.BartForConditionalGeneration(config))
    return hf, from_hf(hf).eval()


def rnn_model(tokenizer) -> torch.nn.Module:
    """The tests' tiny recurrent model (an LSTM seq2seq with Bahdanau attention: no HF twin) sized to `tokenizer`,
    weights moved off their init."""
    torch.manual_seed(0)
    rnn = FAMILIES["rnn"]
    return perturb(rnn.lm(rnn.config(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                     bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)))
