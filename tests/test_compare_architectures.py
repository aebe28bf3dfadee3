"""Smoke test of scripts/compare_architectures.py: five models at equal parameter budget, table and plots written."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_architectures.py"


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("compare_architectures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_quick_comparison_writes_table_plots_and_equal_budgets(compare, tmp_path):
    results = compare.main([
        "--quick", "--time-budget", "1", "--evals", "2", "--max-train", "200", "--max-eval", "16", "--max-test", "4",
        "--max-length", "16", "--vocab-size", "300", "--d-model", "32", "--out-dir", str(tmp_path),
    ])
    names = [r.name for r in results]
    assert names == ["Transformer", "LSTM seq2seq", "GRU seq2seq", "LSTM + Bahdanau", "GRU + Luong"]
    budget = results[0].parameters
    for r in results:
        assert abs(r.parameters - budget) <= 0.2 * budget, (r.name, r.parameters, budget)
        assert r.steps >= 1 and r.train_seconds >= 1.0 and r.tokens_per_second > 0
        assert math.isfinite(r.val_loss) and 0 <= r.bleu <= 100 and 0 <= r.chrf <= 100
        assert len(r.curve) >= 2 and r.curve[0][0] == 0.0
    for png in ("val_loss_vs_time.png", "alignment_bahdanau.png", "cross_attention_transformer.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [r["name"] for r in saved["results"]] == names
    table = (tmp_path / "table.md").read_text()
    assert all(f"| {name} |" in table for name in names)


def test_rnn_sizing_rejects_impossible_budgets(compare, tmp_path):
    from scratchformers.tokenization import train_tokenizer

    corpus = tmp_path / "text.txt"
    corpus.write_text("a small corpus of words for a tokenizer\n" * 20)
    tokenizer = train_tokenizer(corpus, kind="seq2seq_bpe", vocab_size=60)
    with pytest.raises(ValueError, match="±20%"):
        compare.rnn_config_for_budget(dict(cell="lstm", attention=None), 10, 1, tokenizer)


def test_unknown_model_name_is_rejected(compare):
    with pytest.raises(SystemExit):
        compare.parse_args(["--models", "RNNsearch-50"])
