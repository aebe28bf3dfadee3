"""The part of scratchformers that imports without torch or transformers: every list of names, written once.

- ``names``: the demo families and the model-card tasks;
- ``arguments``: the training tasks, every flag of the training scripts and of ``push`` / ``convert``, and the
  pre-rendered ``train TASK --help`` texts (``help/``);
- ``conversions``: one spec per Hugging Face architecture that ``scratchformers.convert`` converts.

The console front end (``scratchformers_cli``) reads them to answer ``--help`` and flag mistakes in milliseconds;
the package imports them. Only the standard library is imported here, and nothing of either of them. Remote code
(the modeling files a checkpoint carries) never needs this package.
"""
