"""scripts/gpu_benchmark.py runs its bf16 code path end to end on CPU (tiny model): the tables are consistent.
The GPU numbers themselves need a GPU; this only guards the script a GPU session will run."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_benchmark.py"


def _rows(report: str, section: str) -> list[list[str]]:
    block = report.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in block.splitlines() if line.startswith("| ") and not line.startswith("| attention")
             and not line.startswith("| context") and not line.startswith("| S = T")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def test_cpu_quick_run_reports_bf16_training_generation_and_seq2seq_lengths(tmp_path):
    out = tmp_path / "gpu.md"
    run = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--repeats", "1", "--out",
                          str(out)], capture_output=True, text=True, timeout=600)  # as a GPU session runs it
    assert run.returncode == 0, run.stderr[-3000:]
    report = out.read_text()
    train = _rows(report, "Training step")
    assert [r[0] for r in train] == ["sdpa", "eager"]  # no flash_attention_2 without CUDA
    for _attn, hf, ours, ratio, hf_mfu, ours_mfu in train:
        assert float(hf) > 0 and float(ours) > 0
        assert float(ratio.rstrip("×")) == pytest.approx(float(ours) / float(hf), rel=0.02, abs=0.01)
        assert 0 < float(ours_mfu.rstrip(" %")) and 0 < float(hf_mfu.rstrip(" %"))
    (generate,) = _rows(report, "generate()")
    assert generate[0] == "16" and float(generate[1]) > 0 and float(generate[2]) > 0
    assert all(math.isnan(float(v)) for v in generate[3:])  # generate() compiles static caches on CUDA only
    seq2seq = _rows(report, "Seq2seq training")
    assert [r[0] for r in seq2seq] == ["8", "16"]
    for row in seq2seq:
        length = int(row[0])
        lstm, bahdanau, transformer = (float(v) for v in row[1:4])
        assert lstm > 0 and bahdanau > 0 and transformer > 0
        # quick sizes: 2 + 2 Transformer layers; 1 recurrent layer each side -> S + T steps
        assert [int(v) for v in row[4:]] == [2 * length, 2 * length, 4]
