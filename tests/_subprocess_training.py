"""Run `scripts/train_tiny.py` in subprocesses (plain, under `accelerate launch`, or to be killed) for the
distributed and kill-and-resume tests. Every run is offline, single-threaded and bounded by a timeout."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train_tiny.py"
ACCELERATE_CPU_CONFIG = ROOT / "configs" / "accelerate" / "cpu.yaml"
TIMEOUT = 180

# --quick sizes: 12 optimizer steps of a global batch of 4 sequences, a checkpoint every 6 steps.
MAX_STEPS, SAVE_STEPS, GLOBAL_BATCH = 12, 6, 4
COMMON = [
    "--max_steps", str(MAX_STEPS), "--save_steps", str(SAVE_STEPS), "--logging_steps", "1",
    "--learning_rate", "1e-2", "--seed", "0", "--use_cpu", "--report_to", "none",
    "--disable_tqdm", "true", "--dataloader_num_workers", "0",
]


def subprocess_env() -> dict[str, str]:
    """The environment of a child run: our src first on the path, offline, one thread per process."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "ACCELERATE_USE_CPU"):
        env.pop(name, None)  # never inherit a parent's distributed setup
    return env


def free_port() -> int:
    """A TCP port nobody listens on now (for the torch.distributed rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_args(output_dir: Path, per_device_batch: int, *extra: str) -> list[str]:
    return [str(SCRIPT), "--output_dir", str(output_dir), "--per_device_train_batch_size", str(per_device_batch),
            *COMMON, *extra]


def run_checked(cmd: list[str], log: Path) -> None:
    """Run `cmd` to completion (stdout+stderr into `log`); fail the test with the log's tail if it fails."""
    with open(log, "w") as out:
        done = subprocess.run(cmd, env=subprocess_env(), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                              timeout=TIMEOUT)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{log.read_text()[-4000:]}"


def train_one_process(output_dir: Path, *extra: str) -> Path:
    """`python scripts/train_tiny.py` with the whole global batch in one process."""
    run_checked([sys.executable, *train_args(output_dir, GLOBAL_BATCH, *extra)], output_dir.with_suffix(".log"))
    return output_dir


def losses(output_dir: Path) -> list[float]:
    """The logged training loss of every step, from the final trainer_state.json."""
    state = json.loads((output_dir / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def max_abs_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys(), sorted(set(a) ^ set(b))
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


_REFERENCE: dict[str, Path] = {}


def reference_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted single-process run per test session, shared by the DDP and the kill-and-resume tests."""
    if "run" not in _REFERENCE:
        _REFERENCE["run"] = train_one_process(tmp_path_factory.mktemp("reference") / "run", "--dump_rank_weights", "true")
    return _REFERENCE["run"]
