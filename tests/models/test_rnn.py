"""The recurrent seq2seq family: the claims of Sutskever 2014 / Bahdanau 2015 checked on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, Seq2SeqTrainer, Seq2SeqTrainingArguments

from scratchformers import ScratchRNNConfig, ScratchRNNForConditionalGeneration, ScratchRNNModel
from scratchformers.recurrent import RecurrentState

VOCAB = 24
KINDS = [  # (cell, attention, luong_score)
    ("lstm", None, "general"),
    ("gru", None, "general"),
    ("lstm", "bahdanau", "general"),
    ("gru", "bahdanau", "general"),
    ("gru", "luong", "dot"),
    ("lstm", "luong", "general"),
]
ATTENTION_KINDS = [k for k in KINDS if k[1] is not None]


def make(cell="lstm", attention=None, luong_score="general", **overrides) -> ScratchRNNForConditionalGeneration:
    """A tiny model with dropout off (deterministic forward passes)."""
    options = dict(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, cell=cell, attention=attention,
                   luong_score=luong_score, dropout=0.0, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    options.update(overrides)
    return ScratchRNNForConditionalGeneration(ScratchRNNConfig(**options)).eval()


def batch(b=3, s=7, t=5):
    """Source ids with the second row right-padded, and labels."""
    src = torch.randint(3, VOCAB, (b, s))
    mask = torch.ones_like(src)
    mask[1, s - 3 :] = 0
    src[1, s - 3 :] = 0
    return src, mask, torch.randint(3, VOCAB, (b, t))


# --- config ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [("cell", "rnn", "'lstm', 'gru'"), ("attention", "additive", "'bahdanau', 'luong'"),
     ("luong_score", "concat", "'dot', 'general'")],
)
def test_config_rejects_unknown_choices_naming_allowed_values(option, value, allowed):
    with pytest.raises(ValueError, match=allowed):
        ScratchRNNConfig(**{option: value})


def test_config_rejects_odd_hidden_size_for_bidirectional_encoder():
    with pytest.raises(ValueError, match="even"):
        ScratchRNNConfig(hidden_size=15, bidirectional_encoder=True)


def test_config_aliases_and_decoder_start():
    config = ScratchRNNConfig(num_layers=3, d_model=32, bos_token_id=5)
    assert (config.num_hidden_layers, config.hidden_size, config.decoder_start_token_id) == (3, 32, 5)
    assert config.is_encoder_decoder


# --- the architecture's claims ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_without_attention_decoder_sees_only_the_final_encoder_state(cell):
    model = make(cell, bidirectional_encoder=True)
    src, mask, labels = batch()
    encoded = model.get_encoder()(input_ids=src, attention_mask=mask)
    base = model(encoder_outputs=encoded, attention_mask=mask, labels=labels).logits
    scrambled = encoded.__class__(**{**encoded, "last_hidden_state": torch.randn_like(encoded.last_hidden_state)})
    torch.testing.assert_close(model(encoder_outputs=scrambled, attention_mask=mask, labels=labels).logits, base)
    moved = encoded.__class__(**{**encoded, "final_hidden": encoded.final_hidden + 0.5})
    assert not torch.allclose(model(encoder_outputs=moved, attention_mask=mask, labels=labels).logits, base)


@pytest.mark.parametrize(("cell", "attention", "score"), ATTENTION_KINDS)
def test_attention_depends_on_every_source_state(cell, attention, score):
    model = make(cell, attention, score)
    src, mask, labels = batch()
    encoded = model.get_encoder()(input_ids=src, attention_mask=mask)
    base = model(encoder_outputs=encoded, attention_mask=mask, labels=labels).logits
    keys = encoded.last_hidden_state.clone()
    keys[:, 0] += 1.0  # change h₀ only; the final state is untouched
    changed = model(encoder_outputs=encoded.__class__(**{**encoded, "last_hidden_state": keys}), attention_mask=mask,
                    labels=labels).logits
    assert not torch.allclose(changed, base)


@pytest.mark.parametrize(("cell", "attention", "score"), ATTENTION_KINDS)
def test_alignment_sums_to_one_over_real_source_positions_and_is_zero_on_padding(cell, attention, score):
    model = make(cell, attention, score)
    src, mask, labels = batch()
    out = model(input_ids=src, attention_mask=mask, labels=labels, output_attentions=True)
    alignment = out.cross_attentions[0][:, 0]  # (B, T, S)
    assert alignment.shape == (3, labels.shape[1], src.shape[1])
    torch.testing.assert_close(alignment.sum(-1), torch.ones(3, labels.shape[1]))
    assert torch.equal(alignment[1, :, -3:], torch.zeros(labels.shape[1], 3))
    assert (alignment[mask.bool()[:, None, :].expand_as(alignment)] > 0).all()


@pytest.mark.parametrize(("cell", "attention", "score"), KINDS)
def test_source_padding_does_not_change_the_output(cell, attention, score):
    model = make(cell, attention, score, bidirectional_encoder=True)
    src = torch.randint(3, VOCAB, (1, 4))
    labels = torch.randint(3, VOCAB, (1, 5))
    alone = model(input_ids=src, labels=labels).logits
    for padded, mask in [(torch.cat([src, torch.zeros(1, 3, dtype=torch.long)], 1), torch.tensor([[1] * 4 + [0] * 3])),
                         (torch.cat([torch.zeros(1, 3, dtype=torch.long), src], 1), torch.tensor([[0] * 3 + [1] * 4]))]:
        torch.testing.assert_close(model(input_ids=padded, attention_mask=mask, labels=labels).logits, alone)


@pytest.mark.parametrize(("cell", "attention", "score"), KINDS)
def test_each_cell_and_attention_kind_memorises_a_few_pairs(cell, attention, score):
    torch.manual_seed(0)
    model = make(cell, attention, score, hidden_size=32, num_hidden_layers=1).train()
    src = torch.randint(3, VOCAB, (3, 5))
    labels = torch.cat([src.flip(1), torch.full((3, 1), 2)], 1)  # reverse the source, then </s>
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    first = None
    for _ in range(60):
        loss = model(input_ids=src, labels=labels).loss
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05 * first
    generated = model.eval().generate(src, max_new_tokens=8, do_sample=False)
    assert torch.equal(generated[:, 1 : 1 + labels.shape[1]], labels)


# --- generate() with the recurrent state as the cache ---------------------------------------------------------------


@pytest.mark.parametrize(("cell", "attention", "score"), KINDS)
@pytest.mark.parametrize(
    "mode", [dict(do_sample=False), dict(do_sample=True, top_k=5), dict(num_beams=3, num_return_sequences=2)]
)
def test_cached_generation_matches_uncached(cell, attention, score, mode):
    model = make(cell, attention, score)
    src, mask, _ = batch()
    results = []
    for use_cache in (True, False):
        torch.manual_seed(1)
        results.append(model.generate(src, attention_mask=mask, max_new_tokens=6, use_cache=use_cache,
                                      eos_token_id=None, **mode))
    assert results[0].shape[1] == 7
    assert torch.equal(results[0], results[1])


def test_cached_generation_runs_one_decoder_step_per_new_token():
    model = make("lstm", "bahdanau")
    src, mask, _ = batch()
    lengths = []
    handle = model.model.decoder.register_forward_hook(lambda mod, args, out: lengths.append(args[0].shape[1]))
    model.generate(src, attention_mask=mask, max_new_tokens=5, eos_token_id=None, do_sample=False)
    lengths_cached, lengths[:] = list(lengths), []
    model.generate(src, attention_mask=mask, max_new_tokens=5, eos_token_id=None, do_sample=False, use_cache=False)
    handle.remove()
    assert lengths_cached == [1, 1, 1, 1, 1]
    assert lengths == [1, 2, 3, 4, 5]  # without the state every step re-reads the whole prefix


def test_recurrent_state_reorders_in_place_for_beams():
    hidden, cell = torch.arange(6.0).reshape(3, 1, 2), -torch.arange(6.0).reshape(3, 1, 2)
    state = RecurrentState(hidden, cell, seen_tokens=4)
    state.reorder_cache(torch.tensor([2, 2, 0]))
    assert torch.equal(state.hidden[:, 0, 0], torch.tensor([4.0, 4.0, 0.0]))
    assert torch.equal(state.cell[:, 0, 0], torch.tensor([-4.0, -4.0, 0.0]))
    assert state.get_seq_length() == 4 and not state.is_croppable and not state.is_compileable


def test_generate_returns_the_alignment_matrix_per_step():
    model = make("gru", "bahdanau")
    src, mask, _ = batch()
    out = model.generate(src, attention_mask=mask, max_new_tokens=4, eos_token_id=None, do_sample=False,
                         output_attentions=True, return_dict_in_generate=True)
    alignment = torch.cat([step[0][:, 0] for step in out.cross_attentions], 1)  # (B, new tokens, S)
    assert alignment.shape == (3, 4, src.shape[1])
    torch.testing.assert_close(alignment.sum(-1), torch.ones(3, 4))
    assert torch.equal(alignment[1, :, -3:], torch.zeros(4, 3))


def test_assisted_generation_is_refused_for_the_stateful_model():
    model = make()
    src, mask, _ = batch()
    with pytest.raises(ValueError, match="stateful"):
        model.generate(src, attention_mask=mask, assistant_model=make(), max_new_tokens=3)


def test_bad_inputs_raise_clear_errors():
    model = make()
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model(input_ids=torch.tensor([[1, VOCAB]]), decoder_input_ids=torch.tensor([[1]]))
    with pytest.raises(ValueError, match="decoder_input_ids"):
        model(input_ids=torch.tensor([[3, 4]]))
    with pytest.raises(ValueError, match="attention_mask"):
        model(input_ids=torch.tensor([[3, 4]]), attention_mask=torch.ones(1, 3), decoder_input_ids=torch.tensor([[1]]))


# --- weights, saving, Auto classes, remote code ---------------------------------------------------------------------


def test_output_layer_is_tied_to_the_shared_embedding():
    model = make()
    assert model.lm_head.weight is model.get_input_embeddings().weight
    std = model.get_input_embeddings().weight[3:].std().item()
    assert 0.8 < std < 1.2  # N(0, 1) embedding init (config.embedding_init_std)


def test_save_load_auto_classes_and_remote_code(tmp_path, run_without_package):
    model = make("lstm", "luong", "dot", bidirectional_encoder=True)
    src, mask, labels = batch()
    expected = model(input_ids=src, attention_mask=mask, labels=labels).logits
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["auto_map"]["AutoModelForSeq2SeqLM"] == "modeling_scratch_rnn.ScratchRNNForConditionalGeneration"
    for name in ("modeling_scratch_rnn.py", "configuration_scratch_rnn.py", "recurrent.py", "seq2seq.py", "masks.py"):
        assert (tmp_path / name).is_file(), name

    assert isinstance(AutoConfig.from_pretrained(tmp_path), ScratchRNNConfig)
    assert isinstance(AutoModel.from_pretrained(tmp_path), ScratchRNNModel)
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    assert reloaded.lm_head.weight is reloaded.get_input_embeddings().weight
    torch.testing.assert_close(reloaded(input_ids=src, attention_mask=mask, labels=labels).logits, expected)

    torch.save({"src": src, "mask": mask, "labels": labels}, tmp_path / "inputs.pt")
    printed = run_without_package(
        f"""
        import torch
        from transformers import AutoModelForSeq2SeqLM
        model = AutoModelForSeq2SeqLM.from_pretrained({str(tmp_path)!r}, trust_remote_code=True).eval()
        x = torch.load({str(tmp_path / "inputs.pt")!r})
        logits = model(input_ids=x["src"], attention_mask=x["mask"], labels=x["labels"]).logits
        torch.save(logits, {str(tmp_path / "remote.pt")!r})
        print(type(model).__module__)
        """
    )
    assert "modeling_scratch_rnn" in printed and "scratchformers" not in printed
    torch.testing.assert_close(torch.load(tmp_path / "remote.pt"), expected)


# --- training with the HF Trainer -----------------------------------------------------------------------------------


def test_trains_with_seq2seq_trainer(tmp_path):
    torch.manual_seed(0)
    model = make("gru", "bahdanau", hidden_size=32, num_hidden_layers=1).train()
    src = torch.randint(3, VOCAB, (8, 5))
    rows = [{"input_ids": s, "attention_mask": torch.ones(5, dtype=torch.long),
             "labels": torch.cat([s.flip(0), torch.tensor([2])])} for s in src]
    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=8, num_train_epochs=40, learning_rate=2e-2,
        logging_steps=10, save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True,
    )
    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=rows)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses[-1] < 0.2 * losses[0]


CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("rnn-*.json"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_build_the_named_model(path):
    config = AutoConfig.from_pretrained(path)
    assert isinstance(config, ScratchRNNConfig)
    assert config.cell in path.stem and (config.attention or "") in path.stem
    with torch.device("meta"):
        model = AutoModelForSeq2SeqLM.from_config(config)
    assert isinstance(model, ScratchRNNForConditionalGeneration)


def test_all_four_architectures_have_a_shipped_config():
    assert {p.stem for p in CONFIGS} >= {"rnn-lstm-tiny", "rnn-gru-tiny", "rnn-lstm-bahdanau-tiny", "rnn-gru-luong-tiny"}


def test_translate_helper_works_and_is_batch_invariant(tmp_path):
    from scratchformers.tokenization import train_tokenizer
    from scratchformers.translate import translate

    corpus = tmp_path / "text.txt"
    corpus.write_text("open the file\nclose the window\nsave all files now\nthe file is open\n" * 10)
    tokenizer = train_tokenizer(corpus, kind="seq2seq_bpe", vocab_size=60)
    model = make("lstm", "bahdanau", vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                 bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    texts = ["open the file", "save all files now and close the window", "close"]
    together = translate(texts, model, tokenizer, batch_size=3, num_beams=2, max_new_tokens=6)
    alone = [translate(t, model, tokenizer, num_beams=2, max_new_tokens=6)[0] for t in texts]
    assert together == alone and len(together) == 3


def test_run_translation_script_trains_an_rnn_and_saves_it(tmp_path):
    from scratchformers.examples import run_translation as module

    out = tmp_path / "run"
    metrics = module.main([
        "--output_dir", str(out), "--do_train", "--max_steps", "3", "--max_train_samples", "32",
        "--max_predict_samples", "4", "--vocab_size", "300", "--generation_max_length", "6",
        "--per_device_train_batch_size", "16", "--model_type", "scratch_rnn",
        "--config_overrides", "hidden_size=32,cell=gru,attention=bahdanau",
    ])
    assert "train_loss" in metrics and "test_chrf" in metrics
    model = AutoModelForSeq2SeqLM.from_pretrained(out)
    assert isinstance(model, ScratchRNNForConditionalGeneration)
    assert (model.config.cell, model.config.attention, model.config.hidden_size) == ("gru", "bahdanau", 32)


def test_decoder_padding_must_be_on_the_right():
    """Right padding cannot change the real positions of a causal recurrent decoder; left padding would be read
    by the recurrence, so it is refused with a clear error instead of being silently ignored."""
    torch.manual_seed(0)
    model = ScratchRNNForConditionalGeneration(ScratchRNNConfig(vocab_size=30, hidden_size=8, attention="luong",
                                                                dropout=0.0)).eval()
    src = torch.randint(4, 30, (2, 5))
    tgt = torch.randint(4, 30, (2, 4))
    right = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    plain = model(input_ids=src, decoder_input_ids=tgt).logits
    torch.testing.assert_close(model(input_ids=src, decoder_input_ids=tgt, decoder_attention_mask=right).logits, plain)
    left = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])
    with pytest.raises(ValueError, match="padding before real tokens.*Pad decoder inputs on the right"):
        model(input_ids=src, decoder_input_ids=tgt, decoder_attention_mask=left)


@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_labels_turn_the_cache_off_in_both_encoder_decoders_as_in_bart(family):
    """A forward with `labels` is a training forward: no cache comes back even when `use_cache=True` is asked for
    (BART: "The `use_cache` argument is changed to `False` since `labels` is provided"); the logits are unchanged."""
    from transformers import BartConfig, BartForConditionalGeneration

    from scratchformers import ScratchTransformerConfig, ScratchTransformerForConditionalGeneration
    from scratchformers.compat import output_cache

    if family == "rnn":
        model = make()
    else:
        model = ScratchTransformerForConditionalGeneration(ScratchTransformerConfig(
            vocab_size=VOCAB, hidden_size=16, encoder_layers=1, decoder_layers=1, num_attention_heads=2,
            intermediate_size=32, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)).eval()
    src, mask, labels = batch()
    with torch.no_grad():
        trained = model(input_ids=src, attention_mask=mask, labels=labels, use_cache=True)
        decoded = model(input_ids=src, attention_mask=mask, decoder_input_ids=trained_inputs(model, labels),
                        use_cache=True)
    assert output_cache(trained) is None and output_cache(decoded) is not None
    torch.testing.assert_close(trained.logits, decoded.logits, rtol=0, atol=0)  # the same computation
    bart = BartForConditionalGeneration(BartConfig(vocab_size=VOCAB, d_model=16, encoder_layers=1, decoder_layers=1,
                                                   encoder_attention_heads=2, decoder_attention_heads=2,
                                                   encoder_ffn_dim=32, decoder_ffn_dim=32)).eval()
    with torch.no_grad():  # the reference behaviour
        assert output_cache(bart(input_ids=src, attention_mask=mask, labels=labels, use_cache=True)) is None


def trained_inputs(model, labels):
    """The decoder inputs a forward with `labels` reads: the labels shifted right behind the start token."""
    return model.prepare_decoder_input_ids_from_labels(labels)
