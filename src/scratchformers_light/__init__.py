"""The part of scratchformers that imports without torch or transformers (standard library only).

- ``conversions``: one spec per Hugging Face architecture that ``scratchformers.convert`` converts.

The package imports it; remote code (the modeling files a checkpoint carries) never needs it.
"""
