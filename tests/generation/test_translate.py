"""translate() (the missing translation pipeline), the `translate` CLI command and scripts/run_translation.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    BartConfig,
    BartForConditionalGeneration,
    DataCollatorForSeq2Seq,
)

from scratchformers import ScratchGPTConfig, ScratchGPTForCausalLM, ScratchTransformerConfig, shift_tokens_right
from scratchformers import ScratchTransformerForConditionalGeneration as Transformer
from scratchformers.data import load_translation
from scratchformers.metrics import compute_translation_metrics
from scratchformers.tokenization import train_tokenizer
from scratchformers.translate import translate
from scratchformers_cli import main as cli_main

REPO = Path(__file__).resolve().parents[2]
PAIRS = [
    ("Cancel", "Abbrechen"),
    ("Open file", "Datei öffnen"),
    ("Save the document", "Das Dokument speichern"),
    ("Print", "Drucken"),
    ("Close the window now", "Das Fenster jetzt schließen"),
    ("Help", "Hilfe"),
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """A shared source/target BPE trained on the shipped en-de training pairs (small vocabulary)."""
    folder = tmp_path_factory.mktemp("tok")
    return train_tokenizer([REPO / "data/translation/en-de/train.jsonl"], "seq2seq_bpe", 400, save_dir=folder)


def tiny_config(tokenizer, **overrides) -> ScratchTransformerConfig:
    settings = dict(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        hidden_dropout_prob=0.0, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    return ScratchTransformerConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def memorised(tokenizer):
    """A tiny Transformer trained until it reproduces PAIRS; returns (model, tokenizer)."""
    torch.manual_seed(0)
    model = Transformer(tiny_config(tokenizer))
    batch = tokenizer([s for s, _ in PAIRS], text_target=[t for _, t in PAIRS], padding=True, return_tensors="pt")
    batch["labels"] = batch["labels"].masked_fill(batch["labels"] == tokenizer.pad_token_id, -100)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(200):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), tokenizer


def test_a_tiny_model_memorises_sentence_pairs_to_exact_match(memorised):
    model, tokenizer = memorised
    assert translate([s for s, _ in PAIRS], model, tokenizer) == [t for _, t in PAIRS]
    assert translate([s for s, _ in PAIRS], model, tokenizer, num_beams=1) == [t for _, t in PAIRS]


def test_translate_is_padding_invariant_and_keeps_the_input_order(memorised):
    model, tokenizer = memorised
    texts = ["Help", "Close the window now", "Open file", "Save the document"]
    batched = translate(texts, model, tokenizer, batch_size=4)  # "Help" is padded to the longest text
    alone = [translate(text, model, tokenizer)[0] for text in texts]
    assert batched == alone
    assert translate(texts, model, tokenizer, batch_size=3) == batched
    # the same holds for an untrained model, whose output is far from any tie-free optimum
    torch.manual_seed(1)
    random = Transformer(tiny_config(tokenizer)).eval()
    assert translate(texts, random, tokenizer, max_new_tokens=6) == [
        translate(t, random, tokenizer, max_new_tokens=6)[0] for t in texts
    ]


def test_translate_works_for_any_seq2seq_family(tokenizer):
    bart = BartForConditionalGeneration(
        BartConfig(
            vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
            decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
            decoder_start_token_id=tokenizer.bos_token_id, forced_eos_token_id=None,
        )
    ).eval()
    texts = ["Open file", "Print"]
    expected = []
    for text in texts:
        ids = bart.generate(**tokenizer(text, return_tensors="pt"), num_beams=4, max_new_tokens=5)
        expected.append(tokenizer.decode(ids[0], skip_special_tokens=True).strip())
    assert translate(texts, bart, tokenizer, max_new_tokens=5) == expected


def test_translate_rejects_bad_arguments(memorised, tiny):
    model, tokenizer = memorised
    with pytest.raises(TypeError, match="encoder-decoder"):
        translate(["x"], ScratchGPTForCausalLM(ScratchGPTConfig(**tiny)), tokenizer)
    with pytest.raises(ValueError, match="num_return_sequences"):
        translate(["Help"], model, tokenizer, num_return_sequences=2)
    with pytest.raises(ValueError, match="batch_size"):
        translate(["Help"], model, tokenizer, batch_size=0)
    with pytest.raises(TypeError, match="strings"):
        translate([1, 2], model, tokenizer)
    assert translate([], model, tokenizer) == []


def test_cli_translate_command_prints_one_translation_a_line(memorised, tmp_path, capsys):
    model, tokenizer = memorised
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    assert cli_main(["translate", "--model", str(tmp_path / "m"), "Open file", "Help"]) == 0
    assert capsys.readouterr().out.splitlines() == ["Datei öffnen", "Hilfe"]


def test_collator_builds_shifted_decoder_inputs_for_label_smoothing(memorised):
    model, tokenizer = memorised
    features = [dict(tokenizer(s, text_target=t)) for s, t in PAIRS[:3]]
    batch = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)(features)
    expected = shift_tokens_right(batch["labels"], tokenizer.pad_token_id, model.config.decoder_start_token_id)
    assert torch.equal(batch["decoder_input_ids"], expected)
    assert (batch["labels"] == -100).any()  # padded label positions are ignored by the loss


# --- run_translation (scratchformers.examples; scripts/run_translation.py wraps it) ---


def load_script():
    from scratchformers.examples import run_translation

    return run_translation


def test_script_help_lists_model_data_and_trainer_options(capsys):
    with pytest.raises(SystemExit) as done:
        load_script().main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for option in ("--model_type", "--source_lang", "--max_source_length", "--predict_with_generate",
                   "--label_smoothing_factor", "--lr_scheduler_type", "--noam_factor"):
        assert option in text


def test_script_trains_saves_and_reports_bleu_and_chrf(tmp_path):
    out = tmp_path / "run"
    metrics = load_script().main([
        "--output_dir", str(out), "--do_train", "--do_eval", "--max_steps", "3", "--max_train_samples", "64", "--max_eval_samples", "8",
        "--max_predict_samples", "8", "--vocab_size", "300", "--generation_num_beams", "2",
        "--generation_max_length", "8", "--per_device_train_batch_size", "16",
        "--config_overrides", "hidden_size=32,num_attention_heads=2,intermediate_size=64,encoder_layers=1,"
                              "decoder_layers=1",
        "--noam_factor", "2.0", "--warmup_steps", "2",
    ])
    for key in ("eval_bleu", "eval_chrf", "test_bleu", "test_chrf", "train_loss"):
        assert key in metrics
    model = AutoModelForSeq2SeqLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert (model.config.encoder_layers, model.config.hidden_size, model.config.vocab_size) == (1, 32, len(tokenizer))
    assert model.config.decoder_start_token_id == tokenizer.bos_token_id
    assert json.loads((out / "all_results.json").read_text())["test_chrf"] == metrics["test_chrf"]
    # the reported scores are those of the saved predictions against the first 8 test references
    predictions = (out / "test_predictions.txt").read_text().split("\n")[:-1]
    references = [row["de"] for row in load_translation("en-de")["test"].select(range(8))["translation"]]
    scores = compute_translation_metrics(predictions, [[r] for r in references])
    assert scores["chrf"] == pytest.approx(metrics["test_chrf"], abs=1e-3)
    assert scores["bleu"] == pytest.approx(metrics["test_bleu"], abs=1e-3)
