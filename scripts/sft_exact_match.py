"""Greedy exact match per task of chat checkpoints on the instruction set's test split (docs/llm.md, "Instruction
tuning"): the base gets the same ChatML template `train sft` gives it (embeddings resized, seeded).

    python scripts/sft_exact_match.py outputs/sft-base outputs/sft-chat [--file outputs/instructions/test.jsonl]
"""

from __future__ import annotations

import argparse

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from scratchformers.data import LANGUAGE_PROMPT, TRANSLATE_PROMPT
from scratchformers.sft import ensure_chat_template, generate_answers, read_chats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--file", default="outputs/instructions/test.jsonl")
    parser.add_argument("--max-new-tokens", type=int, default=40)
    args = parser.parse_args()
    chats = read_chats(args.file)
    tasks = {"translate": TRANSLATE_PROMPT.split("{")[0], "language-ID": LANGUAGE_PROMPT.split("{")[0]}
    for name in args.checkpoints:
        torch.manual_seed(0)
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForCausalLM.from_pretrained(name, trust_remote_code=True)
        ensure_chat_template(tokenizer, model)
        answers = generate_answers(model, tokenizer, chats, max_new_tokens=args.max_new_tokens)
        for task, prefix in tasks.items():
            rows = [i for i, chat in enumerate(chats) if chat[0]["content"].startswith(prefix)]
            right = sum(answers[i] == chats[i][-1]["content"].strip() for i in rows)
            print(f"{name} | {task}: {right}/{len(rows)} exact")
        print(name, "examples:", [(chats[i][0]["content"][:50], answers[i]) for i in range(4)])


if __name__ == "__main__":
    main()
