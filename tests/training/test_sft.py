"""Instruction fine-tuning: assistant-only labels from the chat template, packing without leaks, LoRA (peft), TRL's
SFTTrainer on our models, the instruction set built from the shipped corpora, and `scratchformers train sft`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, DataCollatorWithFlattening

from scratchformers import ScratchGPTConfig, ScratchGPTForCausalLM
from scratchformers.data import DATA_DIR, LANGUAGE_NAMES, build_instruction_set, instruction_chats
from scratchformers.sft import (
    CHATML_TEMPLATE,
    assistant_spans,
    assistant_token_loss,
    ensure_chat_template,
    has_generation_markers,
    tokenize_chat,
)
from scratchformers.tokenization import train_tokenizer
from scratchformers_cli import main

CHAT = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Which language is this sentence in? Datei nicht gefunden"},
    {"role": "assistant", "content": "German"},
    {"role": "user", "content": "Translate to German: Open file"},
    {"role": "assistant", "content": "Datei öffnen"},
]
MARKERLESS = CHATML_TEMPLATE.replace("{%- generation %}", "").replace("{%- endgeneration %}", "")
FAST = ["--report_to", "none", "--use_cpu", "true", "--save_strategy", "no", "--logging_steps", "1",
        "--disable_tqdm", "true", "--per_device_eval_batch_size", "16"]


def tiny_llama(vocab_size: int, positions: int = 128, seed: int = 0) -> ScratchGPTForCausalLM:
    """A 2-layer llama-style decoder (rotary, RMSNorm, SwiGLU, 1 key/value head), width 32."""
    torch.manual_seed(seed)
    config = ScratchGPTConfig(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=64, max_position_embeddings=positions, position_embedding_type="rotary",
        norm_type="rmsnorm", ffn_type="gated", activation="silu", attention_bias=False, ffn_bias=False,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, bos_token_id=0, eos_token_id=0, pad_token_id=1,
    )
    return ScratchGPTForCausalLM(config)


@pytest.fixture(scope="module")
def plain_tokenizer(tmp_path_factory):
    """Byte-level BPE as `train clm` trains it (here on the instruction set's texts): no chat template."""
    texts = [m["content"] for row in instruction_chats(max_per_task={"train": 400})["train"] for m in row["messages"]]
    corpus = tmp_path_factory.mktemp("corpus") / "texts.txt"
    corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return train_tokenizer([corpus], kind="bpe", vocab_size=600)


@pytest.fixture(scope="module")
def tokenizer_folder(tmp_path_factory, plain_tokenizer):
    folder = tmp_path_factory.mktemp("tokenizer")
    plain_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def chat_tokenizer(tokenizer_folder):
    """A fresh copy with the default ChatML template (tests may change its template)."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder)
    ensure_chat_template(tokenizer)
    return tokenizer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, plain_tokenizer):
    """A saved tiny llama-style checkpoint with a tokenizer that has no chat template (like `train clm` saves)."""
    folder = tmp_path_factory.mktemp("base")
    tiny_llama(len(plain_tokenizer)).save_pretrained(folder)
    plain_tokenizer.save_pretrained(folder)
    return folder


# --- labels ---------------------------------------------------------------------------------------------------------


def test_labels_are_the_assistant_answers_and_their_end_of_turn_only(chat_tokenizer):
    encoded = tokenize_chat(chat_tokenizer, CHAT)
    learned = [t for t in encoded["labels"] if t != -100]
    # reference: each answer tokenised alone, followed by the token that ends its turn
    expected = []
    for answer in ("German", "Datei öffnen"):
        expected += chat_tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
    assert learned == expected
    assert len(encoded["labels"]) == len(encoded["input_ids"])
    kept = [i for i, t in zip(encoded["input_ids"], encoded["labels"]) if t == -100]
    assert "Datei nicht gefunden" in chat_tokenizer.decode(kept)  # the user's text is in the input, not learned


def test_prefix_rendering_finds_the_same_tokens_as_generation_markers(chat_tokenizer):
    assert has_generation_markers(chat_tokenizer.chat_template)
    marked = tokenize_chat(chat_tokenizer, CHAT)
    chat_tokenizer.chat_template = MARKERLESS
    assert not has_generation_markers(MARKERLESS)
    assert tokenize_chat(chat_tokenizer, CHAT) == marked


def test_a_template_that_rewrites_earlier_turns_is_refused(chat_tokenizer):
    # like templates that drop past reasoning: an earlier answer renders differently once the chat goes on
    chat_tokenizer.chat_template = (
        "{%- for m in messages %}{%- if m['role'] == 'assistant' and not loop.last %}<|im_start|>assistant\n(...)"
        "<|im_end|>\n{%- else %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{%- endif %}{%- endfor %}"
        "{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}"
    )
    with pytest.raises(ValueError, match="renders a conversation's first turns differently"):
        assistant_spans(chat_tokenizer, CHAT)


def test_a_tokenizer_without_template_gets_chatml_and_the_model_grows(plain_tokenizer, tokenizer_folder):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder)
    model = tiny_llama(len(tokenizer))
    assert ensure_chat_template(tokenizer, model) is True
    assert tokenizer.chat_template == CHATML_TEMPLATE
    assert model.get_input_embeddings().num_embeddings == len(tokenizer) == len(plain_tokenizer) + 2
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert im_end in model.generation_config.eos_token_id  # generation stops where the answer ends
    assert ensure_chat_template(tokenizer, model) is False  # a template is kept as it is


def test_packed_chats_do_not_see_each_other(chat_tokenizer):
    """The padding-free row of two chats gives each chat's tokens the logits it gets alone, and the first token of the
    second chat is not a target of the first."""
    model = tiny_llama(len(chat_tokenizer)).eval()
    rows = [tokenize_chat(chat_tokenizer, CHAT), tokenize_chat(chat_tokenizer, CHAT[:3])]
    packed = DataCollatorWithFlattening()(rows)
    n = len(rows[0]["input_ids"])
    assert packed["labels"][0, n].item() == -100
    with torch.no_grad():
        together = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"]).logits[0]
        alone = [model(input_ids=torch.tensor([r["input_ids"]])).logits[0] for r in rows]
    torch.testing.assert_close(together, torch.cat(alone), atol=1e-5, rtol=1e-5)
    # and the assistant-token loss of the padded batch is the token-weighted mean of the two chats' losses
    padded = DataCollatorForSeq2Seq(chat_tokenizer, label_pad_token_id=-100)
    one = [assistant_token_loss(model, Dataset.from_list([r]), padded) for r in rows]
    counts = [sum(t != -100 for t in r["labels"][1:]) for r in rows]
    both = assistant_token_loss(model, Dataset.from_list(rows), padded)
    assert both == pytest.approx((one[0] * counts[0] + one[1] * counts[1]) / sum(counts), rel=1e-5)


# --- the instruction set --------------------------------------------------------------------------------------------


def test_instruction_set_is_deterministic_and_splits_do_not_leak(tmp_path):
    limits = {"train": 300, "validation": 40, "test": 40}
    first = instruction_chats(seed=3, max_per_task=limits)
    assert first == instruction_chats(seed=3, max_per_task=limits)
    assert first != instruction_chats(seed=4, max_per_task=limits)
    assert {k: len(v) for k, v in first.items()} == {k: 2 * n for k, n in limits.items()}
    prompts = {split: {row["messages"][0]["content"] for row in rows} for split, rows in first.items()}
    assert not prompts["train"] & prompts["validation"] and not prompts["train"] & prompts["test"]
    # each answer is the shipped one: the German of the pair, the language's name for the label
    german = {json.loads(line)["translation"]["en"]: json.loads(line)["translation"]["de"]
              for line in (DATA_DIR / "translation" / "en-de" / "test.jsonl").read_text().splitlines()}
    import csv

    with (DATA_DIR / "classification" / "test.csv").open(newline="") as fh:
        language = {row["text"]: LANGUAGE_NAMES[row["label"]] for row in csv.DictReader(fh)}
    for row in first["test"]:
        question, answer = row["messages"][0]["content"], row["messages"][1]["content"]
        if question.startswith("Translate to German: "):
            assert german[question.removeprefix("Translate to German: ")] == answer
        else:
            assert language[question.removeprefix("Which language is this sentence in? ")] == answer
    paths = build_instruction_set(tmp_path, seed=3, max_per_task=limits)
    written = [json.loads(line) for line in paths["validation"].read_text(encoding="utf-8").splitlines()]
    assert written == first["validation"]


# --- the command ----------------------------------------------------------------------------------------------------


def language_id_chats(folder: Path, split: str, n: int) -> Path:
    """``n`` language-ID chats of the instruction set (one-word answers), the languages taken in turn (so always
    answering one language scores about 1/6), as a user's file."""
    rows = [r for r in instruction_chats(max_per_task={split: 8 * n})[split]
            if r["messages"][0]["content"].startswith("Which")]
    by_answer = {}
    for row in rows:
        by_answer.setdefault(row["messages"][1]["content"], []).append(row)
    in_turn = [row for group in zip(*by_answer.values()) for row in group][:n]
    path = folder / f"{split}.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in in_turn), encoding="utf-8")
    return path


def test_sft_lowers_the_assistant_loss_and_raises_exact_match(tmp_path, checkpoint, capsys):
    train, validation = language_id_chats(tmp_path, "train", 48), language_id_chats(tmp_path, "validation", 12)
    out = tmp_path / "chat"
    argv = ["train", "sft", "--train_file", str(train), "--validation_file", str(validation),
            "--model_name_or_path", str(checkpoint), "--output_dir", str(out), "--max_steps", "40",
            "--learning_rate", "1e-2", "--per_device_train_batch_size", "16", "--packing",
            "--exact_match_samples", "12", "--max_new_tokens", "4", *FAST]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((out / "all_results.json").read_text())
    assert metrics["eval_loss"] < metrics["eval_loss_before"] - 0.5
    assert metrics["exact_match"] > metrics["exact_match_before"]  # (an untrained model never answers exactly)
    record = json.loads((out / "training_data.json").read_text())
    assert record["task"] == "sft" and record["validation_file"] == str(validation.resolve())
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template == CHATML_TEMPLATE  # the chat template travels with the checkpoint
    model = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True)
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    assert main(argv) == 2  # an existing run is not replaced without --overwrite_output_dir
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0  # scores the validation chats again, as training did
    scored = json.loads(capsys.readouterr().out)
    assert scored["loss"] == pytest.approx(metrics["eval_loss"], rel=1e-5) and scored["chats"] == 12


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--merge_lora"], "--merge_lora needs --lora_r"),
        (["--lora_r", "-1"], "--lora_r must be"),
        (["--max_steps", "abc"], "argument --max_steps/--max-steps: invalid int value: 'abc'"),  # argparse's own
        (["--lr_scheduler_type", "nope"], "invalid choice: 'nope' (choose from 'linear', 'cosine'"),
    ],
)
def test_flag_mistakes_are_one_error_line(tmp_path, checkpoint, capsys, extra, message):
    train = language_id_chats(tmp_path, "train", 4)
    code = main(["train", "sft", "--train_file", str(train), "--model_name_or_path", str(checkpoint),
                 "--output_dir", str(tmp_path / "o"), *extra, *FAST])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]  # (no usage block of every TrainingArguments flag first)


def test_missing_checkpoint_and_bad_rows_are_named(tmp_path, checkpoint, capsys):
    train = tmp_path / "chats.jsonl"
    train.write_text(json.dumps({"messages": CHAT}) + "\n" + json.dumps({"messages": [{"role": "bot", "content": "x"}]})
                     + "\n")
    assert main(["train", "sft", "--train_file", str(train), "--output_dir", str(tmp_path / "o"), *FAST]) == 2
    assert "--model_name_or_path is required" in capsys.readouterr().err
    assert main(["train", "sft", "--train_file", str(train), "--model_name_or_path", str(checkpoint),
                 "--output_dir", str(tmp_path / "o"), *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "chats.jsonl line 2" in err and "'bot'" in err and "assistant" in err


# --- LoRA (peft) ----------------------------------------------------------------------------------------------------


def _one_chat_batch(tokenizer) -> dict[str, torch.Tensor]:
    padded = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)
    return padded([tokenize_chat(tokenizer, CHAT), tokenize_chat(tokenizer, CHAT[:3])])


def _train_steps(model, batch, steps: int = 3, lr: float = 1e-2) -> None:
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def test_lora_trains_only_the_adapters_and_merging_keeps_the_logits(chat_tokenizer):
    pytest.importorskip("peft")
    from scratchformers.sft import LORA_TARGET_MODULES, lora_model

    model = tiny_llama(len(chat_tokenizer))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    new = chat_tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    peft_model = lora_model(model, 4, 8.0, 0.0, LORA_TARGET_MODULES, trainable_token_ids=new)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "trainable_tokens" in n for n in trainable)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable if "lora_" in n} == {
        "qkv_proj", "out_proj", "fc_in", "fc_out"}
    batch = _one_chat_batch(chat_tokenizer)
    _train_steps(peft_model, batch)
    base = peft_model.get_base_model()
    for name, value in before.items():  # the base weights did not move (peft keeps them under base_layer)
        if "embeddings.embed_tokens" in name or "lm_head" in name:
            continue
        key = name.replace(".weight", ".base_layer.weight") if any(
            f"{t}.weight" in name for t in LORA_TARGET_MODULES) else name
        torch.testing.assert_close(base.state_dict()[key], value, rtol=0, atol=0)
    with torch.no_grad():
        adapted = peft_model(**batch).logits
        assert not torch.allclose(adapted, model_logits_without_adapters(peft_model, batch))
        merged = peft_model.merge_and_unload()
        torch.testing.assert_close(merged(**batch).logits, adapted, atol=1e-5, rtol=1e-5)


def model_logits_without_adapters(peft_model, batch) -> torch.Tensor:
    with peft_model.disable_adapter():
        return peft_model(**batch).logits


def test_saved_adapter_reloads_onto_our_model_with_the_same_logits(tmp_path, checkpoint):
    pytest.importorskip("peft")
    from peft import PeftModel

    out = tmp_path / "adapter"
    train = language_id_chats(tmp_path, "train", 16)
    assert main(["train", "sft", "--train_file", str(train), "--model_name_or_path", str(checkpoint),
                 "--output_dir", str(out), "--max_steps", "3", "--learning_rate", "1e-2", "--lora_r", "4",
                 "--lora_dropout", "0", "--do_train", *FAST]) == 0
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    assert "load_adapter" in (out / "README.md").read_text()
    tokenizer = AutoTokenizer.from_pretrained(out)
    batch = _one_chat_batch(tokenizer)
    from scratchformers.sft import load_adapter

    reloaded = load_adapter(out).eval()
    # by hand, as the card says: the base resized to the tokenizer, then peft
    base = AutoModelForCausalLM.from_pretrained(checkpoint, trust_remote_code=True)
    base.resize_token_embeddings(len(tokenizer))
    by_hand = PeftModel.from_pretrained(base, str(out)).eval()
    untuned = AutoModelForCausalLM.from_pretrained(checkpoint, trust_remote_code=True).eval()
    with torch.no_grad():
        logits = reloaded(**batch).logits
        torch.testing.assert_close(by_hand(**batch).logits, logits, atol=1e-5, rtol=1e-5)
        # the adapter changed the model: on the tokens the base already had, its logits differ
        plain = untuned(**{k: v for k, v in batch.items() if k != "labels"} | {
            "input_ids": batch["input_ids"].clamp(max=untuned.config.vocab_size - 1)}).logits
        assert not torch.allclose(logits[..., : plain.shape[-1]], plain, atol=1e-3)


@pytest.mark.filterwarnings("error::UserWarning")  # peft's save_embedding_layers warning: we decide, quietly
def test_an_adapter_folder_works_where_a_checkpoint_does(tmp_path, checkpoint, capsys):
    """`evaluate`, `chat`, `generate` and `push --check` take the adapter folder `train sft --lora_r` saves (no
    config.json): loaded on the base adapter_config.json names; its card does not claim code it does not carry."""
    pytest.importorskip("peft")
    from scratchformers.chat import ChatSession
    from scratchformers.hub import check_upload_complete
    from scratchformers.sft import load_adapter

    out = tmp_path / "adapter"
    train = language_id_chats(tmp_path, "train", 16)
    assert main(["train", "sft", "--train_file", str(train), "--model_name_or_path", str(checkpoint),
                 "--output_dir", str(out), "--max_steps", "3", "--learning_rate", "1e-2", "--lora_r", "4",
                 "--lora_dropout", "0", *FAST]) == 0
    assert not (out / "config.json").exists()
    card = (out / "README.md").read_text()
    assert "auto_map" not in card and "adapter_config.json" in card
    assert check_upload_complete(out) == []
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    measured = json.loads((out / "all_results.json").read_text())["eval_loss"]  # the run's own, on the same chats
    assert evaluated["loss"] == pytest.approx(measured, abs=1e-4)

    tokenizer = AutoTokenizer.from_pretrained(out)
    stop = tokenizer.convert_tokens_to_ids("<|im_end|>")  # the fine-tuned generation config travels with the adapter
    reference = load_adapter(out).eval()
    assert stop in reference.generation_config.eos_token_id
    expected = ChatSession(reference, tokenizer, do_sample=False, max_new_tokens=6).reply("Which language? Hallo")
    assert main(["chat", str(out), "--prompt", "Which language? Hallo", "--greedy", "--max-new-tokens", "6",
                 "--no-stream"]) == 0
    assert capsys.readouterr().out == expected + "\n"


@pytest.mark.parametrize("command", [["evaluate"], ["chat", "--prompt", "hi"], ["generate", "--prompt", "hi"]])
@pytest.mark.parametrize("base", ["gone", "empty", "someone/model"])
def test_an_adapter_whose_base_is_missing_is_one_error_line_naming_it(tmp_path, monkeypatch, capsys, command, base):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # a Hub id then cannot be fetched: said, not retried
    (tmp_path / "empty").mkdir()
    base = base if "/" in base else str(tmp_path / base)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base, "peft_type": "LORA"}))
    assert main([command[0], str(adapter), *command[1:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "LoRA adapter on" in err[0] and base in err[0] and "--merge_lora" in err[0]


def test_merged_lora_checkpoint_matches_the_adapter(tmp_path, checkpoint):
    pytest.importorskip("peft")
    from scratchformers.sft import load_adapter

    train = language_id_chats(tmp_path, "train", 16)
    common = ["train", "sft", "--train_file", str(train), "--model_name_or_path", str(checkpoint), "--max_steps", "3",
              "--learning_rate", "1e-2", "--lora_r", "4", "--lora_dropout", "0", "--do_train", "--seed", "7", *FAST]
    assert main([*common, "--output_dir", str(tmp_path / "adapter")]) == 0
    assert main([*common, "--output_dir", str(tmp_path / "merged"), "--merge_lora"]) == 0
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", trust_remote_code=True).eval()
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    batch = _one_chat_batch(AutoTokenizer.from_pretrained(tmp_path / "merged"))
    with torch.no_grad():
        torch.testing.assert_close(merged(**batch).logits, load_adapter(tmp_path / "adapter").eval()(**batch).logits,
                                   atol=1e-5, rtol=1e-5)


# --- TRL ------------------------------------------------------------------------------------------------------------


def test_trl_builds_our_labels_and_its_packed_assistant_only_training_learns(tmp_path, chat_tokenizer):
    """TRL's SFTTrainer on our model: with assistant_only_loss it builds exactly our labels for each chat (its mask
    comes from the template's {% generation %} markers, ours too), and packed padding-free training (TRL's "bfd"
    packing, position ids restarting per chat) lowers the loss."""
    trl = pytest.importorskip("trl")
    chats = [row for row in instruction_chats(max_per_task={"train": 12})["train"]]
    dataset = Dataset.from_list(chats)
    model = tiny_llama(len(chat_tokenizer))

    def trainer(**options):
        config = trl.SFTConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, save_strategy="no",
                               disable_tqdm=True, assistant_only_loss=True, max_length=96, logging_steps=1,
                               per_device_train_batch_size=8, learning_rate=1e-2, **options)
        return trl.SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=chat_tokenizer)

    theirs = trainer(packing=False, max_steps=1).train_dataset
    ours = [tokenize_chat(chat_tokenizer, chat["messages"], 96) for chat in chats]
    assert theirs["input_ids"] == [o["input_ids"] for o in ours]
    assert theirs["labels"] == [o["labels"] for o in ours]

    packed = trainer(packing=True, max_steps=6)
    assert any(len(lengths) > 1 for lengths in packed.train_dataset["seq_lengths"])  # several chats in one row
    packed.train()
    losses = [h["loss"] for h in packed.state.log_history if "loss" in h]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


def test_evaluate_scores_the_chats_held_out_of_the_training_file(tmp_path, checkpoint, capsys):
    train = language_id_chats(tmp_path, "train", 16)
    out = tmp_path / "held-out"
    assert main(["train", "sft", "--train_file", str(train), "--validation_split_percentage", "25",
                 "--model_name_or_path", str(checkpoint), "--output_dir", str(out), "--max_steps", "1", *FAST]) == 0
    metrics = json.loads((out / "all_results.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["chats"] == 4 and scored["loss"] == pytest.approx(metrics["eval_loss"], rel=1e-5)
