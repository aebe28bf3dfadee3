"""The tiny chat model of the chat, serve and fast-decoding tests: a Llama-style ScratchGPT with a chat-template
tokenizer, the template itself, and the answer `scratchformers chat` must print (plain greedy `generate`)."""

from __future__ import annotations

from pathlib import Path

import torch
from families import LLAMA_OPTIONS

from scratchformers import ScratchGPTConfig, ScratchGPTForCausalLM
from scratchformers.data import DATA_DIR
from scratchformers.tokenization import train_tokenizer

#: A chat template in the plain style ("user: …</s>"), with a system turn and a generation prompt.
TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}\n"
    "{% else %}{{ m['role'] }}: {{ m['content'] }}{{ eos_token }}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
#: The tiny model's config options: Llama's (rotary, RMSNorm, SwiGLU) with grouped-query attention, dropout off.
LLAMA_STYLE = {
    **LLAMA_OPTIONS, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "intermediate_size": 64, "max_position_embeddings": 128, "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}


def chat_tokenizer(template: str | None = TEMPLATE):
    """Our `train clm` tokenizer (byte-level BPE on the shipped prose) with a chat template."""
    tokenizer = train_tokenizer([DATA_DIR / "prose" / "validation.txt"], kind="bpe", vocab_size=300)
    tokenizer.chat_template = template
    return tokenizer


def save_chat_checkpoint(folder: Path, printable_only: bool = False) -> Path:
    """Save the tiny chat model (weights drawn from N(0, 0.3), seeded) and its tokenizer into `folder`.

    The weights are sharper than the N(0, 0.02) init, so greedy answers are not one token repeated. With
    `printable_only`, the output layer never picks a token that decodes to anything but printable ASCII (their rows
    are zero, the others random), so answers are text whose streamed pieces can be compared with the whole."""
    tokenizer = chat_tokenizer()
    torch.manual_seed(0)
    config = ScratchGPTConfig(**LLAMA_STYLE, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                              eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = ScratchGPTForCausalLM(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.3)
        if printable_only:
            unprintable = [i for i in range(len(tokenizer))
                           if not (tokenizer.decode([i]).isascii() and tokenizer.decode([i]).isprintable())]
            model.lm_head.weight[unprintable] = 0.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def reference_answer(model, tokenizer, messages, max_new_tokens: int) -> str:
    """Greedy `generate` on the templated conversation, new tokens decoded: what chat must print."""
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
