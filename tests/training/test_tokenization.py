"""Trained tokenizers save, reload offline to the same ids, and add the special tokens each model family expects."""

import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from scratchformers.data import resolve_data_dir
from scratchformers.tokenization import TOKENIZER_KINDS, train_tokenizer

DATA = resolve_data_dir()
PROSE = DATA / "prose" / "train.txt"
PAIRS = [DATA / "translation" / "en-de" / "train.jsonl", DATA / "translation" / "en-hi" / "train.jsonl"]
FILES = {"bpe": [PROSE], "wordpiece": [PROSE], "unigram": PAIRS, "seq2seq_bpe": PAIRS}
SAMPLES = [
    "Assignment statements are used to (re)bind names to values.",
    "Größe des Mauszeigers, bezogen auf das Zeigerthema.",
    "कृपया अद्यतन पूरी करने के लिए कंप्यूटर पुनःप्रारंभ करें",
]


def train_rows(lang: str, n: int) -> list[str]:
    """The first ``n`` ``lang`` sentences of a training file: their characters are in the trained vocabulary."""
    path = PAIRS[0] if lang in ("en", "de") else PAIRS[1]
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line)["translation"][lang] for line, _ in zip(fh, range(n))]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tokenizer per kind, trained with a small vocabulary and saved."""
    out = {}
    for kind in TOKENIZER_KINDS:
        save_dir = tmp_path_factory.mktemp(kind)
        out[kind] = (train_tokenizer(FILES[kind], kind, vocab_size=600, save_dir=save_dir), save_dir)
    return out


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_reloaded_tokenizer_gives_identical_ids(trained, kind, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer, save_dir = trained[kind]
    reloaded = AutoTokenizer.from_pretrained(save_dir)
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    assert len(tokenizer) == len(reloaded) <= 600
    assert reloaded.special_tokens_map == tokenizer.special_tokens_map
    assert reloaded(SAMPLES) == tokenizer(SAMPLES)
    assert reloaded(SAMPLES[0], SAMPLES[1]) == tokenizer(SAMPLES[0], SAMPLES[1])
    assert reloaded.pad_token_id is not None and reloaded.pad_token_id != reloaded.unk_token_id


def test_byte_level_bpe_round_trips_any_text_exactly(trained):
    tokenizer, _ = trained["bpe"]
    text = "  Tabs\tand\nnewlines,   spaces — ünïcode 🙂 " + SAMPLES[2] + " end "
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text
    assert tokenizer.bos_token == tokenizer.eos_token == "<|endoftext|>" and tokenizer.pad_token == "<|pad|>"


def test_wordpiece_encodes_pairs_as_cls_a_sep_b_sep_with_segment_ids(trained):
    tokenizer, _ = trained["wordpiece"]
    first, second = "The first sentence.", "And the second one."
    encoded = tokenizer(first, second)
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    n_first = len(tokenizer.tokenize(first))
    assert tokens[0] == "[CLS]" and tokens[n_first + 1] == "[SEP]" and tokens[-1] == "[SEP]"
    assert tokens.count("[SEP]") == 2 and "[CLS]" not in tokens[1:]
    assert encoded["token_type_ids"] == [0] * (n_first + 2) + [1] * (len(tokens) - n_first - 2)
    assert tokenizer.decode(encoded["input_ids"], skip_special_tokens=True) == "the first sentence. and the second one."
    assert tokenizer.mask_token == "[MASK]" and tokenizer.mask_token_id is not None


@pytest.mark.parametrize("kind", ["unigram", "seq2seq_bpe"])
def test_seq2seq_tokenizer_appends_eos_and_decodes_german_and_hindi(trained, kind):
    tokenizer, _ = trained[kind]
    for lang in ("de", "hi"):
        for text in train_rows(lang, 20):
            ids = tokenizer(text)["input_ids"]
            target_ids = tokenizer(text_target=text)["input_ids"]
            assert ids == target_ids and ids[-1] == tokenizer.eos_token_id and ids.count(tokenizer.eos_token_id) == 1
            assert tokenizer.decode(ids, skip_special_tokens=True) == unicodedata.normalize("NFKC", text)
    assert (tokenizer.pad_token, tokenizer.eos_token, tokenizer.unk_token, tokenizer.bos_token) == (
        "<pad>",
        "</s>",
        "<unk>",
        "<s>",
    )


def test_seq2seq_vocabulary_is_shared_by_source_and_target(trained):
    tokenizer, _ = trained["seq2seq_bpe"]
    for lang in ("en", "de", "hi"):
        ids = [i for text in train_rows(lang, 50) for i in tokenizer(text)["input_ids"]]
        assert ids.count(tokenizer.unk_token_id) == 0


def test_unknown_kind_names_the_allowed_kinds():
    with pytest.raises(ValueError, match="wordpiece"):
        train_tokenizer(PROSE, "sentencepiece", 500)


def test_missing_files_and_tiny_vocabularies_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        train_tokenizer(tmp_path / "missing.txt", "bpe", 500)
    with pytest.raises(ValueError, match="too small"):
        train_tokenizer(PROSE, "bpe", 100)  # below the 256 bytes
    for kind in ("wordpiece", "unigram", "seq2seq_bpe"):
        with pytest.raises(ValueError, match="too small"):
            train_tokenizer(PAIRS[1], kind, 30)  # fewer entries than the characters of the Hindi file


def test_cli_trains_and_saves_a_loadable_tokenizer(tmp_path):
    """scripts/train_tokenizer.py, run as a user runs it."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "train_tokenizer.py"
    run = subprocess.run([sys.executable, str(script), "--files", str(PROSE), "--kind", "wordpiece", "--vocab_size",
                          "400", "--output_dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "400" in run.stdout
    assert AutoTokenizer.from_pretrained(tmp_path).cls_token == "[CLS]"
