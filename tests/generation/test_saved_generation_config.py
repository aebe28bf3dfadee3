"""Convenience calls (`translate`, the CLI's `generate` and `translate`) start from the checkpoint's saved
`generation_config`, as `model.generate()` does, and explicit arguments override it."""

from __future__ import annotations

import pytest
import torch
import twin_helpers as twins
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

from scratchformers import translate as translate_module
from scratchformers.translate import translate
from scratchformers_cli import main as cli_main

TEXTS = ["Open the file", "Cancel", "Save the document now"]


@pytest.fixture(scope="module")
def seq2seq_tokenizer():
    return twins.seq2seq_tokenizer()


def save(model, tokenizer, folder, **saved_settings):
    """Save model + tokenizer with `saved_settings` in generation_config.json; reload the model as a user would."""
    for name, value in saved_settings.items():
        setattr(model.generation_config, name, value)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    loader = AutoModelForSeq2SeqLM if model.config.is_encoder_decoder else AutoModelForCausalLM
    return loader.from_pretrained(folder, trust_remote_code=True).eval()


def generated(model, tokenizer, texts, **kwargs) -> list[str]:
    """What `model.generate()` gives for each text alone (its own saved settings, overridden by kwargs)."""
    out = []
    for text in texts:
        ids = model.generate(**tokenizer(text, return_tensors="pt"), **kwargs)
        out.append(tokenizer.decode(ids[0], skip_special_tokens=True).strip())
    return out


def seq2seq_models(tokenizer) -> dict:
    hf_bart, transformer = twins.bart_twins(tokenizer)
    return {"transformer": (transformer, hf_bart), "rnn": (twins.rnn_model(tokenizer), None)}


# Checkpoints whose saved settings differ from translate()'s defaults (4 beams, 128 new tokens); where a checkpoint
# leaves the decoding strategy unset (the second), translate's 4 beams fill it in.
SAVED = [
    (dict(max_new_tokens=3, num_beams=1), {}),
    (dict(max_length=4), dict(num_beams=4)),
    (dict(num_beams=2, max_new_tokens=5, length_penalty=0.0), {}),
]


@pytest.mark.parametrize(("saved", "filled"), SAVED, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
@pytest.mark.parametrize("family", ["transformer", "rnn"])
def test_translate_uses_the_checkpoints_generation_config(seq2seq_tokenizer, tmp_path, family, saved, filled):
    ours, twin = seq2seq_models(seq2seq_tokenizer)[family]
    model = save(ours, seq2seq_tokenizer, tmp_path / "ours", **saved)
    expected = generated(model, seq2seq_tokenizer, TEXTS, **filled)
    assert translate(TEXTS, model, seq2seq_tokenizer) == expected
    if twin is not None:  # BART with the same weights and the same saved settings translates the same
        assert translate(TEXTS, save(twin, seq2seq_tokenizer, tmp_path / "bart", **saved), seq2seq_tokenizer) == expected


@pytest.mark.parametrize("family", ["transformer", "rnn"])
def test_translate_arguments_override_the_saved_settings(seq2seq_tokenizer, tmp_path, family):
    ours, _ = seq2seq_models(seq2seq_tokenizer)[family]
    model = save(ours, seq2seq_tokenizer, tmp_path, max_new_tokens=3, num_beams=1)
    assert translate(TEXTS, model, seq2seq_tokenizer, max_new_tokens=6, num_beams=2) == generated(
        model, seq2seq_tokenizer, TEXTS, max_new_tokens=6, num_beams=2
    )
    assert translate(TEXTS, model, seq2seq_tokenizer, max_length=5) == generated(
        model, seq2seq_tokenizer, TEXTS, max_length=5
    )


@pytest.mark.parametrize("family", ["transformer", "rnn"])
def test_translate_defaults_fill_only_what_the_checkpoint_leaves_unset(seq2seq_tokenizer, tmp_path, family):
    ours, _ = seq2seq_models(seq2seq_tokenizer)[family]
    model = save(ours, seq2seq_tokenizer, tmp_path)  # nothing saved: beam search with 4 beams, up to 128 new tokens
    assert translate(TEXTS, model, seq2seq_tokenizer) == generated(
        model, seq2seq_tokenizer, TEXTS, num_beams=4, max_new_tokens=128
    )
    model.generation_config.do_sample = True  # a sampling checkpoint is not turned into beam sampling
    assert "num_beams" not in translate_module.generation_settings(model, {"num_beams": 4})


@pytest.mark.parametrize("family", ["transformer", "rnn"])
def test_cli_translate_and_generate_use_the_checkpoints_generation_config(seq2seq_tokenizer, tmp_path, family, capsys):
    ours, _ = seq2seq_models(seq2seq_tokenizer)[family]
    model = save(ours, seq2seq_tokenizer, tmp_path, max_new_tokens=3, num_beams=1)
    capsys.readouterr()
    assert cli_main(["translate", "--model", str(tmp_path), "--trust-remote-code", *TEXTS]) == 0
    assert capsys.readouterr().out.splitlines() == generated(model, seq2seq_tokenizer, TEXTS)
    assert cli_main(["translate", "--model", str(tmp_path), "--max-new-tokens", "6", *TEXTS]) == 0
    assert capsys.readouterr().out.splitlines() == generated(model, seq2seq_tokenizer, TEXTS, max_new_tokens=6)
    assert cli_main(["generate", str(tmp_path), "--prompt", TEXTS[0]]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "→ " + generated(model, seq2seq_tokenizer, TEXTS[:1])[0]


@pytest.fixture(scope="module")
def gpt_tokenizer():
    return twins.gpt_tokenizer()


def cli_generate(folder, prompt: str, *flags: str) -> str:
    assert cli_main(["generate", str(folder), "--prompt", prompt, *flags]) == 0


def continuation(model, tokenizer, prompt: str, seed: int = 0, **kwargs) -> str:
    torch.manual_seed(seed)
    ids = model.generate(**tokenizer(prompt, return_tensors="pt"), pad_token_id=tokenizer.pad_token_id, **kwargs)
    return tokenizer.decode(ids[0], skip_special_tokens=True)


def test_cli_generate_uses_the_gpt_checkpoints_generation_config(gpt_tokenizer, tmp_path, capsys):
    _, ours = twins.gpt_twins(gpt_tokenizer)
    model = save(ours, gpt_tokenizer, tmp_path, do_sample=False, max_new_tokens=4)
    prompt = "Once upon a time"
    capsys.readouterr()
    cli_generate(tmp_path, prompt)  # the checkpoint says greedy, 4 tokens; the CLI used to sample 50
    assert capsys.readouterr().out.strip() == continuation(model, gpt_tokenizer, prompt)
    cli_generate(tmp_path, prompt, "--max-new-tokens", "7", "--num-beams", "2")
    assert capsys.readouterr().out.strip() == continuation(model, gpt_tokenizer, prompt, max_new_tokens=7, num_beams=2)


def test_cli_generate_defaults_apply_where_the_checkpoint_sets_nothing(gpt_tokenizer, tmp_path, capsys):
    _, ours = twins.gpt_twins(gpt_tokenizer)
    model = save(ours, gpt_tokenizer, tmp_path)
    prompt = "Once upon a time"
    capsys.readouterr()
    cli_generate(tmp_path, prompt, "--max-new-tokens", "6")
    expected = continuation(model, gpt_tokenizer, prompt, max_new_tokens=6, do_sample=True, temperature=0.8, top_k=40)
    assert capsys.readouterr().out.strip() == expected
