"""A new user's session with their own files, as the README and docs/getting-started.md document it: their CSV and
text in a temporary folder, several runs in a row, the commands typed as documented (run in-process through
`scratchformers_cli.main` for speed, with tiny configs and a handful of steps).

Each test is a fault seen on the old CLI: validating on shipped data, scoring the wrong file, silently replacing a
run, traceback instead of one `error:` line, a slow `--help`, incomplete checkpoints, a wrong tokenizer length."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import Dataset
from huggingface_hub import ModelCard
from journey_helpers import TINY_GPT, tiny_checkpoint, tiny_config_file
from transformers import AutoTokenizer

from scratchformers.data import DATA_DIR
from scratchformers.hub import check_upload_complete
from scratchformers_cli import TASKS, main

FAST = ["--report_to", "none", "--use_cpu", "true", "--per_device_train_batch_size", "4",
        "--per_device_eval_batch_size", "8", "--save_strategy", "no", "--logging_steps", "1", "--disable_tqdm", "true"]
TINY_BERT = {"model_type": "scratch_bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 64, "max_position_embeddings": 64, "hidden_dropout_prob": 0.0,
             "attention_probs_dropout_prob": 0.0}


def my_reviews(folder: Path, rows: int = 40) -> Path:
    """The user's own two-class CSV (labels that never occur in the shipped language-ID set)."""
    rng = random.Random(0)
    good = ["great film", "loved it", "wonderful acting", "a joy to watch", "superb story"]
    bad = ["boring plot", "hated it", "awful acting", "a waste of time", "weak story"]
    lines = ["text,label"]
    for i in range(rows):
        label = "pos" if i % 2 == 0 else "neg"
        lines.append(f"{rng.choice(good if label == 'pos' else bad)} number {i},{label}")
    path = folder / "reviews.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def my_notes(folder: Path, lines: int = 120) -> Path:
    """The user's own text file (here: lines of the shipped prose, under the user's name)."""
    path = folder / "my_notes.txt"
    path.write_text("\n".join((DATA_DIR / "prose" / "train.txt").read_text().splitlines()[:lines]) + "\n")
    return path


def train_classifier(tmp_path: Path, csv: Path, out: Path, *extra: str) -> int:
    return main(["train", "classification", "--train_file", str(csv), "--output_dir", str(out),
                 "--config", str(tiny_config_file(tmp_path)), "--vocab_size", "300", "--max_seq_length", "16",
                 "--max_steps", "2", *FAST, *extra])  # fmt: skip


def error_line(capsys) -> str:
    """The one `error:` line a user mistake ends with (progress bars may come before it; no traceback)."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and lines and lines[-1].startswith("error: "), err[-2000:]
    assert sum(line.startswith("error: ") for line in lines) == 1, err[-2000:]
    return lines[-1]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """The README's line on the user's own CSV, no --validation_file."""
    folder = tmp_path_factory.mktemp("clf")
    csv = my_reviews(folder)
    out = folder / "my-clf"
    assert train_classifier(folder, csv, out) == 0
    return folder, csv, out


# --- no silent wrong result ---------------------------------------------------------------------------------------


def test_classification_without_validation_file_holds_out_part_of_my_csv(classifier):
    folder, csv, out = classifier
    record = json.loads((out / "training_data.json").read_text())
    assert record["train_file"] == str(csv.resolve()) and record["validation_file"] is None
    assert record["validation_split_percentage"] == 10
    card = ModelCard.load(out / "README.md")
    assert card.data.datasets == ["reviews"]
    assert card.data.language is None and card.data.license is None  # not "en" / "apache-2.0" for the user's data
    assert "data/README.md" not in card.text and "reviews.csv" in card.text and "held out" in card.text
    config = json.loads((out / "config.json").read_text())
    assert sorted(config["id2label"].values()) == ["neg", "pos"]


def test_evaluate_without_file_scores_the_rows_held_out_in_training(classifier, capsys):
    folder, csv, out = classifier
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    # the reference: the same seeded split of the user's CSV, written out and scored with --file
    held_out = Dataset.from_csv(str(csv)).train_test_split(test_size=0.1, seed=42)["test"]
    assert result["rows"] == len(held_out) == 4
    reference = folder / "held_out.csv"
    held_out.to_csv(str(reference), index=False)
    assert main(["evaluate", str(out), "--file", str(reference)]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == result["accuracy"]


def test_evaluate_refuses_labels_the_model_does_not_have(classifier, capsys):
    folder, csv, out = classifier
    capsys.readouterr()
    assert main(["evaluate", str(out), "--file", str(DATA_DIR / "classification" / "validation.csv")]) == 2
    assert "not labels of this model" in error_line(capsys)


def test_evaluate_without_a_record_or_file_says_so(tmp_path, capsys):
    checkpoint = tiny_checkpoint(tmp_path / "ckpt")
    assert main(["evaluate", str(checkpoint)]) == 2
    assert "pass --file" in error_line(capsys)


def test_an_empty_label_cell_is_an_error_naming_the_line(tmp_path, capsys):
    csv = my_reviews(tmp_path)
    lines = csv.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ","
    csv.write_text("\n".join(lines) + "\n")
    assert train_classifier(tmp_path, csv, tmp_path / "out") == 2
    line = error_line(capsys)
    assert "line 4" in line and "'label'" in line and str(csv) in line


def test_clm_evaluate_uses_the_training_block_size_and_held_out_lines(tmp_path, capsys):
    notes = my_notes(tmp_path)
    out = tmp_path / "my-gpt"
    assert main(["train", "clm", "--train_file", str(notes), "--output_dir", str(out), "--block_size", "16",
                 "--config", str(tiny_config_file(tmp_path)), "--vocab_size", "300", "--max_steps", "2",
                 *FAST]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "5% of its rows held out (seed 42)" in printed
    assert main(["evaluate", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["block_size"] == 16
    metrics = json.loads((out / "all_results.json").read_text())
    assert result["loss"] == pytest.approx(metrics["eval_loss"], rel=1e-4)  # the very blocks training validated on
    # the saved tokenizer tells the truth about the model's positions
    assert AutoTokenizer.from_pretrained(out).model_max_length == TINY_GPT["max_position_embeddings"]


# --- nothing lost ---------------------------------------------------------------------------------------------


def test_a_second_run_into_the_same_folder_is_refused_unless_asked(tmp_path, capsys):
    csv = my_reviews(tmp_path)
    out = tmp_path / "my-clf"
    assert train_classifier(tmp_path, csv, out, "--save_strategy", "steps", "--save_steps", "2") == 0
    assert (out / "checkpoint-2").is_dir()
    first = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert train_classifier(tmp_path, csv, out, "--seed", "1") == 2
    assert "--overwrite_output_dir" in error_line(capsys)
    assert (out / "model.safetensors").read_bytes() == first and (out / "checkpoint-2").is_dir()
    assert train_classifier(tmp_path, csv, out, "--seed", "1", "--overwrite_output_dir") == 0
    assert not (out / "checkpoint-2").exists()  # no stale checkpoint beside the new run
    assert (out / "model.safetensors").read_bytes() != first


def earlier_run(out: Path) -> dict[str, bytes]:
    """A folder holding an earlier run (a model file and a checkpoint), as {relative path: bytes}."""
    (out / "checkpoint-7").mkdir(parents=True)
    (out / "model.safetensors").write_bytes(b"the earlier run's weights")
    (out / "checkpoint-7" / "trainer_state.json").write_text('{"global_step": 7}')
    return files_of(out)


def files_of(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_a_failed_run_with_overwrite_keeps_the_earlier_run(tmp_path, capsys, monkeypatch):
    """--overwrite_output_dir replaces an earlier run only when the new one succeeds: a mistake found after the
    folder check (a block size no line fills), or an interrupt during training, puts the earlier run back."""
    notes = my_notes(tmp_path)
    out = tmp_path / "my-gpt"
    before = earlier_run(out)
    argv = ["train", "clm", "--train_file", str(notes), "--output_dir", str(out), "--overwrite_output_dir",
            "--config", str(tiny_config_file(tmp_path)), "--vocab_size", "300", "--max_steps", "2", *FAST]
    assert main([*argv, "--block_size", "100000"]) == 2
    error_line(capsys)
    assert files_of(out) == before
    assert not list(tmp_path.glob(".my-gpt.replaced-*"))

    import transformers

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(transformers.Trainer, "train", interrupted)
    assert main([*argv, "--block_size", "16"]) == 130  # Ctrl-C: one line, status 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "interrupted (Ctrl-C)"
    assert files_of(out) == before
    monkeypatch.undo()
    assert main([*argv, "--block_size", "16"]) == 0  # a run that succeeds does replace it
    assert not (out / "checkpoint-7").exists() and (out / "model.safetensors").read_bytes() != before["model.safetensors"]
    assert not list(tmp_path.glob(".my-gpt.replaced-*"))


def test_a_failed_convert_or_demo_with_overwrite_keeps_the_earlier_folder(tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no_such_model"}')
    out = tmp_path / "converted"
    before = earlier_run(out)
    assert main(["convert", str(broken), str(out), "--overwrite"]) == 2
    error_line(capsys)
    assert files_of(out) == before
    demo = tmp_path / "demo"
    before = earlier_run(demo)
    assert main(["demo", "--output-dir", str(demo), "--overwrite", "--max-steps", "1",
                 "--config", str(tmp_path / "missing.json")]) == 2  # fmt: skip
    error_line(capsys)
    assert files_of(demo) == before


def test_demo_refuses_a_folder_holding_an_earlier_run(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "results.json").write_text("{}")
    assert main(["demo", "--output-dir", str(out), "--max-steps", "1", "--config", str(tiny_config_file(tmp_path))]) == 2
    assert "--overwrite" in error_line(capsys)
    assert (out / "results.json").read_text() == "{}"


def test_demo_families_default_to_their_own_folders(tmp_path, monkeypatch):
    from scratchformers.demo import demo_output_dir

    monkeypatch.chdir(tmp_path)
    folders = {demo_output_dir(None, family, overwrite=False) for family in ("gpt", "bert", "translation")}
    assert folders == {(tmp_path / "outputs" / f"demo-{f}").resolve() for f in ("gpt", "bert", "translation")}


# --- one-line errors, before slow work ----------------------------------------------------------------------------


def test_a_missing_config_is_reported_before_the_tokenizer_is_trained(tmp_path, capsys, monkeypatch):
    from scratchformers.examples import run_clm

    def no_training(*args, **kwargs):
        raise AssertionError("the tokenizer was trained before --config was checked")

    monkeypatch.setattr(run_clm, "train_tokenizer", no_training)
    assert main(["train", "clm", "--train_file", str(my_notes(tmp_path)), "--config", "nope.json",
                 "--output_dir", str(tmp_path / "o"), *FAST]) == 2  # fmt: skip
    assert "--config" in error_line(capsys)


@pytest.mark.parametrize("mistake", ["empty_validation", "label_column", "output_is_file", "max_steps_0"])
def test_user_mistakes_end_in_one_error_line(tmp_path, capsys, mistake):
    csv = my_reviews(tmp_path)
    out, extra = tmp_path / "out", []
    if mistake == "empty_validation":
        (tmp_path / "val.csv").write_text("")
        extra = ["--validation_file", str(tmp_path / "val.csv")]
    elif mistake == "label_column":
        csv.write_text(csv.read_text().replace("text,label", "text,sentiment", 1))
    elif mistake == "output_is_file":
        out.write_text("not a folder")
    else:
        extra = ["--max_steps", "0"]
    assert train_classifier(tmp_path, csv, out, *extra) == 2
    line = error_line(capsys)
    expected = {"empty_validation": "is empty", "label_column": "--label_column", "output_is_file": "is a file",
                "max_steps_0": "--max_steps 0"}[mistake]
    assert expected in line


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="--max_steps 0"):
        train_classifier(tmp_path, my_reviews(tmp_path), tmp_path / "out", "--max_steps", "0", "--debug")


def test_a_validation_split_too_short_for_one_block_is_named(tmp_path, capsys):
    notes = tmp_path / "short_notes.txt"  # 100 short lines: 95 make training blocks, the 5 held out make none
    notes.write_text("".join(f"note {i}\n" for i in range(100)))
    assert main(["train", "clm", "--train_file", str(notes), "--output_dir", str(tmp_path / "o"),
                 "--block_size", "64", "--config", str(tiny_config_file(tmp_path)), "--vocab_size", "300",
                 "--max_steps", "1", *FAST]) == 2  # fmt: skip
    line = error_line(capsys)
    assert "validation" in line and "5% held out of" in line


# --- fast start, both spellings -----------------------------------------------------------------------------------


def test_help_imports_neither_torch_nor_transformers():
    code = (
        "import sys, scratchformers_cli\n"
        "for argv in (['--help'], ['evaluate', '--help'], ['demo', '--help'], ['train', '--help']):\n"
        "    try:\n"
        "        code = scratchformers_cli.main(argv)\n"
        "    except SystemExit as done:\n"
        "        code = done.code\n"
        "    assert code == 0, (argv, code)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'scratchformers') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert all(task in done.stdout for task in TASKS)  # `train --help` lists the tasks


def test_both_flag_spellings_work(tmp_path, capsys):
    assert main(["demo", "--output_dir", str(tmp_path / "d"), "--max_steps", "0"]) == 2
    assert "max_steps must be >= 1" in error_line(capsys)
    assert main(["evaluate", str(tmp_path), "--block_size", "8"]) == 2  # parsed; fails only on the folder
    assert "no config.json" in error_line(capsys)


# --- every checkpoint the package writes is complete --------------------------------------------------------------


def test_train_mlm_on_my_text_writes_a_complete_checkpoint(tmp_path):
    config = tmp_path / "bert-micro.json"
    config.write_text(json.dumps(TINY_BERT))
    out = tmp_path / "my-bert"
    assert main(["train", "mlm", "--train_file", str(my_notes(tmp_path)), "--config", str(config),
                 "--output_dir", str(out), "--vocab_size", "300", "--max_seq_length", "32",
                 "--max_steps", "2", *FAST]) == 0  # fmt: skip
    assert check_upload_complete(out) == []
    assert (out / "trainer_state.json").is_file() and not (out / "tokenizer").exists()
    card = ModelCard.load(out / "README.md")
    assert card.data.datasets == ["my_notes"] and card.data.pipeline_tag == "fill-mask"
    assert "perplexity" in {r.metric_type for r in card.data.eval_results}
    assert AutoTokenizer.from_pretrained(out).model_max_length == TINY_BERT["max_position_embeddings"]
    assert json.loads((out / "training_data.json").read_text())["validation_split_percentage"] == 5


def test_train_translation_on_my_pairs_validates_on_them_and_is_complete(tmp_path):
    shipped = (DATA_DIR / "translation" / "en-de" / "train.jsonl").read_text().splitlines()[:60]
    pairs = tmp_path / "my_pairs.jsonl"
    pairs.write_text("\n".join(shipped) + "\n")
    out = tmp_path / "my-mt"
    assert main(["train", "translation", "--train_file", str(pairs), "--output_dir", str(out),
                 "--do_train", "--do_eval", "--max_steps", "2", "--vocab_size", "300", "--generation_num_beams", "1",
                 "--generation_max_length", "4", "--per_device_train_batch_size", "8",
                 "--config_overrides", "hidden_size=32,num_attention_heads=2,intermediate_size=64,encoder_layers=1,"
                                       "decoder_layers=1"]) == 0  # fmt: skip
    assert check_upload_complete(out) == []
    record = json.loads((out / "training_data.json").read_text())
    assert record["validation_file"] is None and record["test_file"] is None
    assert record["validation_split_percentage"] == 5
    card = ModelCard.load(out / "README.md")
    assert card.data.datasets == ["my_pairs"] and card.data.license is None
    assert "eval_bleu" in json.loads((out / "all_results.json").read_text())


def test_convert_writes_a_checkpoint_that_push_check_accepts(tmp_path, capsys):
    import transformers

    from scratchformers.tokenization import train_tokenizer

    tokenizer = train_tokenizer([my_notes(tmp_path)], kind="bpe", vocab_size=300)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32,
                                                              n_layer=1, n_head=2))
    hf.save_pretrained(tmp_path / "hf")
    tokenizer.save_pretrained(tmp_path / "hf")
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "ours")]) == 0
    assert main(["push", str(tmp_path / "ours"), "--check"]) == 0
    card = ModelCard.load(tmp_path / "ours" / "README.md")
    assert card.data.language is None and card.data.license is None and "converted unchanged" in card.text
    capsys.readouterr()
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "ours")]) == 2  # a second run: nothing replaced
    assert "--overwrite" in error_line(capsys)
    # and back to transformers' own class: complete too, and its card does not ask for custom code
    assert main(["convert", str(tmp_path / "ours"), str(tmp_path / "back")]) == 0
    assert main(["push", str(tmp_path / "back"), "--check"]) == 0
    back = ModelCard.load(tmp_path / "back" / "README.md")
    assert "custom_code" not in back.data.tags and "trust_remote_code" not in back.text
    assert "GPT2LMHeadModel" in back.text and back.data.pipeline_tag == "text-generation"


def test_bert_demo_checkpoint_is_upload_complete(tmp_path, capsys):
    from scratchformers.demo import run_demo

    config = tmp_path / "bert-micro.json"
    config.write_text(json.dumps(TINY_BERT))
    result = run_demo(output_dir=tmp_path / "demo-bert", family="bert", max_steps=2, config=config)
    assert result["upload_missing"] == [] == check_upload_complete(result["checkpoint"])
    assert (Path(result["checkpoint"]) / "trainer_state.json").is_file()
    assert "[MASK]" in result["sample"][0] and "[MASK]" in capsys.readouterr().out  # answers shown with the sentence


def test_generate_on_a_masked_lm_without_mask_says_what_to_do(tmp_path, capsys):
    from scratchformers import ScratchBertConfig, ScratchBertForMaskedLM
    from scratchformers.tokenization import train_tokenizer

    tokenizer = train_tokenizer([my_notes(tmp_path)], kind="wordpiece", vocab_size=300)
    fields = {k: v for k, v in TINY_BERT.items() if k != "model_type"}
    ScratchBertForMaskedLM(ScratchBertConfig(**fields, vocab_size=len(tokenizer))).save_pretrained(tmp_path / "bert")
    tokenizer.save_pretrained(tmp_path / "bert")
    assert main(["generate", str(tmp_path / "bert"), "--prompt", "The import statement"]) == 2
    assert "[MASK]" in error_line(capsys)
    assert main(["generate", str(tmp_path / "bert"), "--prompt", "The import [MASK] finds a module."]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "The import [MASK] finds a module." and len(printed) == 6  # the sentence, then 5 answers


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_push_check_on_a_path_that_is_not_a_folder_is_one_error_line(kind, tmp_path, capsys):
    """`push FOLDER --check` with a mistyped or file path is the user's mistake (status 2, one `error:` line), not a
    checkpoint that is "NOT upload-complete" (status 1)."""
    path = tmp_path / "nothing"
    if kind == "file":
        path.write_text("not a checkpoint")
    assert main(["push", str(path), "--check"]) == 2
    line = error_line(capsys)
    assert str(path) in line and ("does not exist" if kind == "missing" else "is a file") in line


@pytest.mark.parametrize("command", ["clm", "mlm", "classification", "sft"])
@pytest.mark.parametrize("where", ["missing-folder", "a-file", "an-id-while-offline"])
def test_a_missing_model_name_or_path_is_one_error_line_before_any_work(tmp_path, monkeypatch, capsys, command,
                                                                        where):
    """A checkpoint that is not there is refused by name before the Hub is retried for half a minute and a traceback
    ends the run; the output folder is not created."""
    from huggingface_hub import constants

    from scratchformers_cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    data = tmp_path / ("chats.jsonl" if command == "sft" else "data.csv" if command == "classification" else "t.txt")
    row = ('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n'
           if command == "sft" else "a b,x\n" if command == "classification" else "a b c\n")
    data.write_text(("text,label\n" if command == "classification" else "") + row * 40)  # enough to hold some out
    name = {"missing-folder": str(tmp_path / "outputs" / "my-gpt"), "a-file": str(data),
            "an-id-while-offline": "someone/some-model"}[where]
    code = main(["train", command, "--model_name_or_path", name, "--train_file", str(data),
                 "--output_dir", str(tmp_path / "out"), "--report_to", "none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: --model_name_or_path") and name in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["clm", "sft", "translation"])
def test_an_unknown_flag_is_named_without_parser_internals_and_keeps_the_earlier_run(tmp_path, capsys, command):
    """`--lora-rank 4` (a flag the command does not take): one error line naming it, exit 2, no mention of
    HfArgumentParser, and the folder of an earlier run is left as it was."""
    from scratchformers_cli import main

    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text("{}")
    data = tmp_path / "t.txt"
    data.write_text("a b c\n" * 40)
    assert main(["train", command, "--train_file", str(data), "--output_dir", str(out), "--lora-rank", "4",
                 "--report_to", "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "--lora-rank 4" in err[0]
    assert "HfArgumentParser" not in err[0]
    assert [p.name for p in out.iterdir()] == ["config.json"]
