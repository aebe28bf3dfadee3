"""scripts/benchmark.py --quick runs end to end and writes consistent tables (a smoke test, not a speed test)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scratchformers import measure

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def run_script(script: str, *flags: str) -> subprocess.CompletedProcess:
    """scripts/`script` with `flags`, as a user runs it."""
    return subprocess.run([sys.executable, str(SCRIPTS / script), *flags], capture_output=True, text=True,
                          timeout=600)


def rows(report: str, section: str) -> list[list[str]]:
    """Data rows of the Markdown table under the heading that starts with `section`."""
    block = report.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in block.splitlines() if line.startswith("| ") and not line.startswith("| pair")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def test_quick_benchmark_writes_consistent_tables(tmp_path):
    out = tmp_path / "RESULTS.md"
    out.write_text(f"old\n{measure.NOTES_BEGIN}\nkept analysis\n{measure.NOTES_END}\n")
    run = run_script("benchmark.py", "--quick", "--no-memory", "--families", "GPT,Llama", "--repeats", "1", "--out",
                     str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    report = out.read_text()
    assert "kept analysis" in report  # the hand-written notes survive a re-run
    train = rows(report, "Training step")
    assert [r[1] for r in train] == ["eager", "sdpa"] * 3  # GPT-2: plain, prompt-masked fine-tuning; then Llama
    assert all("prompt masked" in r[0] for r in train[2:4])
    assert all(r[0].startswith("Llama") for r in train[4:])
    for r in train:  # ratio column = ours tok/s / HF tok/s (rounded as printed)
        hf, ours = float(r[2]), float(r[3])
        assert hf > 0 and ours > 0
        assert float(re.match(r"[\d.]+", r[4]).group()) == pytest.approx(ours / hf, rel=0.02, abs=0.01)
    decode = rows(report, "Cached greedy decoding")
    assert len(decode) == 4 and all(float(r[3]) > 0 and float(r[4]) > 0 for r in decode)
    assert {r[0].split()[0] for r in decode} == {"GPT-2", "Llama"}
    scaling = rows(report, "Forward time vs sequence length")
    assert sorted({int(r[2]) for r in scaling}) == [32, 64]
    kv = rows(report, "KV cache size")[1:]  # (its header row first) H_kv = H, H/2, …, 1: shrinks by H_kv / H
    heads = int(kv[0][1])
    assert [int(r[0]) for r in kv] == [heads // 2**i for i in range(len(kv))] and int(kv[-1][0]) == 1
    full = int(kv[0][3].replace(",", ""))
    for r in kv:
        hf_bytes, our_bytes, formula = (int(c.replace(",", "")) for c in r[2:5])
        assert hf_bytes == our_bytes == formula
        assert our_bytes / full == int(r[0]) / heads == float(r[6])
    assert "GFLOP/s" in report and "transformers 5." in report


def test_cache_bytes_counts_each_storage_once_with_spare_room():
    from scratchformers.cache import GrowingCache

    cache = GrowingCache()
    k = torch.zeros(1, 2, 3, 4)
    cache.update(k, k.clone(), 0)
    cache.update(k[:, :, :1], k[:, :, :1].clone(), 0)  # grows the buffers to 2 · 3 slots; views share them
    layer = cache.layers[0]
    assert measure.cache_bytes(cache) == 2 * layer.key_buffer.numel() * 4 == 2 * 2 * 6 * 4 * 4


def test_training_flops_count_every_matmul_weight_once():
    import transformers

    config = transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=64)
    model = transformers.GPT2LMHeadModel(config)
    C, L, V, T = 32, 2, 100, 16
    matmul_params = L * (C * 3 * C + C * C + C * 4 * C + 4 * C * C) + V * C  # attention, MLP, output layer
    assert measure.training_flops_per_token(model, config, T) == 6 * matmul_params + 12 * L * T * C


def test_interleaved_reports_the_median_of_each_callable():
    calls = []
    out = measure.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4  # warm-up, then strictly alternating
    assert set(out) == {"a", "b"} and all(t >= 0 for t in out.values())


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="peak RSS is read from Linux's /proc")
def test_chunked_loss_memory_table_runs():
    """`--only-loss-memory --quick` measures HF, ours with the full logits and ours with the chunked loss, each in its
    own process (here at a 16,384 vocabulary: 1,024 positions × 16,384 = 2²⁴ logits, where chunking starts by
    default): the live-tensor peaks order as they must."""
    run = run_script("benchmark.py", "--quick", "--only-loss-memory", "--loss-memory-vocab", "16384")
    assert run.returncode == 0, run.stderr[-3000:]
    report = run.stdout
    (row,) = [r for r in rows(report, "Peak training memory with the chunked loss") if r[0] != "batch × tokens"]
    assert row[0] == "1 × 1,024" and float(row[1]) == 1024 * 16384 * 4 / 2**20
    live = [float(cell.split(" / ")[1]) for cell in row[2:5]]  # HF, ours with the logits, ours chunked
    assert live[2] < live[1] and live[2] < live[0]


def test_allocated_peak_counts_live_tensors():
    def step():
        a = torch.empty(1 << 20)  # 4 MiB
        b = torch.empty(1 << 19)  # 2 MiB, while a lives: 6 MiB
        del a, b
        torch.empty(1 << 20)  # 4 MiB again, alone

    assert measure.allocated_peak_mib(step) == pytest.approx(6.0, abs=0.01)


def test_real_size_benchmark_runs_every_shape_and_computes_its_ratios(tmp_path):
    """scripts/benchmark_real_sizes.py --quick (tiny stand-ins of the three real shapes) as a user runs it: every
    shape has its training and decoding rows (each decoding mode), and each ratio is the two tok/s columns divided (as
    printed); with --train-alone each side trains in a process of its own."""
    out = tmp_path / "REAL.md"
    # the compiled mode through dynamo without inductor's code generation, as tests/generation/test_fast_decoding.py
    # does: seconds instead of minutes, and inductor's kernels crashed (SIGSEGV) under .ci/run's emulated AVX2-only
    # CPU (ATEN_CPU_CAPABILITY=avx2 on an AVX-512 machine)
    run = run_script("benchmark_real_sizes.py", "--quick", "--threads", "1", "--compile-backend", "eager", "--out",
                     str(out))
    assert run.returncode == 0, run.stderr
    report = out.read_text()
    train, decode = ([r for r in rows(report, section) if r[0] != "model"]  # (less the header row)
                     for section in ("Training step", "Greedy `generate()`"))
    assert [r[0].split(" ")[0] for r in train] == ["SmolLM2-135M", "Qwen2.5-0.5B", "Llama-3.2-1B"]
    assert {r[2] for r in train} == {"interleaved"}
    assert [(r[0].split(" ")[0], r[1], r[2]) for r in decode][:7] == [
        ("SmolLM2-135M", "sdpa", "1"), ("SmolLM2-135M", "sdpa", "8"), ("SmolLM2-135M", "sdpa", "1"),
        ("SmolLM2-135M", "eager", "1"), ("SmolLM2-135M", "compiled", "1"), ("SmolLM2-135M", "column-major", "1"),
        ("SmolLM2-135M", "column-major", "1")]
    for r in train:
        assert float(r[5].split("×")[0]) == pytest.approx(float(r[4]) / float(r[3]), abs=0.01 + 1 / float(r[3]))
    for r in decode:
        assert float(r[6].split("×")[0]) == pytest.approx(float(r[5]) / float(r[4]), rel=0.02, abs=0.01)
    alone = run_script("benchmark_real_sizes.py", "--quick", "--threads", "1", "--shapes", "SmolLM2-135M",
                       "--train-alone", "--decode", "sdpa:1x16", "--out", str(out))
    assert alone.returncode == 0, alone.stderr
    [row] = [r for r in rows(out.read_text(), "Training step") if r[0] != "model"]
    assert row[2] == "alone" and float(row[8].replace(",", "")) > 0 < float(row[9].replace(",", ""))  # peak MiB
    bad = run_script("benchmark_real_sizes.py", "--decode", "fast:1x16")
    assert bad.returncode == 2 and "unknown decoding mode 'fast'" in bad.stderr.splitlines()[-1]
    bad = run_script("benchmark_real_sizes.py", "--shapes", "GPT-5")
    assert bad.returncode == 2 and "unknown shape(s) GPT-5" in bad.stderr.splitlines()[-1]
