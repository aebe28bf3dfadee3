"""The part of scratchformers that imports without torch or transformers: every list of names, written once.

- ``names``: the demo families and the model-card tasks;
- ``arguments``: the training tasks, every flag of the training scripts and of ``push`` / ``convert``, and the
  pre-rendered ``train TASK --help`` texts (``help/``);
- ``conversions``: one spec per Hugging Face architecture that ``scratchformers.convert`` converts;
- ``serve``: the flags of ``serve`` — `transformers serve`'s own, which it reads from ``transformers.cli.serve`` only
  when ``serve`` is asked for — and the checks made before the server starts.

The console front end (``scratchformers_cli``) reads them to answer ``--help`` and flag mistakes in milliseconds;
the package imports them. Only the standard library is imported here, and nothing of either of them (``serve``
reads transformers' flag definitions when called, not on import). Remote code (the modeling files a checkpoint
carries) never needs this package.
"""
