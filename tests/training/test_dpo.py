"""Preference tuning: TRL's DPOTrainer logs the same losses and rewards on our model as on transformers' Llama with the
same weights (full fine-tuning and a LoRA policy), our per-pair log-probabilities are TRL's, the preference set built
from the shipped translations, and `scratchformers train dpo`."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import transformers
from datasets import Dataset

from scratchformers.convert import from_hf
from scratchformers.data import PREFERENCE_CORRUPTIONS, build_preference_set, preference_pairs
from scratchformers.dpo import PREFERENCE_COLUMNS, completion_logprobs, read_preferences
from scratchformers.sft import load_causal_lm
from scratchformers.tokenization import train_tokenizer
from scratchformers_cli import main

trl = pytest.importorskip("trl")
peft = pytest.importorskip("peft")

FAST = ["--report_to", "none", "--use_cpu", "true", "--save_strategy", "no", "--logging_steps", "1",
        "--disable_tqdm", "true", "--bf16", "false", "--gradient_checkpointing", "false"]
# the metrics compared between the twins: DPO's loss, the implicit rewards and their accuracy, the summed log-probs
COMPARED = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
            "logps/rejected", "grad_norm")


def plain_rows(split: str, n: int) -> list[dict[str, str]]:
    return [{c: r[c] for c in PREFERENCE_COLUMNS} for r in preference_pairs(max_per_split={split: n},
                                                                               conversational=False)[split]]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """Byte-level BPE trained on the preference texts (no chat template, as `train clm` saves)."""
    corpus = tmp_path_factory.mktemp("corpus") / "texts.txt"
    corpus.write_text("\n".join(r[c] for r in plain_rows("train", 64) for c in PREFERENCE_COLUMNS) + "\n",
                      encoding="utf-8")
    return train_tokenizer([corpus], kind="bpe", vocab_size=400)


def llama_twins(tokenizer) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(LlamaForCausalLM, our ScratchGPTForCausalLM via from_hf) with the same weights, moved off their init."""
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    hf = transformers.LlamaForCausalLM(config)
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return hf, from_hf(hf)


def dpo_log(model, tokenizer, tmp_path, peft_config=None, steps: int = 3) -> list[dict[str, float]]:
    """TRL's logged training metrics of `steps` DPO steps (batches of 4 pairs, float32, no dropout)."""
    torch.manual_seed(0)  # (peft draws the LoRA A matrices at wrapping time)
    args = trl.DPOConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True,
                         logging_steps=1, per_device_train_batch_size=4, max_steps=steps, learning_rate=1e-3,
                         bf16=False, gradient_checkpointing=False, seed=0, max_length=64)
    trainer = trl.DPOTrainer(model=model, ref_model=None if peft_config else copy.deepcopy(model), args=args,
                             train_dataset=Dataset.from_list(plain_rows("train", 16)), processing_class=tokenizer,
                             peft_config=peft_config)
    trainer.train()
    return [h for h in trainer.state.log_history if "loss" in h]


def assert_same_logs(theirs: list[dict], ours: list[dict]) -> None:
    """Equal up to float32 rounding: our fused q/k/v and gate/up projections and theirs separate sum the same
    products in another order (~1e-7 relative per op), so the summed log-probs (~-180 over ~50 tokens) differ by
    ~1e-5 absolute and rewards, β·differences of them, by ~1e-6; three optimizer steps keep that size. The tolerance
    is ten times what was seen. rewards/accuracies is a share of pairs: equal exactly here (a pair would flip only if
    its reward margin lay within that ~1e-6 rounding difference of zero)."""
    assert len(theirs) == len(ours) == 3
    for step, (a, b) in enumerate(zip(theirs, ours)):
        for key in COMPARED:
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-5), (step, key)
        assert b["rewards/accuracies"] == a["rewards/accuracies"]
    assert any(abs(s["rewards/margins"]) > 1e-4 for s in ours[1:])  # the policy moved: rewards are not all zero


def test_trl_dpo_gives_the_same_losses_and_rewards_on_our_model_as_on_llama(tokenizer, tmp_path):
    hf, ours = llama_twins(tokenizer)
    assert_same_logs(dpo_log(hf, tokenizer, tmp_path), dpo_log(ours, tokenizer, tmp_path))


def test_a_lora_policy_against_its_disabled_adapter_trains_the_same_on_both(tokenizer, tmp_path):
    """TRL's default with a peft config: the reference is the policy with its adapter disabled (no second model).
    The adapters go on the projections both sides have one-to-one (attention output, feed-forward down): on our fused
    qkv / gate-up layers one low-rank update spans all three outputs, a different (not a wrong) parametrisation."""
    hf, ours = llama_twins(tokenizer)

    def lora(targets):
        return peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets, task_type="CAUSAL_LM")

    assert_same_logs(dpo_log(hf, tokenizer, tmp_path, lora(["o_proj", "down_proj"])),
                     dpo_log(ours, tokenizer, tmp_path, lora(["out_proj", "fc_out"])))


def test_completion_logprobs_are_trls_summed_logps(tokenizer, tmp_path):
    """Reference: TRL's eval logps/chosen and logps/rejected (its chunked fused LM head) are batch means of ours
    (full logits, log-softmax), over the same pairs and TRL's own tokenization; float32 rounding only."""
    _, ours = llama_twins(tokenizer)
    rows = Dataset.from_list(plain_rows("validation", 8))
    args = trl.DPOConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, per_device_eval_batch_size=8,
                         bf16=False, disable_tqdm=True, max_length=64)
    trainer = trl.DPOTrainer(model=ours, ref_model=copy.deepcopy(ours), args=args, train_dataset=rows,
                             eval_dataset=rows, processing_class=tokenizer)
    chosen, rejected = completion_logprobs(trainer.model, trainer.get_eval_dataloader())
    metrics = trainer.evaluate()
    assert chosen.shape == rejected.shape == (8,)
    assert metrics["eval_logps/chosen"] == pytest.approx(chosen.mean().item(), rel=1e-5)
    assert metrics["eval_logps/rejected"] == pytest.approx(rejected.mean().item(), rel=1e-5)


def test_preference_set_is_deterministic_held_out_and_never_prefers_a_copy():
    first = preference_pairs(seed=3, max_per_split={"train": 200, "test": 100})
    assert first == preference_pairs(seed=3, max_per_split={"train": 200, "test": 100})
    train_prompts = {r["prompt"][0]["content"] for r in first["train"]}
    assert not train_prompts & {r["prompt"][0]["content"] for r in first["test"]}  # the test split is held out
    for rows in first.values():
        assert {r["corruption"] for r in rows} == set(PREFERENCE_CORRUPTIONS)
        for r in rows:
            chosen, rejected = r["chosen"][0]["content"], r["rejected"][0]["content"]
            assert r["prompt"][0]["content"].startswith("Translate to German: ") and chosen != rejected
            if r["corruption"] == "shuffled_words":
                assert sorted(chosen.split()) == sorted(rejected.split())


def test_built_files_are_read_back_as_they_were_written(tmp_path):
    paths = build_preference_set(tmp_path, max_per_split={"train": 5, "validation": 3, "test": 3})
    rows = read_preferences(paths["train"])
    assert rows == [{c: r[c] for c in PREFERENCE_COLUMNS} for r in preference_pairs(max_per_split={"train": 5})["train"]]


# --- scratchformers train dpo ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tokenizer):
    """A saved tiny checkpoint of ours (converted from a Llama) with a tokenizer that has no chat template."""
    folder = tmp_path_factory.mktemp("base")
    _, ours = llama_twins(tokenizer)
    ours.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_train_dpo_with_lora_on_chat_rows_saves_an_adapter_that_loads(tmp_path, checkpoint, capsys):
    paths = build_preference_set(tmp_path / "prefs", max_per_split={"train": 8, "validation": 4, "test": 1})
    out = tmp_path / "dpo"
    assert main(["train", "dpo", "--train_file", str(paths["train"]), "--validation_file", str(paths["validation"]),
                 "--model_name_or_path", str(checkpoint), "--output_dir", str(out), "--max_steps", "2",
                 "--per_device_train_batch_size", "4", "--learning_rate", "1e-3", "--lora_r", "4", *FAST]) == 0
    metrics = json.loads((out / "all_results.json").read_text())
    for key in ("preference_accuracy_before", "preference_accuracy", "reward_accuracy", "eval_rewards/accuracies"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["reward_accuracy"] == pytest.approx(metrics["eval_rewards/accuracies"])  # (4 pairs: one batch)
    assert json.loads((out / "training_data.json").read_text())["task"] == "dpo"
    model = load_causal_lm(out)  # the adapter on its base, the ChatML tokens added: a working model
    tokens = torch.tensor([[5, 6, 7]])
    assert torch.isfinite(model(tokens).logits).all()
    capsys.readouterr()
    assert main(["push", str(out), "--check"]) == 0
    assert main(["evaluate", str(out)]) == 2  # (no scorer of preference rows: one error line pointing to the metrics)
    assert "all_results.json" in capsys.readouterr().err


def test_train_dpo_full_fine_tuning_on_plain_rows_saves_a_checkpoint(tmp_path, checkpoint):
    train = tmp_path / "prefs.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in plain_rows("train", 10)), encoding="utf-8")
    out = tmp_path / "dpo"
    assert main(["train", "dpo", "--train_file", str(train), "--validation_split_percentage", "20",
                 "--model_name_or_path", str(checkpoint), "--output_dir", str(out), "--max_steps", "2",
                 "--per_device_train_batch_size", "4", "--learning_rate", "1e-3", *FAST]) == 0
    assert "preference_accuracy" in json.loads((out / "all_results.json").read_text())
    model = transformers.AutoModelForCausalLM.from_pretrained(out)
    assert type(model).__name__ == "ScratchGPTForCausalLM"
    assert main(["push", str(out), "--check"]) == 0


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": "a", "chosen": "b"}, "lacks 'rejected'"),
        ({"messages": [{"role": "user", "content": "a"}]}, "`train sft`'s format"),
        ({"prompt": "a", "chosen": "b", "rejected": [{"role": "assistant", "content": "c"}]}, "all strings or all"),
        ({"prompt": [{"role": "user", "content": "a"}], "chosen": [{"role": "bot", "content": "b"}],
          "rejected": [{"role": "assistant", "content": "c"}]}, "role 'bot'"),
    ],
)
def test_bad_rows_are_one_error_line_before_the_model_loads(tmp_path, checkpoint, capsys, monkeypatch, row, message):
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the rows were checked")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_model)
    train = tmp_path / "prefs.jsonl"
    train.write_text(json.dumps(plain_rows("train", 2)[0]) + "\n" + json.dumps(row) + "\n", encoding="utf-8")
    code = main(["train", "dpo", "--train_file", str(train), "--model_name_or_path", str(checkpoint),
                 "--output_dir", str(tmp_path / "o"), *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error:") and "prefs.jsonl line 2" in err[-1] and message in err[-1]


def test_a_missing_file_and_missing_flags_are_one_error_line(tmp_path, checkpoint, capsys):
    assert main(["train", "dpo", "--train_file", str(tmp_path / "none.jsonl"), "--model_name_or_path",
                 str(checkpoint), "--output_dir", str(tmp_path / "o"), *FAST]) == 2
    assert "none.jsonl" in capsys.readouterr().err.strip().splitlines()[-1]
    train = tmp_path / "prefs.jsonl"
    train.write_text(json.dumps(plain_rows("train", 2)[0]) + "\n", encoding="utf-8")
    assert main(["train", "dpo", "--train_file", str(train), "--output_dir", str(tmp_path / "o"), *FAST]) == 2
    assert "--model_name_or_path is required" in capsys.readouterr().err
    assert main(["train", "dpo", "--train_file", str(train), "--model_name_or_path", str(checkpoint), "--merge_lora",
                 "--output_dir", str(tmp_path / "o"), *FAST]) == 2
    assert "--merge_lora needs --lora_r" in capsys.readouterr().err


def test_train_dpo_without_trl_is_one_error_line_naming_the_extra(monkeypatch, capsys):
    """Without trl (simulated: a None entry in sys.modules makes its import fail and hides its sources) `train dpo
    --help` names the extra to install instead of a traceback."""
    import sys

    monkeypatch.setitem(sys.modules, "trl", None)
    assert main(["train", "dpo", "--help"]) == 2
    assert 'pip install "scratchformers[dpo]"' in capsys.readouterr().err.strip().splitlines()[-1]
