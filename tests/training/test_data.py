"""The shipped corpora load with the expected splits, and preprocessing keeps every token where it belongs."""

import unicodedata

import pytest
from datasets import ClassLabel

from scratchformers.data import (
    DATA_ENV_VAR,
    label_maps,
    load_classification,
    load_prose,
    load_translation,
    preprocess_translation,
    resolve_data_dir,
    tokenize_and_group,
)
from scratchformers.tokenization import train_tokenizer


@pytest.fixture(scope="module")
def gpt_tokenizer():
    return train_tokenizer(resolve_data_dir() / "prose" / "train.txt", "bpe", vocab_size=400)


@pytest.fixture(scope="module")
def en_de_validation():
    return load_translation("en-de")["validation"]


def test_prose_loads_train_and_validation_paragraphs():
    prose = load_prose()
    assert set(prose) == {"train", "validation"}
    for split in prose.values():
        assert split.column_names == ["text"]
        assert split.num_rows > 100
        assert all(line.strip() for line in split["text"])
    assert not set(prose["train"]["text"]) & set(prose["validation"]["text"])


@pytest.mark.parametrize("pair", ["en-de", "en-hi"])
def test_translation_loads_three_splits_of_pairs(pair):
    source, target = pair.split("-")
    dataset = load_translation(pair)
    assert set(dataset) == {"train", "validation", "test"}
    for split in dataset.values():
        assert split.column_names == ["translation"]
        assert split.num_rows > 0
        row = split[0]["translation"]
        assert set(row) == {source, target} and row[source] != row[target]


def test_en_de_test_sources_never_occur_in_train():
    dataset = load_translation("en-de")
    train = {row["en"] for row in dataset["train"]["translation"]}
    for split in ("validation", "test"):
        assert not train & {row["en"] for row in dataset[split]["translation"]}


def test_unknown_pair_names_the_allowed_pairs():
    with pytest.raises(ValueError, match="en-de"):
        load_translation("en-fr")


def test_missing_data_folder_fails_clearly(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=DATA_ENV_VAR):
        load_prose()


def test_data_folder_env_override_is_used(monkeypatch, tmp_path):
    (tmp_path / "prose").mkdir()
    for split in ("train", "validation"):
        (tmp_path / "prose" / f"{split}.txt").write_text(f"one {split} line\nanother {split} line\n", encoding="utf-8")
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    assert load_prose()["validation"]["text"] == ["one validation line", "another validation line"]


def test_classification_has_class_labels_and_disjoint_splits():
    dataset = load_classification()
    assert set(dataset) == {"train", "validation", "test"}
    feature = dataset["train"].features["label"]
    assert isinstance(feature, ClassLabel) and feature.num_classes >= 5
    id2label, label2id = label_maps(dataset)
    assert [id2label[i] for i in range(feature.num_classes)] == feature.names
    assert all(label2id[name] == i for i, name in id2label.items())
    for split in dataset.values():  # every language in every split
        assert set(split["label"]) == set(id2label)
    texts = [set(split["text"]) for split in dataset.values()]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])


@pytest.mark.parametrize("block_size", [2, 17, 64])
def test_grouped_blocks_are_the_token_stream_cut_into_block_size(gpt_tokenizer, block_size):
    texts = load_prose()["train"].select(range(150))
    grouped = tokenize_and_group(texts, gpt_tokenizer, block_size)
    assert grouped.column_names == ["input_ids", "attention_mask", "labels"]
    assert all(len(ids) == block_size for ids in grouped["input_ids"])
    eos = gpt_tokenizer.eos_token_id
    stream = [i for text in texts["text"] for i in [*gpt_tokenizer(text)["input_ids"], eos]]
    flat = [i for ids in grouped["input_ids"] for i in ids]
    assert flat == stream[: len(stream) // block_size * block_size]
    assert grouped["labels"] == grouped["input_ids"]
    assert all(set(mask) == {1} for mask in grouped["attention_mask"])


def test_grouped_texts_are_separated_by_end_of_text(gpt_tokenizer):
    """One text per line: a line's last word is followed by <|endoftext|>, not by the next line's first word as if
    they were one sentence ("cactus mix.Many sandy"), and the model learns where a text ends."""
    from datasets import Dataset

    texts = Dataset.from_dict({"text": ["Use a cactus mix.", "Many sandy soils drain well."]})
    grouped = tokenize_and_group(texts, gpt_tokenizer, 2, add_labels=False)
    decoded = gpt_tokenizer.decode([i for ids in grouped["input_ids"] for i in ids])
    assert "cactus mix.<|endoftext|>Many sandy" in decoded
    assert "mix.Many" not in decoded


def test_a_tokenizer_that_ends_texts_itself_gets_no_second_end(en_de_validation):
    """A tokenizer whose post-processor already appends </s> (our seq2seq BPE), or one without an end-of-text token
    (BERT's WordPiece, whose [SEP] ends each text), is left as it tokenizes."""
    from datasets import Dataset

    texts = Dataset.from_dict({"text": ["Open the file.", "Close it."]})
    for kind in ("seq2seq_bpe", "wordpiece"):
        tokenizer = train_tokenizer(resolve_data_dir() / "prose" / "validation.txt", kind, 600)
        stream = [i for t in texts["text"] for i in tokenizer(t)["input_ids"]]
        grouped = tokenize_and_group(texts, tokenizer, 2, add_labels=False)
        assert [i for ids in grouped["input_ids"] for i in ids] == stream[: len(stream) // 2 * 2], kind


def test_grouping_without_labels_and_over_several_batches(gpt_tokenizer):
    texts = load_prose()["validation"]
    grouped = tokenize_and_group(texts, gpt_tokenizer, 32, add_labels=False, batch_size=100)
    assert grouped.column_names == ["input_ids", "attention_mask"]
    assert grouped.num_rows > 0 and all(len(ids) == 32 for ids in grouped["input_ids"])


def test_block_size_below_two_is_rejected(gpt_tokenizer):
    with pytest.raises(ValueError, match="block_size"):
        tokenize_and_group(load_prose()["validation"], gpt_tokenizer, 1)


def test_translation_labels_decode_back_to_the_target(tmp_path, en_de_validation):
    tokenizer = train_tokenizer(resolve_data_dir() / "translation" / "en-de" / "validation.jsonl", "seq2seq_bpe", 800)
    pairs = en_de_validation.select(range(64))
    features = preprocess_translation(pairs, tokenizer, "en", "de", max_source_length=128, max_target_length=128)
    assert features.column_names == ["input_ids", "attention_mask", "labels"]
    for row, labels, ids in zip(pairs["translation"], features["labels"], features["input_ids"], strict=True):
        assert labels[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(labels, skip_special_tokens=True) == unicodedata.normalize("NFKC", row["de"])
        assert tokenizer.decode(ids, skip_special_tokens=True) == unicodedata.normalize("NFKC", row["en"])


def test_translation_truncates_and_prefixes(en_de_validation):
    tokenizer = train_tokenizer(resolve_data_dir() / "translation" / "en-de" / "validation.jsonl", "seq2seq_bpe", 800)
    pairs = en_de_validation.select(range(32))
    features = preprocess_translation(pairs, tokenizer, "en", "de", 6, 5, prefix="translate English to German: ")
    assert all(len(ids) <= 6 for ids in features["input_ids"])
    assert all(len(labels) <= 5 for labels in features["labels"])
    assert tokenizer.decode(features["input_ids"][0], skip_special_tokens=True).startswith("translate")
