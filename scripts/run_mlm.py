"""Pre-train a scratch BERT with masked language modelling on local text files (like HF's run_mlm.py). See ``scratchformers.examples.run_mlm``."""

from scratchformers.examples.run_mlm import main

if __name__ == "__main__":
    main()
