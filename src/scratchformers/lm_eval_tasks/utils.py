"""Datasets for the task files beside this one (lm-eval's ``custom_dataset: !function utils.<name>``).

lm-eval imports this file by its path, not as part of the package, so it imports scratchformers absolutely. lm-eval
calls each function with the task's metadata and ``dataset_kwargs`` as keyword arguments (which include the model
arguments): only ``data_dir`` is read, the rest ignored.
"""

from __future__ import annotations

import os
from typing import Any

from datasets import DatasetDict

from scratchformers.data import load_classification, load_prose

# The label codes of data/classification and the names offered to the model as continuations.
LANGUAGES = {"de": "German", "es": "Spanish", "fr": "French", "it": "Italian", "nl": "Dutch", "pt": "Portuguese"}


def prose(data_dir: str | os.PathLike | None = None, **_: Any) -> DatasetDict:
    """English prose, one paragraph per row in ``text``: splits ``train`` and ``validation`` (the held-out documents)."""
    return load_prose(data_dir)


def language_id(data_dir: str | os.PathLike | None = None, **_: Any) -> DatasetDict:
    """The language-identification splits with a ``language`` column holding the English name of ``label``."""
    dataset = load_classification(data_dir)
    codes = dataset["test"].features["label"].names
    unknown = sorted(set(codes) - set(LANGUAGES))
    if unknown:
        raise ValueError(f"labels {unknown} have no language name; known: {', '.join(LANGUAGES)}")
    return dataset.map(lambda row: {"language": LANGUAGES[codes[row["label"]]]})


def language_names(doc: dict[str, Any] | None = None) -> list[str]:
    """The answer choices, the same for every row: the six language names, in the order of ``LANGUAGES``."""
    return list(LANGUAGES.values())
