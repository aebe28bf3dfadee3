"""scripts/llm_ablation.py --quick: the GPT-2 → Llama ablation runs end to end and records what docs/llm.md reports
(a smoke test of the script; the recorded numbers come from the full run)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from scratchformers import ablation

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "llm_ablation.py"


def run_script(*flags: str) -> subprocess.CompletedProcess:
    """scripts/llm_ablation.py with `flags`, as a user runs it."""
    return subprocess.run([sys.executable, str(SCRIPT), *flags], capture_output=True, text=True, timeout=600)


def test_quick_ablation_records_each_change_at_equal_parameters(tmp_path):
    out = tmp_path / "ablation.json"
    run = run_script("--quick", "--out", str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["table"] in run.stdout
    assert [r["name"] for r in record["results"]] == [name for name, _ in ablation.STEPS]
    assert record["command"] == f"python scripts/llm_ablation.py --quick --out {out}"
    assert 0 < record["cpu_minutes"] and 0 < record["minutes"]
    target = record["target_parameters"]
    for result in record["results"]:
        assert abs(result["parameters"] / target - 1) <= ablation.PARAM_TOLERANCE
        assert result["parameter_ratio"] == pytest.approx(result["parameters"] / target)
        assert len(result["runs"]) == len(record["budget"]["seeds"])
        mean = sum(run["validation_perplexity"] for run in result["runs"]) / len(result["runs"])
        assert result["validation_perplexity"] == pytest.approx(mean)
        assert 1 < mean < math.inf
        assert result["name"] in record["table"]
    last = record["results"][-1]["options"]  # the cumulative options end at the Llama configuration
    assert last["position_embedding_type"] == "rotary" and last["norm_type"] == "rmsnorm"
    assert last["ffn_type"] == "gated" and last["num_key_value_heads"] == record["shape"]["heads"] // 2
    assert last["attention_bias"] is False and last["ffn_bias"] is False


def test_matched_intermediate_size_lands_closest_to_the_target():
    size = ablation.SIZES["quick"]
    options = ablation.configurations(size)[3][1]  # + SwiGLU: three feed-forward matrices instead of two
    target = ablation.parameter_count(ablation.build_config(size, ablation.configurations(size)[0][1], 4 * size["width"]))
    intermediate, count = ablation.matched_intermediate_size(size, options, target)
    assert count == ablation.parameter_count(ablation.build_config(size, options, intermediate))
    for neighbour in (intermediate - 8, intermediate + 8):
        other = ablation.parameter_count(ablation.build_config(size, options, neighbour))
        assert abs(other - target) >= abs(count - target)


def test_a_missing_data_folder_is_one_error_line(tmp_path):
    run = run_script("--quick", "--data-dir", str(tmp_path))
    assert run.returncode == 2
    assert run.stderr.startswith("error: ") and len(run.stderr.strip().splitlines()) == 1


def test_the_recorded_ablation_has_its_fields_and_equal_parameters():
    """docs/llm/ablation.json (the full run docs/llm.md quotes) holds every configuration within ±5 % parameters."""
    record = json.loads((Path(__file__).resolve().parents[2] / "docs" / "llm" / "ablation.json").read_text())
    assert record["command"] == "python scripts/llm_ablation.py"
    assert [r["name"] for r in record["results"]] == [name for name, _ in ablation.STEPS]
    assert len(record["budget"]["seeds"]) >= 2
    for result in record["results"]:
        assert abs(result["parameters"] / record["target_parameters"] - 1) <= record["parameter_tolerance"] == 0.05
        runs = [run["validation_perplexity"] for run in result["runs"]]
        assert len(runs) == len(record["budget"]["seeds"])
        assert result["validation_perplexity"] == pytest.approx(sum(runs) / len(runs))
