"""Train a text classifier on CSV text,label files: see ``scratchformers.examples.run_classification``.

    python scripts/run_classification.py --output_dir outputs/langid --max_steps 300
    python scripts/run_classification.py --train_file my.csv --validation_file my-val.csv --output_dir outputs/clf
"""

from scratchformers.examples.run_classification import main

if __name__ == "__main__":
    main()
