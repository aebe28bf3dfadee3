"""Train a causal language model (GPT family) on text files: see ``scratchformers.examples.run_clm``.

    python scripts/run_clm.py --config configs/gpt-tiny.json --output_dir outputs/my-gpt --max_steps 500
    python scripts/run_clm.py --train_file my.txt --validation_file my-val.txt --output_dir outputs/my-gpt
"""

from scratchformers.examples.run_clm import main

if __name__ == "__main__":
    main()
