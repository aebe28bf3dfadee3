"""Extract the small corpora shipped under ``data/`` from sources present on a Debian/CPython machine.

This script was run once (Debian 12 "bookworm" container, CPython 3.11) and its output is committed, because a
user's machine may hold other gettext catalogs or another Python version. It is deterministic: re-running it on the
same machine rewrites identical files.

    python scripts/extract_data.py [--locale-dir /usr/share/locale] [--out data]

Sources:
- English prose: ``pydoc_data.topics.topics`` (the Python documentation's topic texts, PSF licence).
- Translation pairs and language-identification sentences: the gettext catalogs (``<lang>/LC_MESSAGES/*.mo``)
  installed by Debian packages; each ``msgid`` is an English UI message and its ``msgstr`` a human translation.
"""

from __future__ import annotations

import argparse
import csv
import gettext
import json
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

SEED = 1234
REPO = Path(__file__).resolve().parents[1]

# Catalog domains left out: iso-codes' lists of country/language/script names (proper nouns, thousands of rare
# ones) and per-country keyboard names, which are not UI sentences and would dominate the pairs.
EXCLUDED_DOMAIN_PREFIXES = ("iso_", "xkeyboard-config")

# Per language pair: (locale folder, test size, validation size, cap on all pairs kept, to stay ~1.5 MB).
TRANSLATION_PAIRS = {"en-de": ("de", 500, 500, 11000), "en-hi": ("hi", 200, 200, 11000)}
# Language identification: label -> locale folder.
CLASSIFICATION_LANGS = {"de": "de", "es": "es", "fr": "fr", "it": "it", "nl": "nl", "pt": "pt_BR"}
CLASSIFICATION_PER_LANG = 600  # 480 train / 60 validation / 60 test per language

FORMAT_CODE = re.compile(
    r"%(?:\d+\$)?(?:\([^)]*\))?[-+ #0']*\d*(?:\.\d+)?(?:hh|h|ll|l|L|q|j|z|t|I64)?[diouxXeEfFgGcrsSpam%]|\{[^{}]*\}"
)
PAREN_MNEMONIC = re.compile(r"\s?\([_&][^\W_]\)")
AMP_MNEMONIC = re.compile(r"&(?=[^\W_])(?![A-Za-z]+;|#\d+;)")


# ----------------------------------------------------------------------------- prose


def extract_prose(out: Path) -> dict[str, int]:
    """Write ``prose/{train,validation}.txt``: one paragraph per line, ~5% of the characters (whole documents) held out.

    Topics overlap (``specialnames`` contains ``attribute-access``, …), so each paragraph is kept only at its first
    occurrence (topics in sorted order): no paragraph is in both splits.
    """
    import pydoc_data.topics

    topics = pydoc_data.topics.topics
    seen: set[str] = set()
    paragraphs: dict[str, list[str]] = {}
    for name in sorted(topics):
        paragraphs[name] = []
        for paragraph in re.split(r"\n\s*\n", topics[name]):
            text = " ".join(re.sub(r"[*=~^-]{4,}", " ", paragraph).split())  # drop reST title underlines
            if len(text) >= 20 and re.search(r"[A-Za-z]{3}", text) and text not in seen:
                seen.add(text)
                paragraphs[name].append(text)
    names = sorted(name for name in topics if paragraphs[name])
    random.Random(SEED).shuffle(names)
    total = sum(len(p) for lines in paragraphs.values() for p in lines)
    validation, held = [], 0
    for name in names:
        if held >= 0.05 * total:
            break
        validation.append(name)
        held += sum(len(p) for p in paragraphs[name])
    splits = {"train": sorted(set(names) - set(validation)), "validation": sorted(validation)}
    counts = {}
    (out / "prose").mkdir(parents=True, exist_ok=True)
    for split, docs in splits.items():
        lines = [p for name in docs for p in paragraphs[name]]
        (out / "prose" / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        counts[f"{split}_documents"] = len(docs)
        counts[f"{split}_lines"] = len(lines)
    return counts


# ----------------------------------------------------------------------------- gettext catalogs


def read_catalog(path: Path) -> dict[str, str]:
    """Singular ``msgid -> msgstr`` of one ``.mo`` file (header, plural and untranslated entries skipped)."""
    with path.open("rb") as fh:
        catalog = gettext.GNUTranslations(fh)._catalog
    pairs = {}
    for key, value in catalog.items():
        if not isinstance(key, str) or not key or not value:  # plural keys are (msgid, n) tuples; "" is the header
            continue
        pairs[key.split("\x04")[-1]] = value  # drop a msgctxt ("context\x04msgid")
    return pairs


def catalogs(locale_dir: Path, lang: str) -> list[Path]:
    """The language's ``.mo`` files, sorted, without the excluded domains."""
    files = sorted((locale_dir / lang / "LC_MESSAGES").glob("*.mo"))
    return [f for f in files if not f.stem.startswith(EXCLUDED_DOMAIN_PREFIXES)]


def strip_mnemonic(text: str, other: str) -> str:
    """Remove a keyboard-accelerator marker (``_File``, ``&Open``) unless the marked word is code on both sides."""
    text = PAREN_MNEMONIC.sub("", text)  # "Next (_N)": the accelerator of a non-Latin translation
    if text.count("_") == 1:
        word = re.search(r"[^\W_]*_[^\W_]+", text)
        if word and word.group() not in other:  # "pg_ctl" in both sides is an identifier, "_Datei"/"_File" is not
            text = text.replace("_", "", 1)
    return AMP_MNEMONIC.sub("", text)


def clean_pair(source: str, target: str) -> tuple[str, str] | None:
    """Normalise one msgid/msgstr pair, or ``None`` if it is not a usable sentence pair."""
    source, target = " ".join(source.split()), " ".join(target.split())
    source, target = strip_mnemonic(source, target), strip_mnemonic(target, source)
    source, target = source.strip(), target.strip()
    if source == target:
        return None
    for text in (source, target):
        if not 2 <= len(text) <= 120 or not any(ch.isalpha() for ch in text):
            return None
        letters = sum(ch.isalpha() for ch in FORMAT_CODE.sub("", text))
        if letters < 0.5 * len(text.replace(" ", "")):  # mostly format codes, numbers or punctuation
            return None
    return source, target


def debian_package(path: Path) -> str:
    """The Debian package that installed ``path`` (``dpkg -S``), or ``"unknown"``."""
    try:
        result = subprocess.run(["dpkg", "-S", str(path)], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return result.stdout.split(":")[0].strip()


def collect_pairs(locale_dir: Path, lang: str) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """Cleaned pairs deduplicated by source (first catalog in sorted order wins): ``{source: (target, domain)}``."""
    pairs: dict[str, tuple[str, str]] = {}
    unreadable = []
    for path in catalogs(locale_dir, lang):
        try:
            entries = read_catalog(path)
        except (UnicodeDecodeError, OSError) as err:  # a catalog whose bytes do not match its declared charset
            unreadable.append(f"{path.name} ({type(err).__name__})")
            continue
        for msgid, msgstr in sorted(entries.items()):
            cleaned = clean_pair(msgid, msgstr)
            if cleaned and cleaned[0] not in pairs:
                pairs[cleaned[0]] = (cleaned[1], path.stem)
    return pairs, unreadable


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """One JSON object per line, UTF-8, non-ASCII kept readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def extract_translation(locale_dir: Path, out: Path) -> dict:
    """Write ``translation/<pair>/{train,validation,test}.jsonl`` in ``run_translation.py`` format."""
    manifest = {}
    for pair, (lang, n_test, n_val, cap) in TRANSLATION_PAIRS.items():
        tgt = pair.split("-")[1]
        pairs, unreadable = collect_pairs(locale_dir, lang)
        sources = sorted(pairs)
        random.Random(SEED).shuffle(sources)
        sources = sources[:cap]
        splits = {
            "test": sources[:n_test],
            "validation": sources[n_test : n_test + n_val],
            "train": sources[n_test + n_val :],
        }
        for split, keys in splits.items():
            rows = [{"translation": {"en": s, tgt: pairs[s][0]}} for s in keys]
            write_jsonl(out / "translation" / pair / f"{split}.jsonl", rows)
        used = Counter(pairs[s][1] for s in sources)
        manifest[pair] = {
            "locale": lang,
            "pairs_after_cleaning": len(pairs),
            "pairs_kept": len(sources),
            "splits": {k: len(v) for k, v in splits.items()},
            "unreadable_catalogs": unreadable,
            "catalogs": {
                domain: {"package": debian_package(locale_dir / lang / "LC_MESSAGES" / f"{domain}.mo"), "pairs": n}
                for domain, n in sorted(used.items())
            },
        }
    return manifest


def extract_classification(locale_dir: Path, out: Path) -> dict:
    """Write ``classification/{train,validation,test}.csv`` (``text,label``): language identification of msgstr."""
    by_lang: dict[str, set[str]] = {}
    for label, lang in CLASSIFICATION_LANGS.items():
        texts = set()
        for path in catalogs(locale_dir, lang):
            try:
                entries = read_catalog(path)
            except (UnicodeDecodeError, OSError):
                continue
            for msgid, msgstr in entries.items():
                cleaned = clean_pair(msgid, msgstr)
                if cleaned and 20 <= len(cleaned[1]) and len(cleaned[1].split()) >= 3:
                    texts.add(cleaned[1])
        by_lang[label] = texts
    # A text found in two languages (a product name, a shared loanword sentence) is ambiguous: drop it everywhere.
    seen = Counter(t for texts in by_lang.values() for t in texts)
    rng = random.Random(SEED)
    n_eval = CLASSIFICATION_PER_LANG // 10
    splits: dict[str, list[tuple[str, str]]] = {"train": [], "validation": [], "test": []}
    for label, texts in by_lang.items():
        chosen = sorted(t for t in texts if seen[t] == 1)
        rng.shuffle(chosen)
        chosen = chosen[:CLASSIFICATION_PER_LANG]
        splits["test"] += [(t, label) for t in chosen[:n_eval]]
        splits["validation"] += [(t, label) for t in chosen[n_eval : 2 * n_eval]]
        splits["train"] += [(t, label) for t in chosen[2 * n_eval :]]
    (out / "classification").mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        rng.shuffle(rows)
        with (out / "classification" / f"{split}.csv").open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
    return {"languages": CLASSIFICATION_LANGS, "splits": {k: len(v) for k, v in splits.items()}}


def main() -> None:
    """Extract every dataset and write ``data/manifest.json`` with the counts and contributing packages."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locale-dir", type=Path, default=Path("/usr/share/locale"))
    parser.add_argument("--out", type=Path, default=REPO / "data")
    args = parser.parse_args()
    manifest = {
        "python": sys.version.split()[0],
        "seed": SEED,
        "prose": extract_prose(args.out),
        "translation": extract_translation(args.locale_dir, args.out),
        "classification": extract_classification(args.locale_dir, args.out),
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in manifest.items() if k != "translation"}, indent=2))
    for pair, info in manifest["translation"].items():
        print(pair, {k: v for k, v in info.items() if k != "catalogs"})


if __name__ == "__main__":
    main()
