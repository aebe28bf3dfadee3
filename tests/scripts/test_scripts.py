"""The training scripts: --help lists their own and every TrainingArguments flag; tiny end-to-end runs save a
checkpoint (weights, code, tokenizer, card) that reloads and whose card holds the measured numbers."""

from __future__ import annotations

import json
import math
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from journey_helpers import tiny_config_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from scratchformers.data import DATA_DIR
from scratchformers.examples import load_script, push_to_hub, run_classification, run_clm
from scratchformers.hub import check_upload_complete

REPO = Path(__file__).resolve().parents[2]
FAST = ["--report_to", "none", "--use_cpu", "true", "--per_device_train_batch_size", "4",
        "--per_device_eval_batch_size", "8", "--save_strategy", "no", "--logging_steps", "1", "--disable_tqdm", "true"]


@pytest.mark.parametrize(
    "module, flags",
    [
        (run_clm, ["--train_file", "--validation_file", "--block_size", "--tokenizer_name", "--model_name_or_path"]),
        (run_classification, ["--train_file", "--validation_file", "--max_seq_length", "--label_column"]),
    ],
)
def test_help_lists_script_and_training_flags(module, flags, capsys):
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for flag in [*flags, "--config", "--output_dir", "--learning_rate", "--num_train_epochs", "--eval_strategy"]:
        assert flag in out, flag


def test_push_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        push_to_hub.main(["--help"])
    assert exit_.value.code == 0 and "--repo-id" in capsys.readouterr().out


def test_script_file_runs_as_a_program():
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "run_clm.py"), "--help"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout


@pytest.mark.parametrize("script", ["run_classification.py", "run_sft.py", "run_dpo.py", "push_to_hub.py"])
def test_script_wrappers_call_the_package_main(script, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(REPO / "scripts" / script), run_name="__main__")
    assert exit_.value.code == 0 and "usage:" in capsys.readouterr().out


def test_load_script_finds_package_scripts_and_rejects_unknown_tasks():
    assert load_script("clm") is run_clm.main
    assert load_script("classification") is run_classification.main
    with pytest.raises(ValueError, match="unknown training task 'ner'"):
        load_script("ner")


def test_run_clm_on_your_own_text_file(tmp_path):
    lines = (DATA_DIR / "prose" / "train.txt").read_text().splitlines()[:120]
    own = tmp_path / "my_notes.txt"
    own.write_text("\n".join(lines))
    out = tmp_path / "clm"
    metrics = run_clm.main([
        "--config", str(tiny_config_file(tmp_path)), "--train_file", str(own), "--validation_split_percentage", "10",
        "--vocab_size", "300", "--block_size", "16", "--output_dir", str(out), "--max_steps", "3",
        "--max_train_samples", "24", "--max_eval_samples", "8", *FAST,
    ])  # fmt: skip
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["eval_loss"]))
    assert math.isfinite(metrics["train_loss"])
    assert check_upload_complete(out) == []
    card = ModelCard.load(out / "README.md")
    assert card.data.datasets == ["my_notes"]
    assert {r.metric_type: r.metric_value for r in card.data.eval_results}["perplexity"] == round(
        metrics["perplexity"], 4
    )
    state = json.loads((out / "trainer_state.json").read_text())
    assert [h["step"] for h in state["log_history"] if "loss" in h] == [1, 2, 3]
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert len(tokenizer) <= 300 and tokenizer.decode(tokenizer("import os")["input_ids"]) == "import os"
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.vocab_size == len(tokenizer) and model.config.num_hidden_layers == 2


def test_run_clm_rejects_missing_files_and_conflicting_models(tmp_path):
    with pytest.raises(ValueError, match="--train_file 'nope.txt' does not exist"):
        run_clm.main(["--train_file", "nope.txt", "--output_dir", str(tmp_path), *FAST])


def test_run_classification_on_the_shipped_language_id_set(tmp_path):
    out = tmp_path / "clf"
    metrics = run_classification.main([
        "--config", str(tiny_config_file(tmp_path)), "--vocab_size", "300", "--max_seq_length", "24",
        "--output_dir", str(out), "--max_steps", "3", "--max_train_samples", "24", "--max_eval_samples", "16", *FAST,
    ])  # fmt: skip
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0
    labels = sorted({line.rsplit(",", 1)[1] for line in (DATA_DIR / "classification" / "train.csv").read_text()
                     .splitlines()[1:]})
    config = AutoConfig.from_pretrained(out)
    assert [config.id2label[i] for i in range(len(labels))] == labels
    assert config.label2id == {name: i for i, name in enumerate(labels)}
    assert check_upload_complete(out) == []
    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "text-classification"
    assert [r.metric_value for r in card.data.eval_results if r.metric_type == "accuracy"] == [
        round(metrics["eval_accuracy"], 4)
    ]
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_labels == len(labels)


def test_run_classification_names_a_missing_column(tmp_path):
    csv = tmp_path / "bad.csv"
    csv.write_text("sentence,label\nhello,en\nhallo,de\n")
    with pytest.raises(ValueError, match="column 'text' not in"):
        run_classification.main(["--train_file", str(csv), "--validation_file", str(csv),
                                 "--output_dir", str(tmp_path / "o"), *FAST])
