"""Instruction fine-tuning (assistant-only loss, packing, LoRA) of a causal LM checkpoint on chats: see
``scratchformers.examples.run_sft``.

    python scripts/run_sft.py --model_name_or_path outputs/my-gpt --train_file chats.jsonl --output_dir outputs/my-chat
"""

from scratchformers.examples.run_sft import main

if __name__ == "__main__":
    main()
