"""Train and evaluate a seq2seq model for translation, in the manner of Hugging Face's `run_translation.py`. See ``scratchformers.examples.run_translation``."""

from scratchformers.examples.run_translation import main

if __name__ == "__main__":
    main()
