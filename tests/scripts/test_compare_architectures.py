"""scripts/compare_architectures.py: the --quick run records every field of results.json, with consistent values;
its sizing, schedule and length buckets (scratchformers.architecture_comparison)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from scratchformers import architecture_comparison as compare

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "compare_architectures.py"
INTERVAL_KEYS = {"score", "mean", "ci", "low", "high"}


def run_script(*flags: str) -> subprocess.CompletedProcess:
    """scripts/compare_architectures.py with `flags`, as a user runs it (one torch thread: its default)."""
    return subprocess.run([sys.executable, str(SCRIPT), *flags], capture_output=True, text=True, timeout=600)


def run_ok(*flags: str) -> subprocess.CompletedProcess:
    run = run_script(*flags)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    run = run_ok("--quick", "--out-dir", str(out))
    return out, run.stdout


def check_interval(m: dict) -> None:
    assert set(m) == INTERVAL_KEYS
    assert all(isinstance(v, float) and math.isfinite(v) for v in m.values()), m
    assert 0.0 <= m["score"] <= 100.0 and m["ci"] >= 0.0
    assert m["low"] <= m["mean"] <= m["high"], m
    assert m["low"] - 1e-6 <= m["score"] <= m["high"] + 1e-6, m  # the corpus score lies inside its interval
    assert m["low"] == pytest.approx(max(0.0, m["mean"] - m["ci"])) and m["high"] == pytest.approx(m["mean"] + m["ci"])


def test_quick_run_records_every_field(quick):
    out, printed = quick
    saved = json.loads((out / "results.json").read_text())
    assert (out / "table.md").read_text() in printed  # the table the run printed is the one it saved
    assert set(saved) == {"command", "config", "environment", "parameter_budget", "parameter_tolerance",
                          "architectures", "runs", "budgets", "heatmaps"}
    config, names = saved["config"], list(compare.ARCHITECTURES)
    lrs, budgets = config["lrs"], config["budgets"]
    assert len(lrs) >= 3 and len(budgets) >= 3 and budgets == sorted(set(budgets))
    assert config["decoding"]["strategy"] == "greedy" and config["test_pairs"] == config["max_test"]
    env = saved["environment"]
    assert env["torch_threads"] == config["threads"] and isinstance(env["cpu"], str) and env["cpu"]
    assert all(isinstance(env[k], str) for k in ("python", "torch", "transformers", "sacrebleu"))

    # parameters: every architecture within ±20 % of the Transformer's count, and the recorded ratio is right
    budget = saved["parameter_budget"]
    assert saved["architectures"][compare.TRANSFORMER]["parameters"] == budget
    for name, arch in saved["architectures"].items():
        assert abs(arch["parameters"] - budget) <= saved["parameter_tolerance"] * budget, name
        assert math.isclose(arch["relative_to_budget"], arch["parameters"] / budget - 1)

    # one run per (architecture, learning rate), each with a curve in steps and seconds up to the last budget
    assert sorted((r["architecture"], r["learning_rate"]) for r in saved["runs"]) == sorted(
        (n, lr) for n in names for lr in lrs)
    for run in saved["runs"]:
        steps = [p["step"] for p in run["curve"]]
        seconds = [p["seconds"] for p in run["curve"]]
        assert steps[0] == 0 and steps == sorted(steps) and set(budgets) <= set(steps)
        assert seconds[0] == 0.0 and seconds == sorted(seconds) and run["train_seconds"] == pytest.approx(seconds[-1])
        assert run["diverged"] is False and run["tokens_per_second"] > 0
        at = {p["step"]: p["val_loss"] for p in run["curve"]}
        assert run["val_loss_at_budget"] == {str(b): at[b] for b in budgets}

    for record in saved["budgets"]:
        b = record["steps"]
        assert [s["architecture"] for s in record["systems"]] == names
        for s in record["systems"]:
            grid = {r["learning_rate"]: r["val_loss_at_budget"][str(b)] for r in saved["runs"]
                    if r["architecture"] == s["architecture"]}
            assert s["val_loss"] == min(grid.values()) and grid[s["learning_rate"]] == s["val_loss"]  # picked on val
            assert s["decode_seconds"] > 0
            check_interval(s["bleu"])
            check_interval(s["chrf"])
        pairs = [(t["baseline"], t["system"]) for t in record["paired_tests"]]
        assert pairs == list(compare.NEIGHBOURS)
        scores = {s["architecture"]: s for s in record["systems"]}
        for t in record["paired_tests"]:
            for key in ("bleu", "chrf"):
                test = t[key]
                assert 0.0 < test["p_value"] <= 1.0 and test["significant"] == (test["p_value"] < 0.05)
                assert test["baseline"] == pytest.approx(scores[t["baseline"]][key]["score"])
                assert test["system"] == pytest.approx(scores[t["system"]][key]["score"])
                assert test["delta"] == pytest.approx(test["system"] - test["baseline"])
        lb = record["length_buckets"]
        assert len(lb["buckets"]) >= 4 and sum(bk["count"] for bk in lb["buckets"]) == config["test_pairs"]
        assert all(bk["low"] <= bk["high"] < nxt["low"] for bk, nxt in zip(lb["buckets"], lb["buckets"][1:]))
        assert list(lb["bleu"]) == names
        for rows in lb["bleu"].values():
            assert len(rows) == len(lb["buckets"])
            for row in rows:
                check_interval(row)

    predictions = json.loads((out / "predictions.json").read_text())
    assert list(predictions) == names
    for by_budget in predictions.values():
        assert list(by_budget) == [str(b) for b in budgets]
        assert all(len(h) == config["test_pairs"] and all(isinstance(x, str) for x in h) for h in by_budget.values())

    heatmaps = saved["heatmaps"]
    assert isinstance(heatmaps["source"], str) and heatmaps["missing"] == {}
    for png in ["learning_curves.png", "bleu_by_budget.png", "bleu_by_length.png", *heatmaps["files"].values()]:
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    table = (out / "table.md").read_text()
    assert all(f"| {name} |" in table for name in names) and "paired bootstrap test" in table


def test_report_re_renders_from_json_without_training(quick, tmp_path):
    out, _ = quick
    run_ok("--from-json", str(out / "results.json"), "--out-dir", str(tmp_path))
    for name in ("results.json", "table.md"):
        assert (tmp_path / name).read_text() == (out / name).read_text(), name
    for png in ("learning_curves.png", "bleu_by_budget.png", "bleu_by_length.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


def test_a_model_left_out_is_a_null_with_a_reason(tmp_path):
    run_ok("--quick", "--models", "LSTM seq2seq", "LSTM + Bahdanau", "--budgets", "2", "4", "6", "--eval-every", "2",
           "--lrs", "1e-3", "3e-3", "1e-2", "--out-dir", str(tmp_path))
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["heatmaps"]["files"] == {"LSTM + Bahdanau": "alignment_bahdanau.png", "Transformer": None}
    assert set(saved["heatmaps"]["missing"]) == {"Transformer"}
    assert [(t["baseline"], t["system"]) for t in saved["budgets"][0]["paired_tests"]] == [
        ("LSTM seq2seq", "LSTM + Bahdanau")]


def test_length_buckets_split_by_quantiles():
    buckets = compare.length_buckets([1, 2, 2, 3, 4, 5, 6, 7, 8, 12])
    assert [(b["low"], b["high"], b["count"]) for b in buckets] == [(1, 2, 3), (3, 4, 2), (5, 7, 3), (8, 12, 2)]
    with pytest.raises(ValueError, match="only 2 buckets"):
        compare.length_buckets([3, 3, 3, 9])


def test_schedule_warms_up_then_decays_without_knowing_the_budget():
    f = [compare.inverse_sqrt_factor(s, warmup=10) for s in range(40)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0) and f[39] == pytest.approx(math.sqrt(10 / 40))
    assert all(a < b for a, b in zip(f[:9], f[1:10])) and all(a > b for a, b in zip(f[9:], f[10:]))


def test_rnn_sizing_rejects_impossible_budgets(tmp_path):
    from scratchformers.tokenization import train_tokenizer

    corpus = tmp_path / "text.txt"
    corpus.write_text("a small corpus of words for a tokenizer\n" * 20)
    tokenizer = train_tokenizer(corpus, kind="seq2seq_bpe", vocab_size=60)
    with pytest.raises(ValueError, match="±20%"):
        compare.rnn_config_for_budget(dict(cell="lstm", attention=None), 10, 1, tokenizer)


@pytest.mark.parametrize("argv, message", [
    (["--models", "RNNsearch-50"], "unknown model"),
    (["--budgets", "8", "4", "12"], "strictly increasing"),
    (["--lrs", "0", "1e-3"], "positive"),
    (["--bootstrap", "1"], "--bootstrap"),
])
def test_bad_options_are_one_error_line(argv, message, tmp_path):
    run = run_script(*argv, "--out-dir", str(tmp_path))
    assert run.returncode == 2 and message in run.stderr
    assert not any(tmp_path.iterdir())  # refused before any work
