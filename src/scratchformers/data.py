"""Loaders for the small corpora shipped under ``data/`` and the preprocessing that turns them into model inputs.

Everything is built on 🤗 ``datasets`` (``load_dataset("text" | "json" | "csv", data_files=...)``), so the results
plug straight into the ``Trainer``. ``data/README.md`` describes the sources, licences and split sizes.
"""

from __future__ import annotations

import csv
import json
import os
import random
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from datasets import ClassLabel, Dataset, DatasetDict, load_dataset
from transformers import PreTrainedTokenizerBase

DATA_ENV_VAR = "SCRATCHFORMERS_DATA"
TRANSLATION_PAIRS = ("en-de", "en-hi")


DATA_DIR = Path(__file__).resolve().parents[2] / "data"  # the repository's data/ for a source or editable install
PACKAGED_DATA = "corpora"  # the same files inside an installed wheel: scratchformers/corpora (pyproject package-dir)


def packaged_folder(package: str, marker: str) -> Path | None:
    """The folder of the package data ``scratchformers.<package>`` that a (non-editable) install ships, found with
    ``importlib.resources`` by one file in it; None when this install has none (a source checkout)."""
    try:
        found = resources.files(f"{__package__}.{package}") / marker
    except ModuleNotFoundError:
        return None
    if not isinstance(found, Path) or not found.is_file():  # e.g. a zipped install: no real folder to read from
        return None
    return found.parent


def packaged_data_dir() -> Path | None:
    """The copy of ``data/`` a wheel ships as the package data ``scratchformers.corpora`` (None in a checkout)."""
    return packaged_folder(PACKAGED_DATA, "README.md")


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The shipped ``data/`` folder: ``data_dir`` if given, else ``$SCRATCHFORMERS_DATA``, else the package data of
    an installed wheel (`packaged_data_dir`), else the repository's ``DATA_DIR`` (source checkout). The package data
    comes first so that a wheel never mistakes some unrelated ``data/`` two folders above it for ours."""
    chosen = data_dir or os.environ.get(DATA_ENV_VAR)
    path = Path(chosen) if chosen else (packaged_data_dir() or DATA_DIR)
    if not path.is_dir():
        raise FileNotFoundError(
            f"data folder {str(path)!r} not found. The corpora ship in the repository's data/ folder and, in a wheel, "
            f"as the package data scratchformers/{PACKAGED_DATA}: reinstall scratchformers, pass data_dir=..., or "
            f"set {DATA_ENV_VAR} to the folder."
        )
    return path


def _split_files(folder: Path, splits: tuple[str, ...], suffix: str) -> dict[str, str]:
    """``{split: path}`` for the split files of one dataset, failing clearly if one is missing."""
    files = {split: folder / f"{split}.{suffix}" for split in splits}
    missing = [str(f) for f in files.values() if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"missing data files: {', '.join(missing)} (see data/README.md to regenerate them)")
    return {split: str(f) for split, f in files.items()}


def load_prose(data_dir: str | os.PathLike | None = None) -> DatasetDict:
    """English prose from the Python docs: splits ``train``/``validation``, one paragraph per row in column ``text``."""
    files = _split_files(resolve_data_dir(data_dir) / "prose", ("train", "validation"), "txt")
    return load_dataset("text", data_files=files)


def load_translation(pair: str = "en-de", data_dir: str | os.PathLike | None = None) -> DatasetDict:
    """Sentence pairs ``{"translation": {"en": ..., "<tgt>": ...}}`` with splits ``train``/``validation``/``test``."""
    if pair not in TRANSLATION_PAIRS:
        raise ValueError(f"unknown language pair {pair!r}; allowed: {', '.join(TRANSLATION_PAIRS)}")
    files = _split_files(resolve_data_dir(data_dir) / "translation" / pair, ("train", "validation", "test"), "jsonl")
    return load_dataset("json", data_files=files)


def load_classification(data_dir: str | os.PathLike | None = None) -> DatasetDict:
    """Language identification (``text``, ``label``); ``label`` is a ``ClassLabel`` over the language codes.

    ``label_maps(dataset)`` gives the ``id2label``/``label2id`` dicts a model config needs.
    """
    files = _split_files(resolve_data_dir(data_dir) / "classification", ("train", "validation", "test"), "csv")
    dataset = load_dataset("csv", data_files=files)
    names = sorted(set(dataset["train"]["label"]))
    return dataset.cast_column("label", ClassLabel(names=names))


def label_maps(dataset: Dataset | DatasetDict, column: str = "label") -> tuple[dict[int, str], dict[str, int]]:
    """``(id2label, label2id)`` read from a ``ClassLabel`` column."""
    features = next(iter(dataset.values())).features if isinstance(dataset, DatasetDict) else dataset.features
    feature = features[column]
    if not isinstance(feature, ClassLabel):
        raise ValueError(f"column {column!r} is {feature!r}, not a ClassLabel")
    id2label = dict(enumerate(feature.names))
    return id2label, {name: i for i, name in id2label.items()}


def _column_names(dataset: Dataset | DatasetDict) -> list[str]:
    """Column names of a ``Dataset``, or of the first split of a ``DatasetDict``."""
    return next(iter(dataset.values())).column_names if isinstance(dataset, DatasetDict) else dataset.column_names


def group_texts(examples: dict[str, list[list[Any]]], block_size: int) -> dict[str, list[list[Any]]]:
    """Concatenate each column's sequences and cut them into blocks of ``block_size`` (the remainder is dropped)."""
    concatenated = {k: [x for seq in v for x in seq] for k, v in examples.items()}
    total = (len(next(iter(concatenated.values()))) // block_size) * block_size
    return {k: [v[i : i + block_size] for i in range(0, total, block_size)] for k, v in concatenated.items()}


def tokenize_and_group(
    dataset: Dataset | DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    block_size: int,
    num_proc: int | None = None,
    add_labels: bool = True,
    text_column: str = "text",
    batch_size: int = 1000,
    end_of_text: bool = True,
) -> Dataset | DatasetDict:
    """Tokenise ``text_column`` and regroup the token stream into blocks of ``block_size`` for (causal/masked) LM.

    As in HF's ``run_clm.py``, texts are concatenated within each map batch of ``batch_size`` rows and the
    remainder shorter than a block is dropped per batch. With ``end_of_text`` (the default) each text is followed by
    the tokenizer's end-of-text token (``eos_token``, GPT-2's ``<|endoftext|>``) unless the tokenizer already ends it
    with one (its post-processor, e.g. ``</s>``) or has none (BERT's WordPiece: ``[SEP]`` ends each text already), so
    one line's last word is never followed by the next line's first as if they were one text, and a model learns
    where a text ends (GPT-2 is trained on documents separated this way). Returns ``input_ids``,
    ``attention_mask`` (and, with ``add_labels``, ``labels`` = a copy of ``input_ids``; the model shifts them).
    """
    if block_size < 2:
        raise ValueError(f"block_size must be >= 2 (a block needs an input and a next token), got {block_size}")
    eos = tokenizer.eos_token_id if end_of_text else None

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        # verbose=False: texts longer than the model are expected here (they are cut into blocks below); without it the
        # tokenizer warns "Token indices sequence length is longer than the specified maximum" (as HF's run_clm.py
        # notes after the fact)
        encoded = tokenizer(batch[text_column], return_attention_mask=True, verbose=False)
        ids, mask = encoded["input_ids"], encoded["attention_mask"]
        if eos is not None:
            ends = [not row or row[-1] != eos for row in ids]
            ids = [[*row, eos] if end else row for row, end in zip(ids, ends)]
            mask = [[*row, 1] if end else row for row, end in zip(mask, ends)]
        return {"input_ids": ids, "attention_mask": mask}

    def group(batch: dict[str, list]) -> dict[str, list]:
        blocks = group_texts(batch, block_size)
        if add_labels:
            blocks["labels"] = [list(ids) for ids in blocks["input_ids"]]
        return blocks

    columns = _column_names(dataset)
    tokenized = dataset.map(
        tokenize, batched=True, batch_size=batch_size, num_proc=num_proc, remove_columns=columns, desc="Tokenizing"
    )
    return tokenized.map(
        group, batched=True, batch_size=batch_size, num_proc=num_proc, desc=f"Grouping into blocks of {block_size}"
    )


def tokenize_for_packing(
    dataset: Dataset | DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    num_proc: int | None = None,
    text_column: str = "text",
    batch_size: int = 1000,
) -> Dataset | DatasetDict:
    """Tokenise each text as its own sequence (truncated to ``max_length`` tokens) for padding-free packing.

    Unlike ``tokenize_and_group``, texts are not concatenated: ``transformers.DataCollatorWithFlattening`` packs a
    batch of them into one row later, with ``position_ids`` restarting at each text, so no token sees another text
    and nothing is padded. Texts of fewer than 2 tokens (nothing to predict) are dropped. Returns ``input_ids`` only
    (the collator makes the labels, -100 at each text's first token).
    """
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2 (a sequence needs an input and a next token), got {max_length}")

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        return {"input_ids": tokenizer(batch[text_column], truncation=True, max_length=max_length)["input_ids"]}

    tokenized = dataset.map(tokenize, batched=True, batch_size=batch_size, num_proc=num_proc,
                            remove_columns=_column_names(dataset), desc="Tokenizing (one sequence per text)")
    return tokenized.filter(lambda row: len(row["input_ids"]) >= 2, num_proc=num_proc, desc="Dropping 1-token texts")


def preprocess_translation(
    dataset: Dataset | DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    source_lang: str,
    target_lang: str,
    max_source_length: int,
    max_target_length: int,
    prefix: str = "",
    num_proc: int | None = None,
) -> Dataset | DatasetDict:
    """Tokenise ``translation`` pairs into ``input_ids``/``attention_mask`` (source) and ``labels`` (target ids).

    Targets go through ``tokenizer(text_target=...)``; both sides are truncated to their maximum lengths and left
    unpadded (pad per batch with ``DataCollatorForSeq2Seq``).
    """

    def preprocess(batch: dict[str, list]) -> dict[str, list]:
        sources = [prefix + pair[source_lang] for pair in batch["translation"]]
        targets = [pair[target_lang] for pair in batch["translation"]]
        model_inputs = tokenizer(sources, max_length=max_source_length, truncation=True)
        labels = tokenizer(text_target=targets, max_length=max_target_length, truncation=True)
        return {
            "input_ids": model_inputs["input_ids"],
            "attention_mask": model_inputs["attention_mask"],
            "labels": labels["input_ids"],
        }

    return dataset.map(
        preprocess, batched=True, num_proc=num_proc, remove_columns=_column_names(dataset), desc="Tokenizing pairs"
    )


LANGUAGE_NAMES = {"de": "German", "es": "Spanish", "fr": "French", "it": "Italian", "nl": "Dutch", "pt": "Portuguese",
                  "en": "English", "hi": "Hindi"}
TRANSLATE_PROMPT = "Translate to German: {text}"
LANGUAGE_PROMPT = "Which language is this sentence in? {text}"
INSTRUCTION_SPLITS = ("train", "validation", "test")
#: The tasks of ``instruction_chats``: name → the user prompt it asks.
INSTRUCTION_TASKS = {"translate": TRANSLATE_PROMPT, "language-id": LANGUAGE_PROMPT}


def split_limits(limits: Mapping[str, int] | None, name: str) -> dict[str, int]:
    """``limits`` (rows per split, by split name) as a dict; ValueError naming ``name`` (the argument) when a key is
    not one of ``INSTRUCTION_SPLITS``."""
    limits = dict(limits or {})
    unknown = set(limits) - set(INSTRUCTION_SPLITS)
    if unknown:
        raise ValueError(f"{name} has unknown splits {sorted(unknown)}; allowed: {', '.join(INSTRUCTION_SPLITS)}")
    return limits


def en_de_pairs(root: Path, split: str) -> list[dict[str, str]]:
    """The ``{"en", "de"}`` pairs of the shipped en-de ``split`` under the data folder ``root``, in file order."""
    return [json.loads(line)["translation"] for line in
            (root / "translation" / "en-de" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines() if line]


def instruction_chats(data_dir: str | os.PathLike | None = None, seed: int = 0,
                      max_per_task: Mapping[str, int] | None = None,
                      tasks: Sequence[str] = tuple(INSTRUCTION_TASKS)) -> dict[str, list[dict[str, Any]]]:
    """A small real instruction set from the shipped corpora, as ``{"messages": [user, assistant]}`` rows per split.

    Two tasks: ``"Translate to German: <en>"`` → the German of an en-de pair, and ``"Which language is this sentence
    in? <text>"`` → the language's English name (``LANGUAGE_NAMES``) of a language-ID row. Each split is built only
    from the same split of both corpora (the shipped splits are disjoint, so nothing leaks between train, validation
    and test), at most ``max_per_task[split]`` rows per task (the first ones after a seeded shuffle; None: all), the
    two tasks shuffled together with ``seed``. ``tasks`` keeps some of them (names of ``INSTRUCTION_TASKS``); the
    kept task gets the same rows (in another order) whichever others are kept. Deterministic for a given ``seed``. Returns
    ``{split: rows}``. Raises ValueError for an unknown split or task name.
    """
    root = resolve_data_dir(data_dir)
    limits = split_limits(max_per_task, "max_per_task")
    if isinstance(tasks, str) or not tasks or set(tasks) - set(INSTRUCTION_TASKS):
        raise ValueError(f"tasks must be a non-empty list of {', '.join(INSTRUCTION_TASKS)}, got {tasks!r}")
    rng = random.Random(seed)
    out = {}
    for split in INSTRUCTION_SPLITS:
        pairs = en_de_pairs(root, split)
        with (root / "classification" / f"{split}.csv").open(encoding="utf-8", newline="") as fh:
            labelled = list(csv.DictReader(fh))
        missing = sorted({row["label"] for row in labelled} - set(LANGUAGE_NAMES))
        if missing:
            raise ValueError(f"language codes {missing} have no name in LANGUAGE_NAMES")
        translate = [(TRANSLATE_PROMPT.format(text=p["en"]), p["de"]) for p in pairs]
        identify = [(LANGUAGE_PROMPT.format(text=r["text"]), LANGUAGE_NAMES[r["label"]]) for r in labelled]
        rows = []
        for name, task in zip(INSTRUCTION_TASKS, (translate, identify), strict=True):
            rng.shuffle(task)  # (both shuffled whatever is kept: the same seed gives a kept task the same rows)
            rows += task[: limits.get(split)] if name in tasks else []
        rng.shuffle(rows)
        out[split] = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
                      for q, a in rows]
    return out


def build_instruction_set(output_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None, seed: int = 0,
                          max_per_task: Mapping[str, int] | None = None,
                          tasks: Sequence[str] = tuple(INSTRUCTION_TASKS)) -> dict[str, Path]:
    """Write ``instruction_chats(...)`` to ``output_dir/{train,validation,test}.jsonl`` (messages format, one chat a
    line, UTF-8) for ``scratchformers train sft``. Returns ``{split: path}``."""
    return write_json_lines(output_dir, instruction_chats(data_dir, seed, max_per_task, tasks))


def write_json_lines(output_dir: str | os.PathLike, splits: Mapping[str, list[dict[str, Any]]]) -> dict[str, Path]:
    """Write each split's rows to ``output_dir/<split>.jsonl`` (one JSON object a line, UTF-8, non-ASCII kept),
    creating the folder. Returns ``{split: path}``."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, rows in splits.items():
        paths[split] = out / f"{split}.jsonl"
        paths[split].write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return paths


#: How ``preference_pairs`` corrupts a translation into the rejected answer, taken in turn: another sentence's German
#: (fluent but unfaithful) or the right German with its words shuffled (faithful words, broken order).
PREFERENCE_CORRUPTIONS = ("other_sentence", "shuffled_words")


def _shuffled_words(text: str, rng: random.Random) -> str | None:
    """``text``'s words in a seeded random order different from the original, or None when no other order exists."""
    words = text.split()
    if len(set(words)) < 2:
        return None
    while True:
        order = words[:]
        rng.shuffle(order)
        if order != words:
            return " ".join(order)


def preference_pairs(data_dir: str | os.PathLike | None = None, seed: int = 0,
                     max_per_split: Mapping[str, int] | None = None, conversational: bool = True
                     ) -> dict[str, list[dict[str, Any]]]:
    """A small preference set (DPO; TRL's preference format) from the shipped en-de pairs, per split.

    Each row asks ``TRANSLATE_PROMPT`` ("Translate to German: <en>"); ``chosen`` is the pair's German and
    ``rejected`` a corrupted German (``PREFERENCE_CORRUPTIONS``, alternating): the German of another pair of the same
    split (a seeded derangement, never the row's own; skipped if identical text) or the right German with its words
    shuffled (a one-word answer gets another sentence's German instead). Each split comes only from the same shipped
    split (they are disjoint, so the validation and test pairs are held out of train). At most
    ``max_per_split[split]`` rows per split (the first after a seeded shuffle; None: all); deterministic for a
    ``seed``. ``conversational=True`` gives TRL's conversational format (``prompt`` = ``[{"role": "user", ...}]``,
    ``chosen``/``rejected`` = ``[{"role": "assistant", ...}]``), else plain strings. Returns ``{split: rows}``, each
    row also carrying ``corruption`` (one of ``PREFERENCE_CORRUPTIONS``). ValueError for an unknown split name.
    """
    root = resolve_data_dir(data_dir)
    limits = split_limits(max_per_split, "max_per_split")
    rng = random.Random(seed)
    out = {}
    for split in INSTRUCTION_SPLITS:
        pairs = en_de_pairs(root, split)
        rng.shuffle(pairs)
        pairs = pairs[: limits.get(split)]
        rows = []
        for i, pair in enumerate(pairs):
            kind = PREFERENCE_CORRUPTIONS[i % len(PREFERENCE_CORRUPTIONS)]
            rejected = _shuffled_words(pair["de"], rng) if kind == "shuffled_words" else None
            if rejected is None:  # another pair's German: the next ones after a seeded shuffle, never the same text
                kind = "other_sentence"
                step = 1
                while pairs[(i + step) % len(pairs)]["de"] == pair["de"] and step < len(pairs):
                    step += 1
                rejected = pairs[(i + step) % len(pairs)]["de"]
                if rejected == pair["de"]:
                    continue  # (a split whose Germans are all the same: no pair to build)
            prompt = TRANSLATE_PROMPT.format(text=pair["en"])
            if conversational:
                rows.append({"prompt": [{"role": "user", "content": prompt}],
                             "chosen": [{"role": "assistant", "content": pair["de"]}],
                             "rejected": [{"role": "assistant", "content": rejected}], "corruption": kind})
            else:
                rows.append({"prompt": prompt, "chosen": pair["de"], "rejected": rejected, "corruption": kind})
        out[split] = rows
    return out


def build_preference_set(output_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None, seed: int = 0,
                         max_per_split: Mapping[str, int] | None = None, conversational: bool = True
                         ) -> dict[str, Path]:
    """Write ``preference_pairs(...)`` to ``output_dir/{train,validation,test}.jsonl`` (one row a line, UTF-8) for
    ``scratchformers train dpo``. Returns ``{split: path}``."""
    return write_json_lines(output_dir, preference_pairs(data_dir, seed, max_per_split, conversational))
