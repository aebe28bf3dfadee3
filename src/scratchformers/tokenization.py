"""Train subword tokenizers on local files with 🤗 ``tokenizers`` and wrap them for ``transformers``.

Four kinds, one per model family's habits:

- ``"bpe"``: GPT-2's byte-level BPE. Every byte is in the vocabulary, so any text round-trips exactly.
- ``"wordpiece"``: BERT's lower-cased WordPiece with ``[CLS] A [SEP] B [SEP]`` and segment ids.
- ``"unigram"`` / ``"seq2seq_bpe"``: SentencePiece-style (Metaspace ``▁``) Unigram or BPE for encoder-decoders, one
  vocabulary shared by source and target, ``</s>`` appended to every sequence (like T5 and Marian).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

TOKENIZER_KINDS = ("bpe", "wordpiece", "unigram", "seq2seq_bpe")

GPT_SPECIALS = {
    "bos_token": "<|endoftext|>",
    "eos_token": "<|endoftext|>",
    "unk_token": "<|endoftext|>",
    "pad_token": "<|pad|>",
}
BERT_SPECIALS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}
SEQ2SEQ_SPECIALS = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>", "bos_token": "<s>"}


def _special_list(specials: dict[str, str]) -> list[str]:
    """The distinct special tokens in order: they get ids 0, 1, … in the trained vocabulary."""
    return list(dict.fromkeys(specials.values()))


def _iter_texts(files: Sequence[Path]) -> Iterator[str]:
    """Lines of text files; for ``.jsonl`` the strings of each row's ``translation`` dict (both sides) or ``text``."""
    for path in files:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if path.suffix != ".jsonl":
                    yield line.rstrip("\n")
                    continue
                row = json.loads(line)
                yield from row["translation"].values() if "translation" in row else [row["text"]]


def _build(kind: str, vocab_size: int, min_frequency: int) -> tuple[Tokenizer, trainers.Trainer, dict[str, str]]:
    """An untrained ``Tokenizer`` with its normaliser/pre-tokeniser/decoder, its trainer and its special tokens."""
    if kind == "bpe":
        specials = GPT_SPECIALS
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=_special_list(specials),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
    elif kind == "wordpiece":
        specials = BERT_SPECIALS
        tokenizer = Tokenizer(models.WordPiece(unk_token=specials["unk_token"]))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece(prefix="##")
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=_special_list(specials),
            continuing_subword_prefix="##",
            show_progress=False,
        )
    else:  # "unigram" | "seq2seq_bpe": SentencePiece style, "▁" marks a word start
        specials = SEQ2SEQ_SPECIALS
        if kind == "unigram":
            tokenizer = Tokenizer(models.Unigram())
            trainer = trainers.UnigramTrainer(
                vocab_size=vocab_size,
                special_tokens=_special_list(specials),
                unk_token=specials["unk_token"],
                show_progress=False,
            )
        else:
            tokenizer = Tokenizer(models.BPE(unk_token=specials["unk_token"]))
            trainer = trainers.BpeTrainer(
                vocab_size=vocab_size,
                min_frequency=min_frequency,
                special_tokens=_special_list(specials),
                show_progress=False,
            )
        tokenizer.normalizer = normalizers.NFKC()
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    return tokenizer, trainer, specials


def _post_processor(kind: str, tokenizer: Tokenizer, specials: dict[str, str]) -> processors.PostProcessor | None:
    """Special tokens added around encoded text: BERT's ``[CLS] A [SEP] B [SEP]``, seq2seq's ``A </s>``."""
    if kind == "wordpiece":
        cls, sep = specials["cls_token"], specials["sep_token"]
        return processors.TemplateProcessing(
            single=f"{cls} $A {sep}",
            pair=f"{cls} $A {sep} $B:1 {sep}:1",
            special_tokens=[(cls, tokenizer.token_to_id(cls)), (sep, tokenizer.token_to_id(sep))],
        )
    if kind in ("unigram", "seq2seq_bpe"):
        eos = specials["eos_token"]
        return processors.TemplateProcessing(
            single=f"$A {eos}", pair=f"$A {eos} $B:1 {eos}:1", special_tokens=[(eos, tokenizer.token_to_id(eos))]
        )
    return None  # byte-level BPE keeps its ByteLevel post-processor: GPT-2 adds no special tokens


def train_tokenizer(
    files: str | os.PathLike | Sequence[str | os.PathLike],
    kind: str,
    vocab_size: int,
    save_dir: str | os.PathLike | None = None,
    min_frequency: int = 2,
    model_max_length: int = 1024,
) -> PreTrainedTokenizerFast:
    """Train a ``kind`` tokenizer with ``vocab_size`` entries on local text (or translation ``.jsonl``) files.

    Returns a ``PreTrainedTokenizerFast`` with its special tokens set; with ``save_dir`` it is also saved there, so
    ``AutoTokenizer.from_pretrained(save_dir)`` reloads it offline. ``min_frequency`` is ignored by ``"unigram"``.
    """
    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"unknown tokenizer kind {kind!r}; allowed: {', '.join(TOKENIZER_KINDS)}")
    paths = [Path(files)] if isinstance(files, (str, os.PathLike)) else [Path(f) for f in files]
    missing = [str(p) for p in paths if not p.is_file()]
    if not paths or missing:
        raise ValueError(f"training files not found: {', '.join(missing) or '(none given)'}")

    tokenizer, trainer, specials = _build(kind, vocab_size, min_frequency)
    minimum = len(_special_list(specials)) + (len(pre_tokenizers.ByteLevel.alphabet()) if kind == "bpe" else 1)
    if vocab_size < minimum:
        raise ValueError(f"vocab_size={vocab_size} is too small for kind {kind!r}: it needs at least {minimum}")
    try:
        tokenizer.train_from_iterator(_iter_texts(paths), trainer=trainer)
    except Exception as err:  # the Unigram trainer raises a bare Exception when the characters do not fit
        if "not large enough" not in str(err):
            raise
        raise ValueError(f"vocab_size={vocab_size} is too small for these files: {err}") from err
    if tokenizer.get_vocab_size() > vocab_size:  # the characters alone did not fit
        raise ValueError(
            f"vocab_size={vocab_size} is too small for these files: their characters and special tokens alone need "
            f"{tokenizer.get_vocab_size()} entries"
        )
    post_processor = _post_processor(kind, tokenizer, specials)
    if post_processor is not None:
        tokenizer.post_processor = post_processor

    input_names = (
        ["input_ids", "token_type_ids", "attention_mask"] if kind == "wordpiece" else ["input_ids", "attention_mask"]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        model_max_length=model_max_length,
        model_input_names=input_names,
        clean_up_tokenization_spaces=False,
        **specials,
    )
    if save_dir is not None:
        wrapped.save_pretrained(save_dir)
    return wrapped
