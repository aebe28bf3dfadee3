"""The encoder-decoder Transformer (Vaswani et al. 2017): masks, cache, generation, tying, save/load, training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, get_scheduler

from scratchformers import (
    ScratchTransformerConfig,
    ScratchTransformerForConditionalGeneration,
    ScratchTransformerModel,
    shift_tokens_right,
)
from scratchformers.seq2seq import noam_learning_rate, noam_schedule_factor

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def cfg(tiny: dict, **overrides) -> ScratchTransformerConfig:
    return ScratchTransformerConfig(**{**tiny, **overrides})


def seq2seq(tiny: dict, **overrides) -> ScratchTransformerForConditionalGeneration:
    return ScratchTransformerForConditionalGeneration(cfg(tiny, **overrides)).eval()


def ids(batch: int, length: int, vocab: int = 64) -> torch.Tensor:
    return torch.randint(3, vocab, (batch, length))  # 0 pad, 1 bos, 2 eos are left out


def padded_source() -> tuple[torch.Tensor, torch.Tensor]:
    """Two sources, the second with 3 padded positions at the end."""
    x = ids(2, 7)
    mask = torch.ones_like(x)
    mask[1, 4:] = 0
    return x.masked_fill(mask == 0, 0), mask


# --- config -----------------------------------------------------------------------------------------------------------


def test_defaults_are_the_papers_base_model():
    c = ScratchTransformerConfig()
    assert (c.encoder_layers, c.decoder_layers, c.d_model, c.num_heads, c.d_ff) == (6, 6, 512, 8, 2048)
    assert (c.dropout, c.activation, c.norm_placement, c.position_embedding_type) == (0.1, "relu", "post", "sinusoidal")
    assert c.scale_embedding and c.tie_word_embeddings and c.is_encoder_decoder


@pytest.mark.parametrize("name, d_model, heads, d_ff, dropout", [("base", 512, 8, 2048, 0.1), ("big", 1024, 16, 4096, 0.3)])
def test_shipped_configs_match_table_3(name, d_model, heads, d_ff, dropout):
    c = AutoConfig.from_pretrained(CONFIGS / f"transformer-{name}.json")
    assert isinstance(c, ScratchTransformerConfig)
    assert (c.hidden_size, c.num_attention_heads, c.intermediate_size, c.hidden_dropout_prob) == (
        d_model, heads, d_ff, dropout
    )
    assert (c.encoder_layers, c.decoder_layers) == (6, 6)
    tiny = AutoConfig.from_pretrained(CONFIGS / "transformer-tiny.json")
    assert tiny.model_type == "scratch_transformer" and tiny.hidden_size < c.hidden_size


def test_encoder_and_decoder_depths_may_differ_and_cache_depth_follows_the_decoder(tiny):
    c = cfg(tiny, encoder_layers=3, decoder_layers=1)
    model = ScratchTransformerModel(c)
    assert len(model.encoder.layers) == 3 and len(model.decoder.layers) == 1 and c.num_hidden_layers == 1
    reloaded = ScratchTransformerConfig.from_dict(c.to_dict())
    assert (reloaded.encoder_layers, reloaded.decoder_layers, reloaded.num_hidden_layers) == (3, 1, 1)


@pytest.mark.parametrize(
    "field, value, message",
    [("encoder_layers", 0, "encoder_layers"), ("decoder_layers", -1, "decoder_layers"),
     ("decoder_start_token_id", 999, "outside the vocabulary"), ("is_encoder_decoder", False, "is_encoder_decoder")],
)
def test_bad_config_values_raise_value_error(tiny, field, value, message):
    with pytest.raises(ValueError, match=message):
        cfg(tiny, **{field: value})


def test_decoder_start_defaults_to_bos_then_pad(tiny):
    assert cfg(tiny).decoder_start_token_id == tiny["bos_token_id"]
    assert cfg(tiny, bos_token_id=None).decoder_start_token_id == tiny["pad_token_id"]


# --- teacher forcing and loss ---------------------------------------------------------------------------------------


def test_shift_tokens_right_prepends_start_and_replaces_ignored_labels_with_pad():
    labels = torch.tensor([[5, 6, 7, 2], [8, 2, -100, -100]])
    assert shift_tokens_right(labels, 0, 1).tolist() == [[1, 5, 6, 7], [1, 8, 2, 0]]
    with pytest.raises(ValueError, match="decoder_start_token_id"):
        shift_tokens_right(labels, 0, None)
    with pytest.raises(ValueError, match="batch, target_length"):
        shift_tokens_right(labels[0], 0, 1)


def test_labels_give_the_shifted_decoder_inputs_and_a_loss_that_ignores_minus_100(tiny):
    model = seq2seq(tiny)
    x = ids(2, 6)
    labels = ids(2, 5)
    labels[1, 3:] = -100
    out = model(input_ids=x, labels=labels)
    explicit = model(input_ids=x, decoder_input_ids=shift_tokens_right(labels, 0, 1))
    torch.testing.assert_close(out.logits, explicit.logits)
    keep = labels != -100
    expected = F.cross_entropy(out.logits[keep], labels[keep])
    torch.testing.assert_close(out.loss, expected)
    assert torch.equal(model.prepare_decoder_input_ids_from_labels(labels), shift_tokens_right(labels, 0, 1))


def test_inverse_sqrt_scheduler_is_the_papers_learning_rate_schedule():
    d_model, warmup = 512, 40
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=noam_learning_rate(d_model, warmup), betas=(0.9, 0.98), eps=1e-9)
    scheduler = get_scheduler("inverse_sqrt", optimizer, num_warmup_steps=warmup)
    for step in range(1, 200):
        optimizer.step()
        scheduler.step()
        assert optimizer.param_groups[0]["lr"] == pytest.approx(noam_schedule_factor(step, d_model, warmup), rel=1e-9)


# --- masks --------------------------------------------------------------------------------------------------------------


def test_decoder_cannot_see_the_future(tiny):
    model = seq2seq(tiny)
    x, y = ids(1, 6), ids(1, 8)
    changed = y.clone()
    changed[0, 5:] = ids(1, 3)
    a = model(input_ids=x, decoder_input_ids=y).logits
    b = model(input_ids=x, decoder_input_ids=changed).logits
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_padded_source_tokens_change_nothing(tiny):
    model = seq2seq(tiny)
    x, mask = padded_source()
    y = ids(2, 5)
    other = x.clone()
    other[1, 4:] = ids(1, 3)  # different garbage under the padding
    a = model(input_ids=x, attention_mask=mask, decoder_input_ids=y)
    b = model(input_ids=other, attention_mask=mask, decoder_input_ids=y)
    torch.testing.assert_close(a.logits, b.logits)
    torch.testing.assert_close(a.encoder_last_hidden_state[1, :4], b.encoder_last_hidden_state[1, :4])
    alone = model(input_ids=x[1:, :4], decoder_input_ids=y[1:])  # the same source without padding
    torch.testing.assert_close(a.logits[1:], alone.logits, atol=1e-5, rtol=1e-5)


def test_attentions_are_returned_and_cross_attention_sees_only_real_source_tokens(tiny):
    model = seq2seq(tiny, encoder_layers=3)
    x, mask = padded_source()
    y = ids(2, 5)
    out = model(input_ids=x, attention_mask=mask, decoder_input_ids=y, output_attentions=True)
    H = tiny["num_attention_heads"]
    assert len(out.encoder_attentions) == 3 and len(out.decoder_attentions) == len(out.cross_attentions) == 2
    assert out.encoder_attentions[0].shape == (2, H, 7, 7)
    assert out.decoder_attentions[0].shape == (2, H, 5, 5)
    assert out.cross_attentions[0].shape == (2, H, 5, 7)
    for w in out.cross_attentions + out.encoder_attentions:
        assert torch.all(w[1, :, :, 4:] == 0)  # exactly zero on padded source positions
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
    for w in out.decoder_attentions:
        assert torch.all(w.triu(diagonal=1) == 0)  # no weight on future target positions


@pytest.mark.parametrize("norm_placement", ["post", "pre"])
def test_eager_and_sdpa_agree(tiny, norm_placement):
    eager = seq2seq(tiny, norm_placement=norm_placement)
    eager.set_attn_implementation("eager")
    sdpa = seq2seq(tiny, norm_placement=norm_placement)
    sdpa.load_state_dict(eager.state_dict())
    sdpa.set_attn_implementation("sdpa")
    assert sdpa.config._attn_implementation == "sdpa" and eager.config._attn_implementation == "eager"
    x, mask = padded_source()
    y = ids(2, 5)
    for m in (None, mask):
        a = eager(input_ids=x, attention_mask=m, decoder_input_ids=y).logits
        b = sdpa(input_ids=x, attention_mask=m, decoder_input_ids=y).logits
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


# --- generation ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [dict(do_sample=False), dict(num_beams=3, length_penalty=0.6), dict(num_beams=2, num_return_sequences=2)],
    ids=["greedy", "beam", "beam-return-2"],
)
def test_cached_generation_matches_uncached(tiny, kwargs):
    model = seq2seq(tiny)
    x, mask = padded_source()
    cached = model.generate(x, attention_mask=mask, max_new_tokens=8, min_new_tokens=8, use_cache=True, **kwargs)
    uncached = model.generate(x, attention_mask=mask, max_new_tokens=8, min_new_tokens=8, use_cache=False, **kwargs)
    assert torch.equal(cached, uncached)
    assert cached.shape[1] == 9 and torch.all(cached[:, 0] == model.config.decoder_start_token_id)


def test_sampling_is_reproducible_with_and_without_cache(tiny):
    model = seq2seq(tiny)
    x, mask = padded_source()
    torch.manual_seed(3)
    a = model.generate(x, attention_mask=mask, do_sample=True, top_k=10, max_new_tokens=6, min_new_tokens=6)
    torch.manual_seed(3)
    b = model.generate(x, attention_mask=mask, do_sample=True, top_k=10, max_new_tokens=6, min_new_tokens=6,
                       use_cache=False)
    assert torch.equal(a, b)


def test_cross_attention_keys_and_values_are_computed_once_per_source(tiny):
    model = seq2seq(tiny)
    calls = []
    for layer in model.model.decoder.layers:
        layer.cross_attn.kv_proj.register_forward_hook(lambda *_: calls.append(1))
    model.generate(ids(2, 6), max_new_tokens=6, min_new_tokens=6, do_sample=False)
    assert len(calls) == len(model.model.decoder.layers)  # once per layer, not once per generated token
    calls.clear()
    model.generate(ids(2, 6), max_new_tokens=6, min_new_tokens=6, do_sample=False, use_cache=False)
    assert len(calls) == 6 * len(model.model.decoder.layers)


def test_generate_returns_encoder_decoder_and_cross_attentions(tiny):
    model = seq2seq(tiny)
    x, mask = padded_source()
    out = model.generate(x, attention_mask=mask, max_new_tokens=3, min_new_tokens=3, output_attentions=True,
                         return_dict_in_generate=True)
    assert len(out.encoder_attentions) == 2 and len(out.decoder_attentions) == 3 and len(out.cross_attentions) == 3
    assert torch.all(out.cross_attentions[-1][0][1, :, :, 4:] == 0)


def test_tiny_model_memorises_a_few_pairs_to_exact_match(tiny):
    torch.manual_seed(0)
    model = ScratchTransformerForConditionalGeneration(cfg(tiny, hidden_size=64, intermediate_size=128))
    sources = [ids(1, n)[0] for n in (4, 5, 6, 7)]
    targets = [torch.cat([s.flip(0), torch.tensor([2])]) for s in sources]  # reverse the sentence, then </s>
    x = torch.nn.utils.rnn.pad_sequence(sources, batch_first=True)
    labels = torch.nn.utils.rnn.pad_sequence(targets, batch_first=True, padding_value=-100)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(150):
        loss = model(input_ids=x, attention_mask=(x != 0).long(), labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    out = model.generate(x, attention_mask=(x != 0).long(), max_new_tokens=10, num_beams=2)
    for row, target in zip(out, targets):
        assert row[1 : len(target) + 1].tolist() == target.tolist()


# --- weights, save and load ------------------------------------------------------------------------------------------


def test_source_target_and_output_share_one_matrix_and_the_sharing_survives_save_load(tiny, tmp_path):
    model = seq2seq(tiny)
    E = model.model.encoder.embeddings.embed_tokens.weight
    assert model.model.decoder.embeddings.embed_tokens.weight is E and model.lm_head.weight is E
    model.save_pretrained(tmp_path / "ckpt")
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "ckpt").eval()
    E2 = reloaded.model.encoder.embeddings.embed_tokens.weight
    assert reloaded.model.decoder.embeddings.embed_tokens.weight is E2 and reloaded.lm_head.weight is E2
    x, mask = padded_source()
    torch.testing.assert_close(model.generate(x, attention_mask=mask, max_new_tokens=5, num_beams=2),
                               reloaded.generate(x, attention_mask=mask, max_new_tokens=5, num_beams=2))
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSeq2SeqLM"].endswith("ScratchTransformerForConditionalGeneration")
    assert (tmp_path / "ckpt" / "seq2seq.py").is_file() and (tmp_path / "ckpt" / "layers.py").is_file()
    body = AutoModel.from_pretrained(tmp_path / "ckpt")
    assert isinstance(body, ScratchTransformerModel)


def test_untied_embeddings_stay_separate_through_save_load(tiny, tmp_path):
    model = seq2seq(tiny, tie_word_embeddings=False)
    E = model.model.encoder.embeddings.embed_tokens.weight
    assert model.model.decoder.embeddings.embed_tokens.weight is not E and model.lm_head.weight is not E
    model.save_pretrained(tmp_path / "ckpt")
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "ckpt")
    for (name, a), b in zip(model.state_dict().items(), reloaded.state_dict().values()):
        assert torch.equal(a, b), name


def test_trust_remote_code_load_works_without_the_package(tiny, tmp_path, run_without_package):
    model = seq2seq(tiny)
    model.save_pretrained(tmp_path / "ckpt")
    x, mask = padded_source()
    expected = model.generate(x, attention_mask=mask, max_new_tokens=5, num_beams=2)
    out = run_without_package(
        f"""
        import torch
        from transformers import AutoModelForSeq2SeqLM
        m = AutoModelForSeq2SeqLM.from_pretrained({str(tmp_path / "ckpt")!r}, trust_remote_code=True).eval()
        assert "scratchformers" not in type(m).__module__, type(m).__module__
        assert m.lm_head.weight is m.model.decoder.embeddings.embed_tokens.weight
        x, mask = torch.tensor({x.tolist()}), torch.tensor({mask.tolist()})
        print(m.generate(x, attention_mask=mask, max_new_tokens=5, num_beams=2).tolist())
        """
    )
    assert out.strip() == str(expected.tolist())


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(input_ids=torch.tensor([[3, 99]]), decoder_input_ids=torch.tensor([[1]])), ValueError, "outside the vocab"),
        (dict(input_ids=torch.tensor([[3, 4]])), ValueError, "decoder_input_ids"),
        (dict(input_ids=torch.tensor([[3, 4]]), attention_mask=torch.ones(1, 3), decoder_input_ids=torch.tensor([[1]])),
         ValueError, "attention_mask"),
    ],
)
def test_bad_input_raises_a_clear_error(tiny, kwargs, error, message):
    with pytest.raises(error, match=message):
        seq2seq(tiny)(**kwargs)
