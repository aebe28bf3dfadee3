"""scripts/parallelism.py (issue 14, the parallelism claim): --quick writes every documented field, the sequential-step
counts follow the formulas (RNN: L_enc·S + L_dec·T; Transformer: N_enc + N_dec, whatever the length), the models are
sized within ±20 %, and docs/rnn.md carries the committed run's table."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from families import FAMILIES

from scratchformers import parallelism

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "parallelism.py"


def run_script(*flags: str) -> subprocess.CompletedProcess:
    """scripts/parallelism.py with `flags`, as a user runs it."""
    return subprocess.run([sys.executable, str(SCRIPT), *flags], capture_output=True, text=True, timeout=600)


def quick_run(out: Path, *flags: str) -> dict:
    """The record a --quick run writes to `out`/parallelism.json (the tables it prints are the record's)."""
    run = run_script("--quick", "--repeats", "2", "--warmup", "0", "--out-dir", str(out), *flags)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((out / "parallelism.json").read_text())
    assert parallelism.markdown_table(result) in run.stdout and parallelism.ratios_table(result) in run.stdout
    return result


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("parallelism")
    return quick_run(out), out


def test_quick_run_writes_the_documented_fields_and_plot(quick):
    _, out = quick
    saved = json.loads((out / "parallelism.json").read_text())
    top = {k for k in parallelism.KEYS if "[" not in k and "." not in k}
    assert top | {"rows", "keys"} == set(saved)
    row_keys = {part.strip().split(".", 1)[1] for k in parallelism.KEYS if k.startswith("rows[].")
                for part in k.split(",")}
    assert saved["settings"]["lengths"] == [4, 8] and saved["settings"]["threads"] == [1, 2]
    combos = {(r["model"], r["threads"], r["length"]) for r in saved["rows"]}
    assert combos == {(m, t, n) for m in parallelism.MODELS for t in (1, 2) for n in (4, 8)}
    for row in saved["rows"]:
        assert row_keys <= set(row), row_keys - set(row)
        assert row["tokens_per_step"] == row["batch_size"] * 2 * row["length"]
        assert len(row["seconds"]) == 2 and all(s > 0 for s in row["seconds"])
        rates = [row["tokens_per_step"] / s for s in row["seconds"]]
        tps = row["tokens_per_second"]
        assert tps["median"] == pytest.approx(statistics.median(rates))
        assert tps["min"] == pytest.approx(min(rates)) and tps["max"] == pytest.approx(max(rates))
        assert tps["min"] <= tps["q1"] <= tps["median"] <= tps["q3"] <= tps["max"]
    assert (out / "parallelism.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ratio_table_pairs_the_rounds(quick):
    """Each ratio cell is the median (min–max) of per-round ratios of the two rows' tokens/s."""
    result, _ = quick
    by = {(r["model"], r["threads"], r["length"]): r for r in result["rows"]}

    def per_round(a, b):
        return sorted((a["tokens_per_step"] / sa) / (b["tokens_per_step"] / sb)
                      for sa, sb in zip(a["seconds"], b["seconds"]))

    lines = parallelism.ratios_table(result).splitlines()
    assert lines[0].startswith("| S = T | Transformer ÷ LSTM seq2seq, 1 thr | Transformer ÷ LSTM seq2seq, 2 thr |")
    cells = [c.strip() for c in lines[2].strip("|").split("|")]  # the row of length 4
    assert cells[0] == "4"
    for text, (a, b) in ((cells[1], (("Transformer", 1, 4), ("LSTM seq2seq", 1, 4))),
                         (cells[-1], (("Transformer", 2, 4), ("Transformer", 1, 4)))):
        ratios = per_round(by[a], by[b])
        median, low, high = (float(v) for v in re.findall(r"[\d.]+", text))
        assert median == pytest.approx(statistics.median(ratios), abs=0.006)
        assert (low, high) == pytest.approx((ratios[0], ratios[-1]), abs=0.006)


def test_sequential_steps_follow_the_formulas(quick):
    result, _ = quick
    # --quick: Transformer 2 encoder + 2 decoder layers; RNNs 1 layer each side (compare_architectures' rule)
    assert result["models"]["Transformer"]["layers"] == {"encoder": 2, "decoder": 2}
    for name in ("LSTM seq2seq", "LSTM + Bahdanau"):
        assert result["models"][name]["layers"] == {"encoder": 1, "decoder": 1}
    for row in result["rows"]:
        S = T = row["length"]
        if row["model"] == "Transformer":
            assert row["sequential_steps"] == 2 + 2  # N_enc + N_dec: independent of the length
            assert row["transformer_layer_calls"] == 4 and row["decoder_rnn_calls"] is None
        else:
            assert row["sequential_steps"] == 1 * S + 1 * T
            assert row["transformer_layer_calls"] == 0
            # the plain decoder hands the whole target to nn.LSTM at once; Bahdanau loops over the T steps in Python
            assert row["decoder_rnn_calls"] == (1 if row["model"] == "LSTM seq2seq" else T)


def test_two_layer_rnns_double_the_chain_but_not_the_transformer(tmp_path):
    """With 3 Transformer layers the RNNs get 2 recurrent layers (compare_architectures.py) -> 2·S + 2·T steps."""
    result = quick_run(tmp_path, "--layers", "3", "--d-model", "32", "--threads", "1")
    for name in ("LSTM seq2seq", "LSTM + Bahdanau"):
        assert result["models"][name]["layers"] == {"encoder": 2, "decoder": 2}
    assert result["models"]["Transformer"]["layers"] == {"encoder": 3, "decoder": 3}
    for row in result["rows"]:
        S = T = row["length"]
        assert row["sequential_steps"] == (3 + 3 if row["model"] == "Transformer" else 2 * S + 2 * T)
    rnn, transformer = FAMILIES["rnn"], FAMILIES["transformer"]  # source and target lengths apart: S = 5, T = 7
    assert parallelism.sequential_steps(rnn.lm(rnn.config(num_hidden_layers=2)), 5, 7) == 2 * 5 + 2 * 7
    for S, T in ((5, 7), (50, 70)):
        assert parallelism.sequential_steps(transformer.lm(transformer.config(num_hidden_layers=3)), S, T) == 3 + 3


def test_models_have_equal_parameter_counts(quick):
    result, _ = quick
    counts = {name: m["parameters"] for name, m in result["models"].items()}
    budget = counts["Transformer"]
    assert all(abs(n - budget) <= 0.2 * budget for n in counts.values()), counts


@pytest.mark.parametrize("flags", [["--lengths", "0"], ["--threads", "2", "-1"], ["--batch-size", "0"],
                                   ["--models", "GRU"]])
def test_bad_options_exit_with_status_2(flags):
    run = run_script(*flags)
    assert run.returncode == 2
    assert "error:" in run.stderr


def test_docs_carry_the_committed_run():
    committed = json.loads((ROOT / "docs" / "rnn" / "parallelism.json").read_text())
    assert committed["settings"]["lengths"] == [16, 32, 64, 128, 256]
    assert committed["settings"]["threads"] == [1, 2]
    assert set(committed["formulas"]) == set(parallelism.MODELS)
    assert committed["keys"] == parallelism.KEYS  # its key documentation is the script's
    page = (ROOT / "docs" / "rnn.md").read_text()
    assert parallelism.markdown_table(committed) in page
    assert parallelism.ratios_table(committed) in page
