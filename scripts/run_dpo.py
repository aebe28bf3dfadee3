"""Preference tuning (DPO, TRL's DPOTrainer; LoRA optional) of a causal LM checkpoint on prompt/chosen/rejected rows:
see ``scratchformers.examples.run_dpo``.

    python scripts/run_dpo.py --model_name_or_path outputs/my-chat --train_file prefs.jsonl --output_dir outputs/my-dpo
"""

from scratchformers.examples.run_dpo import main

if __name__ == "__main__":
    main()
