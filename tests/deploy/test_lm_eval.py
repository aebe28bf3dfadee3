"""EleutherAI's lm-evaluation-harness runs on our decoder-only checkpoints (`--model hf`, `trust_remote_code=True`) and
scores them as it scores transformers' own class with the same weights, on the task files shipped in
`scratchformers.lm_eval_tasks` (held-out prose perplexity, language identification), read offline from data/.

Tolerance: accuracies must be equal. Log-likelihoods, and the perplexities built from them, must agree to 1e-5
relative (1e-4 absolute for a log-likelihood near 0). The two models compute the same function from the same float32
weights, but not always with the same operations: GPT-2's Conv1D is `addmm` on (in, out) weights where ours is a
Linear on (out, in), and we project q, k and v in one fused matmul where Llama uses three. Float32 rounding may then
differ in the last bits of a logit (test_convert checks logits to 1e-4), and a log-likelihood sums hundreds of them.
Measured on the development machine: the Llama-style twin scores bit-identically, the GPT-2-style twin within 1e-7
relative; 1e-5 leaves room for other CPUs' kernels, and a real difference (a position, a bias, a window, the
tokenizer) moves these numbers by far more.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import torch
from families import LLAMA_OPTIONS

lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install -e '.[eval]')")

from scratchformers import ScratchGPTConfig, ScratchGPTForCausalLM  # noqa: E402
from scratchformers.data import load_classification, load_prose, resolve_data_dir  # noqa: E402
from scratchformers.lm_eval_tasks import TAG, TASK_DIR, TASKS  # noqa: E402
from scratchformers.lm_eval_tasks import compare as compare_script  # noqa: E402
from scratchformers.tokenization import train_tokenizer  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

LIMIT = 12  # documents per task: 12 paragraphs (several 128-token windows each) and 12 sentences × 6 choices
BATCH = 4
REL, ABS = 1e-5, 1e-4
EXACT = {"acc", "acc_norm", "acc_stderr", "acc_norm_stderr"}  # counts of right answers: no rounding to forgive

STYLES = {  # the two decoder families `to_hf` maps to: GPT2LMHeadModel and LlamaForCausalLM
    "gpt2": dict(position_embedding_type="learned", norm_type="layernorm", ffn_type="mlp", activation="gelu_new",
                 attention_bias=True, ffn_bias=True),
    "llama": {**LLAMA_OPTIONS, "num_key_value_heads": 2},
}
HF_CLASS = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM"}


@pytest.fixture(scope="module")
def manager():
    return compare_script.task_manager()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """{style: (our checkpoint, its transformers twin)}: a tiny random ScratchGPTForCausalLM saved with a byte-level
    BPE tokenizer (trained on the shipped prose), and `scratchformers convert` of it (same weights, same tokenizer)."""
    root = tmp_path_factory.mktemp("lm-eval")
    tokenizer = train_tokenizer(resolve_data_dir() / "prose" / "validation.txt", "bpe", vocab_size=300)
    pairs = {}
    for style, options in STYLES.items():
        torch.manual_seed(0)
        config = ScratchGPTConfig(
            vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=128, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0, tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **options,
        )
        model = ScratchGPTForCausalLM(config)
        with torch.no_grad():  # move every weight off its init, so the choices' likelihoods differ
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.3)
        ours, theirs = root / f"{style}-ours", root / f"{style}-hf"
        model.save_pretrained(ours)
        tokenizer.save_pretrained(ours)
        assert compare_script.hf_twin(ours, theirs) == HF_CLASS[style]
        pairs[style] = (ours, theirs)
    return pairs


def run(checkpoint: Path, manager, limit: int = LIMIT) -> dict:
    """What `lm_eval --model hf --model_args pretrained=CHECKPOINT,trust_remote_code=True --tasks scratchformers`
    computes, through the Python API (with the per-document outputs)."""
    return lm_eval.simple_evaluate(
        model="hf", model_args={"pretrained": str(checkpoint), "trust_remote_code": True}, tasks=[TAG],
        task_manager=manager, limit=limit, batch_size=BATCH, device="cpu", log_samples=True,
    )


def loglikelihoods(samples: list[dict]) -> dict[int, list[float]]:
    """{doc_id: [log-likelihood of each request]}: one per paragraph, one per choice."""
    out = {}
    for sample in samples:
        resps = sample["filtered_resps"]
        out[sample["doc_id"]] = [float(r[0]) if isinstance(r, (tuple, list)) else float(r) for r in resps]
    return out


def assert_same_scores(ours: dict, theirs: dict) -> None:
    """Equal accuracies, perplexities to REL (see the module docstring)."""
    a, b = compare_script.scores(ours), compare_script.scores(theirs)
    assert set(a) == set(b) and len(a) >= 7
    for (task, metric), value in a.items():
        if metric in EXACT:
            assert value == b[task, metric], (task, metric)
        else:
            assert value == pytest.approx(b[task, metric], rel=REL), (task, metric)


@pytest.mark.parametrize("style", STYLES)
def test_lm_eval_scores_our_checkpoint_as_it_scores_transformers_class(style, checkpoints, manager):
    ours_dir, hf_dir = checkpoints[style]
    ours, theirs = run(ours_dir, manager), run(hf_dir, manager)
    assert set(ours["results"]) == set(TASKS)
    assert_same_scores(ours["results"], theirs["results"])
    for task in TASKS:  # the same documents, each request's log-likelihood the same
        mine, hf = loglikelihoods(ours["samples"][task]), loglikelihoods(theirs["samples"][task])
        assert sorted(mine) == sorted(hf) == list(range(LIMIT))
        for doc_id, values in mine.items():
            assert values == pytest.approx(hf[doc_id], rel=REL, abs=ABS), (task, doc_id)
    assert all(len(values) == 6 for values in loglikelihoods(ours["samples"]["scratch_language_id"]).values())
    results = ours["results"]
    perplexity = results["scratch_prose_perplexity"]
    assert 1 < perplexity["byte_perplexity,none"] < math.inf
    assert perplexity["bits_per_byte,none"] == pytest.approx(math.log2(perplexity["byte_perplexity,none"]))
    assert 0 <= results["scratch_language_id"]["acc,none"] <= 1


def test_the_lm_eval_command_line_gives_the_same_scores(checkpoints, manager, tmp_path):
    """The command a user types (docs/deploy.md, "Evaluate with lm-evaluation-harness"), here with --limit and --output_path."""
    ours_dir, hf_dir = checkpoints["llama"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    beside = Path(sys.executable).with_name("lm_eval")  # the console script of this interpreter's environment
    executable = str(beside) if beside.is_file() else shutil.which("lm_eval")
    assert executable, "lm-eval is importable but its `lm_eval` command is not on PATH"
    command = [executable, "--model", "hf",
               "--model_args", f"pretrained={ours_dir},trust_remote_code=True", "--include_path", str(TASK_DIR),
               "--tasks", TAG, "--device", "cpu", "--batch_size", str(BATCH), "--limit", "4",
               "--output_path", str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "scratch_prose_perplexity" in done.stdout and "bits_per_byte" in done.stdout  # the printed table
    (results_file,) = (tmp_path / "out").rglob("results_*.json")
    from_cli = json.loads(results_file.read_text())["results"]
    assert_same_scores(from_cli, run(hf_dir, manager, limit=4)["results"])


def test_compare_script_prints_both_models_scores(checkpoints, tmp_path, capsys):
    ours_dir, _ = checkpoints["gpt2"]
    rows = compare_script.main([str(ours_dir), "--limit", "3", "--batch-size", str(BATCH),
                                "--json", str(tmp_path / "scores.json")])
    printed = capsys.readouterr().out
    assert "| task | metric | ours | GPT2LMHeadModel | abs diff | rel diff |" in printed
    assert {(r["task"], r["metric"]) for r in rows} >= {("scratch_language_id", "acc"),
                                                        ("scratch_prose_perplexity", "word_perplexity")}
    for row in rows:
        assert row["rel_diff"] <= (0 if row["metric"] in EXACT else REL), row
    assert json.loads((tmp_path / "scores.json").read_text())["hf_class"] == "GPT2LMHeadModel"


def test_the_tasks_read_the_shipped_data(manager):
    """No dataset from the Hub: every document comes from data/ (HF_DATASETS_OFFLINE=1 in conftest)."""
    tasks = manager.load([TAG])["tasks"]
    assert set(tasks) == set(TASKS)
    prose = tasks["scratch_prose_perplexity"]
    docs = list(prose.test_docs())
    assert [prose.doc_to_target(d) for d in docs] == load_prose()["validation"]["text"]  # all 163 paragraphs
    language = tasks["scratch_language_id"]
    rows, expected = list(language.test_docs()), load_classification()["test"]
    codes = expected.features["label"].names
    names = {"de": "German", "es": "Spanish", "fr": "French", "it": "Italian", "nl": "Dutch", "pt": "Portuguese"}
    assert len(rows) == expected.num_rows == 360
    for doc, row in zip(rows, expected):
        assert language.doc_to_text(doc) == row["text"] + "\nLanguage:"
        assert language.doc_to_choice(doc) == list(names.values())
        assert language.doc_to_target(doc) == names[codes[row["label"]]]


def test_python_m_prints_the_include_path(capsys):
    runpy.run_module("scratchformers.lm_eval_tasks", run_name="__main__")
    assert capsys.readouterr().out.strip() == str(TASK_DIR)
    assert {p.stem for p in TASK_DIR.glob("*.yaml")} == set(TASKS)


def test_pyproject_ships_the_task_files_and_the_eval_extra():
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())
    package = "scratchformers.lm_eval_tasks"
    assert package in setuptools["tool"]["setuptools"]["packages"]
    globs = setuptools["tool"]["setuptools"]["package-data"][package]
    files = [p.name for p in TASK_DIR.iterdir() if p.is_file()]
    missed = [f for f in files if not any(fnmatch.fnmatch(f, g) for g in [*globs, "*.py"])]
    assert not missed, f"task files the wheel would leave out: {missed}"
    extras = setuptools["project"]["optional-dependencies"]
    assert any(req.startswith("lm-eval") for req in extras["eval"])
    assert any(req.startswith("lm-eval") for req in extras["dev"])
