"""Weight converters: HF-native ↔ ours give the same logits (≤ 1e-4, fp32) and the same greedy tokens."""

from __future__ import annotations

import pytest
import torch
import transformers
from twin_helpers import greedy, max_diff, perturb

from scratchformers import (
    ScratchBertConfig,
    ScratchBertForMaskedLM,
    ScratchBertForQuestionAnswering,
    ScratchBertForSequenceClassification,
    ScratchBertForTokenClassification,
    ScratchBertModel,
    ScratchGPTConfig,
    ScratchGPTForCausalLM,
    ScratchGPTForSequenceClassification,
    ScratchTransformerConfig,
    ScratchTransformerForConditionalGeneration,
    ScratchTransformerModel,
)
from scratchformers.convert import from_hf, main, supported_conversions, to_hf, weight_map
from scratchformers_light.conversions import SPECS

ATOL = 1e-4
SCALE = 0.05  # how far `perturb` moves each weight off its init


# ---------------------------------------------------------------------------------------------------------------- GPT-2

GPT2_SHAPES = [
    dict(n_layer=1, n_embd=32, n_head=4, n_inner=None, activation_function="gelu_new", tie_word_embeddings=True),
    dict(n_layer=2, n_embd=48, n_head=3, n_inner=80, activation_function="relu", tie_word_embeddings=False),
    dict(n_layer=3, n_embd=16, n_head=2, n_inner=64, activation_function="gelu", layer_norm_epsilon=1e-6),
]


def gpt2_config(**shape) -> transformers.GPT2Config:
    return transformers.GPT2Config(
        vocab_size=61, n_positions=40, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=1,
        eos_token_id=2, pad_token_id=0, **shape
    )


@pytest.mark.parametrize("shape", GPT2_SHAPES, ids=lambda s: f"L{s['n_layer']}-C{s['n_embd']}-{s['activation_function']}")
def test_gpt2_from_hf_gives_the_same_logits_and_greedy_tokens(shape):
    hf = perturb(transformers.GPT2LMHeadModel(gpt2_config(**shape)), scale=SCALE)
    ours = from_hf(hf)
    assert isinstance(ours, ScratchGPTForCausalLM)
    assert ours.config.tie_word_embeddings == hf.config.tie_word_embeddings
    x = torch.randint(0, 61, (3, 13))
    with torch.no_grad():
        assert max_diff(hf(x).logits, ours(x).logits) <= ATOL
    assert torch.equal(greedy(hf, x[:, :4]), greedy(ours, x[:, :4]))


@pytest.mark.parametrize("shape", GPT2_SHAPES, ids=lambda s: f"L{s['n_layer']}-C{s['n_embd']}-{s['activation_function']}")
def test_gpt2_to_hf_gives_the_same_logits_and_greedy_tokens(shape):
    ours = perturb(from_hf(transformers.GPT2LMHeadModel(gpt2_config(**shape))), SCALE)  # ours, then weights of its own
    hf = to_hf(ours)
    assert isinstance(hf, transformers.GPT2LMHeadModel)
    x = torch.randint(0, 61, (2, 11))
    with torch.no_grad():
        assert max_diff(hf(x).logits, ours(x).logits) <= ATOL
    assert torch.equal(greedy(hf, x[:, :3]), greedy(ours, x[:, :3]))


def test_gpt2_eager_and_sdpa_conversions_agree():
    hf = transformers.GPT2LMHeadModel._from_config(gpt2_config(**GPT2_SHAPES[1]), attn_implementation="eager")
    perturb(hf, scale=SCALE)
    ours = from_hf(hf)
    assert ours.config._attn_implementation == "eager"
    ours_sdpa = from_hf(hf, attn_implementation="sdpa")
    x = torch.randint(0, 61, (2, 9))
    with torch.no_grad():
        assert max_diff(hf(x).logits, ours(x).logits) <= ATOL
        assert max_diff(hf(x).logits, ours_sdpa(x).logits) <= ATOL


def test_gpt2_body_and_classification_head_convert_both_ways():
    config = gpt2_config(**GPT2_SHAPES[0], num_labels=3)
    x = torch.randint(3, 61, (2, 7))
    hf_body = perturb(transformers.GPT2Model(config), scale=SCALE)
    with torch.no_grad():
        assert max_diff(hf_body(x).last_hidden_state, from_hf(hf_body)(x).last_hidden_state) <= ATOL
    hf_cls = perturb(transformers.GPT2ForSequenceClassification(config), scale=SCALE)
    ours_cls = from_hf(hf_cls)
    assert isinstance(ours_cls, ScratchGPTForSequenceClassification) and ours_cls.config.num_labels == 3
    with torch.no_grad():
        assert max_diff(hf_cls(x).logits, ours_cls(x).logits) <= ATOL
        assert max_diff(to_hf(ours_cls)(x).logits, ours_cls(x).logits) <= ATOL


def test_gpt2_unsupported_options_are_listed_in_one_error():
    config = gpt2_config(**{**GPT2_SHAPES[0], "activation_function": "quick_gelu"}, scale_attn_by_inverse_layer_idx=True)
    with pytest.raises(ValueError) as info:
        from_hf(transformers.GPT2LMHeadModel(config))
    message = str(info.value)
    assert "2 thing(s) do not fit" in message
    assert "scale_attn_by_inverse_layer_idx" in message and "'quick_gelu'" in message


def test_our_options_gpt2_cannot_express_are_refused():
    ours = ScratchGPTForCausalLM(ScratchGPTConfig(vocab_size=61, hidden_size=32, num_hidden_layers=1,
                                                  num_attention_heads=4, intermediate_size=64,
                                                  norm_placement="post", position_embedding_type="sinusoidal"))
    with pytest.raises(ValueError, match=r"norm_placement.*\n.*position_embedding_type"):
        to_hf(ours)


def test_mismatched_shapes_are_listed():
    hf = transformers.GPT2LMHeadModel(gpt2_config(**GPT2_SHAPES[0]))
    with torch.no_grad():  # a checkpoint whose second block has a wider feed-forward than its config says
        hf.transformer.h[0].mlp.c_fc.weight = torch.nn.Parameter(torch.zeros(32, 256))
    with pytest.raises(ValueError, match=r"ffn\.fc_in\.weight \(128, 32\) does not fit .*mlp\.c_fc\.weight.*\(32, 256\)"):
        from_hf(hf)


def test_unsupported_classes_raise_type_error_naming_the_allowed_ones():
    with pytest.raises(TypeError, match="GPT2LMHeadModel"):
        from_hf(torch.nn.Linear(2, 2))
    assert supported_conversions()["GPT2LMHeadModel"] == "ScratchGPTForCausalLM"


# ---------------------------------------------------------------------------------------------------------------- BERT

BERT_SHAPES = [
    dict(num_hidden_layers=1, hidden_size=32, num_attention_heads=4, intermediate_size=64, hidden_act="gelu"),
    dict(num_hidden_layers=2, hidden_size=24, num_attention_heads=3, intermediate_size=40, hidden_act="relu",
         type_vocab_size=3, layer_norm_eps=1e-5),
    dict(num_hidden_layers=3, hidden_size=16, num_attention_heads=2, intermediate_size=48, hidden_act="gelu_new",
         tie_word_embeddings=False),
]
BERT_CLASSES = [transformers.BertModel, transformers.BertForMaskedLM, transformers.BertForSequenceClassification,
                transformers.BertForTokenClassification, transformers.BertForQuestionAnswering]


def bert_config(num_labels: int = 3, **shape) -> transformers.BertConfig:
    return transformers.BertConfig(vocab_size=57, max_position_embeddings=32, hidden_dropout_prob=0.0,
                                   attention_probs_dropout_prob=0.0, num_labels=num_labels, **shape)


def bert_inputs(batch: int = 3, length: int = 12):
    """Right-padded ids (BERT's convention), a mask and segment ids; row 0 has 4 padding slots."""
    x = torch.randint(1, 57, (batch, length))
    mask = torch.ones_like(x)
    x[0, -4:], mask[0, -4:] = 0, 0
    types = torch.zeros_like(x)
    types[:, length // 2 :] = 1
    return dict(input_ids=x, attention_mask=mask, token_type_ids=types)


def bert_output(model, inputs) -> torch.Tensor:
    """Logits of a head, else the body's hidden states at real tokens and the pooled [CLS] vector."""
    with torch.no_grad():
        out = model(**inputs)
    real = inputs["attention_mask"].bool()
    if hasattr(out, "start_logits"):  # question answering: both logits at real tokens
        return torch.cat([out.start_logits[real], out.end_logits[real]])
    if hasattr(out, "logits"):
        return out.logits[real] if out.logits.dim() == 3 else out.logits
    pooled = out.pooler_output if out.pooler_output is not None else torch.zeros(0)
    return torch.cat([out.last_hidden_state[real].flatten(), pooled.flatten()])


@pytest.mark.parametrize("hf_class", BERT_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("shape", BERT_SHAPES, ids=lambda s: f"L{s['num_hidden_layers']}-C{s['hidden_size']}")
def test_bert_converts_both_ways_with_the_same_outputs(hf_class, shape):
    qa = hf_class is transformers.BertForQuestionAnswering
    hf = perturb(hf_class(bert_config(num_labels=2 if qa else 3, **shape)), scale=SCALE)  # QA: start and end
    inputs = bert_inputs()
    ours = from_hf(hf)
    expected_class = {transformers.BertModel: ScratchBertModel, transformers.BertForMaskedLM: ScratchBertForMaskedLM,
                      transformers.BertForSequenceClassification: ScratchBertForSequenceClassification,
                      transformers.BertForTokenClassification: ScratchBertForTokenClassification,
                      transformers.BertForQuestionAnswering: ScratchBertForQuestionAnswering}[hf_class]
    assert type(ours) is expected_class
    assert max_diff(bert_output(hf, inputs), bert_output(ours, inputs)) <= ATOL
    perturb(ours, scale=SCALE)  # now weights that HF never had: ours → HF
    back = to_hf(ours)
    assert type(back) is hf_class
    assert max_diff(bert_output(back, inputs), bert_output(ours, inputs)) <= ATOL


def test_bert_without_pooler_round_trips_without_pooler():
    hf = transformers.BertModel(bert_config(**BERT_SHAPES[0]), add_pooling_layer=False)
    ours = from_hf(hf)
    assert ours.config.add_pooling_layer is False and ours.pooler is None
    assert to_hf(ours).pooler is None


def test_bert_unsupported_options_are_listed():
    with pytest.raises(ValueError, match="is_decoder"):
        from_hf(transformers.BertModel(bert_config(**BERT_SHAPES[0], is_decoder=True)))
    ours = ScratchBertModel(ScratchBertConfig(vocab_size=57, hidden_size=32, num_hidden_layers=1,
                                              num_attention_heads=4, intermediate_size=64, norm_placement="pre",
                                              type_vocab_size=0))
    with pytest.raises(ValueError, match=r"2 thing\(s\).*\n.*norm_placement.*\n.*type_vocab_size"):
        to_hf(ours)


# ---------------------------------------------------------------------------------------------------------------- CLI


def test_cli_converts_a_local_folder_both_ways(tmp_path, capsys):
    hf = perturb(transformers.GPT2LMHeadModel(gpt2_config(**GPT2_SHAPES[0])), scale=SCALE)
    hf.save_pretrained(tmp_path / "hf")
    (tmp_path / "hf" / "vocab.json").write_text("{}")  # tokenizer files travel with the weights
    assert main([str(tmp_path / "hf"), str(tmp_path / "ours")]) == 0
    assert (tmp_path / "ours" / "vocab.json").is_file()
    ours = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "ours")
    assert isinstance(ours, ScratchGPTForCausalLM)
    assert main([str(tmp_path / "ours"), str(tmp_path / "back")]) == 0
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "back")
    assert isinstance(back, transformers.GPT2LMHeadModel)
    x = torch.randint(0, 61, (2, 9))
    with torch.no_grad():
        assert max_diff(hf(x).logits, ours.eval()(x).logits) <= ATOL
        assert max_diff(hf(x).logits, back.eval()(x).logits) <= ATOL
    assert "GPT2LMHeadModel → ScratchGPTForCausalLM" in capsys.readouterr().out


def test_cli_rejects_a_folder_without_config(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        main([str(tmp_path), str(tmp_path / "out")])


# ---------------------------------------------------------------------------------------------------- BART and Marian

SEQ2SEQ_VOCAB = 53
BART_SHAPES = [
    dict(encoder_layers=2, decoder_layers=2, d_model=32, attention_heads=4, ffn_dim=64, activation_function="gelu"),
    dict(encoder_layers=1, decoder_layers=3, d_model=24, attention_heads=3, ffn_dim=40, activation_function="relu",
         scale_embedding=True, tie_word_embeddings=False),
    dict(encoder_layers=3, decoder_layers=1, d_model=16, attention_heads=2, ffn_dim=48,
         activation_function="gelu_new"),
]
MARIAN_SHAPES = [
    dict(encoder_layers=2, decoder_layers=2, d_model=32, attention_heads=4, ffn_dim=64, activation_function="swish"),
    dict(encoder_layers=1, decoder_layers=2, d_model=24, attention_heads=2, ffn_dim=40, activation_function="swish",
         tie_word_embeddings=False),
]


def seq2seq_config(cls, attention_heads: int, ffn_dim: int, **shape):
    """A small BartConfig/MarianConfig (the same heads and FFN width in both stacks, no dropout)."""
    tokens = (dict(pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2)
              if cls is transformers.BartConfig else
              dict(pad_token_id=52, eos_token_id=0, decoder_start_token_id=52, forced_eos_token_id=0,
                   scale_embedding=True))
    return cls(vocab_size=SEQ2SEQ_VOCAB, max_position_embeddings=40, dropout=0.0, attention_dropout=0.0,
               encoder_attention_heads=attention_heads, decoder_attention_heads=attention_heads,
               encoder_ffn_dim=ffn_dim, decoder_ffn_dim=ffn_dim, **{**tokens, **shape})


def seq2seq_inputs(batch: int = 3, source: int = 11, target: int = 7) -> dict:
    """Right-padded source ids (row 0 has 3 padding slots), its mask, and a decoder prefix."""
    x = torch.randint(3, SEQ2SEQ_VOCAB - 1, (batch, source))
    mask = torch.ones_like(x)
    mask[0, -3:] = 0
    return dict(input_ids=x, attention_mask=mask, decoder_input_ids=torch.randint(3, SEQ2SEQ_VOCAB - 1, (batch, target)))


def seq2seq_output(model, inputs) -> torch.Tensor:
    """Logits of the generation model, else the body's decoder hidden states and the encoder's at real tokens."""
    with torch.no_grad():
        out = model(**inputs)
    if hasattr(out, "logits"):
        return out.logits
    return torch.cat([out.last_hidden_state.flatten(), out.encoder_last_hidden_state[inputs["attention_mask"].bool()]
                      .flatten()])


def seq2seq_greedy(model, inputs, n: int = 8) -> torch.Tensor:
    """Greedy tokens with the model's own generation config (decoder start, pad, forced eos)."""
    return model.generate(inputs["input_ids"], attention_mask=inputs["attention_mask"], max_new_tokens=n,
                          do_sample=False)


def assert_seq2seq_parity(hf, ours, inputs) -> None:
    assert max_diff(seq2seq_output(hf, inputs), seq2seq_output(ours, inputs)) <= ATOL
    if isinstance(ours, ScratchTransformerForConditionalGeneration):
        hf_tokens, our_tokens = seq2seq_greedy(hf, inputs), seq2seq_greedy(ours, inputs)
        assert hf_tokens.shape == (3, 9) and torch.equal(hf_tokens, our_tokens)


@pytest.mark.parametrize("hf_class", [transformers.BartForConditionalGeneration, transformers.BartModel],
                         ids=lambda c: c.__name__)
@pytest.mark.parametrize("shape", BART_SHAPES, ids=lambda s: f"E{s['encoder_layers']}D{s['decoder_layers']}-C{s['d_model']}")
def test_bart_converts_both_ways_with_the_same_logits_and_greedy_tokens(hf_class, shape):
    hf = perturb(hf_class(seq2seq_config(transformers.BartConfig, **shape)), scale=0.2)
    ours = from_hf(hf)
    expected = (ScratchTransformerForConditionalGeneration if hf_class is transformers.BartForConditionalGeneration
                else ScratchTransformerModel)
    assert type(ours) is expected
    assert (ours.config.position_offset, ours.config.decoder_start_token_id) == (2, 2)
    inputs = seq2seq_inputs()
    assert_seq2seq_parity(hf, ours, inputs)
    back = to_hf(perturb(ours, scale=0.2))  # weights HF never had: ours → HF
    assert type(back) is hf_class
    assert_seq2seq_parity(back, ours, inputs)


@pytest.mark.parametrize("shape", MARIAN_SHAPES, ids=lambda s: f"E{s['encoder_layers']}D{s['decoder_layers']}-C{s['d_model']}")
def test_marian_converts_both_ways_with_the_same_logits_and_greedy_tokens(shape):
    hf = perturb(transformers.MarianMTModel(seq2seq_config(transformers.MarianConfig, **shape)), scale=0.2)
    ours = from_hf(hf)
    assert (ours.config.position_embedding_type, ours.config.sinusoidal_layout) == ("sinusoidal", "split")
    assert ours.config.activation == "silu" and ours.config.scale_embedding
    inputs = seq2seq_inputs()
    assert_seq2seq_parity(hf, ours, inputs)
    back = to_hf(perturb(ours, scale=0.2))
    assert type(back) is transformers.MarianMTModel
    assert_seq2seq_parity(back, ours, inputs)
    body = transformers.MarianModel(seq2seq_config(transformers.MarianConfig, **shape))
    assert_seq2seq_parity(body.eval(), from_hf(perturb(body, scale=SCALE)), inputs)


def test_bart_round_trip_is_exact_and_final_logits_bias_survives_save_and_load(tmp_path):
    hf = transformers.BartForConditionalGeneration(seq2seq_config(transformers.BartConfig, **BART_SHAPES[1]))
    perturb(hf, scale=SCALE)
    back = to_hf(from_hf(hf))
    assert list(hf.state_dict()) == list(back.state_dict())
    for key, tensor in hf.state_dict().items():
        if key != "model.shared.weight":  # untied BART: `shared` is read by no forward and not carried
            assert torch.equal(tensor, back.state_dict()[key]), key
    ours = from_hf(hf)
    assert torch.equal(ours.final_logits_bias, hf.final_logits_bias) and ours.final_logits_bias.abs().sum() > 0
    ours.save_pretrained(tmp_path)
    reloaded = ScratchTransformerForConditionalGeneration.from_pretrained(tmp_path)
    assert torch.equal(reloaded.final_logits_bias, ours.final_logits_bias)
    inputs = seq2seq_inputs()
    assert max_diff(seq2seq_output(reloaded.eval(), inputs), seq2seq_output(hf, inputs)) <= ATOL


def test_bart_and_marian_options_that_do_not_fit_are_listed():
    config = seq2seq_config(transformers.BartConfig, **{**BART_SHAPES[0], "activation_function": "quick_gelu"})
    config.decoder_ffn_dim = 80
    with pytest.raises(ValueError, match=r"2 thing\(s\).*\n.*encoder_ffn_dim`=64 != `decoder_ffn_dim`=80.*\n.*quick_gelu"):
        from_hf(transformers.BartForConditionalGeneration(config))
    marian = transformers.MarianMTModel(seq2seq_config(transformers.MarianConfig, **MARIAN_SHAPES[0]))
    with torch.no_grad():
        marian.model.decoder.embed_positions.weight.add_(0.5)  # a position table that is not the sinusoid formula
    with pytest.raises(ValueError, match="decoder.embed_positions.weight is not the sin|cos table"):
        from_hf(marian)


def test_scratch_transformer_that_fits_neither_bart_nor_marian_is_refused_with_both_reasons():
    paper = ScratchTransformerForConditionalGeneration(ScratchTransformerConfig(
        vocab_size=SEQ2SEQ_VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64))
    with pytest.raises(ValueError) as info:
        to_hf(paper)  # the paper's defaults: interleaved sinusoids (Marian lays them out [sin | cos]), not learned
    message = str(info.value)
    assert "to BART" in message and "to Marian" in message
    assert "`position_embedding_type`='sinusoidal': BART supports only 'learned'" in message
    assert "`sinusoidal_layout`='interleaved': Marian supports only 'split'" in message
    bart_like = from_hf(transformers.BartForConditionalGeneration(seq2seq_config(transformers.BartConfig,
                                                                                 **BART_SHAPES[0])))
    with pytest.raises(ValueError, match=r"position_offset`=2: Marian supports only 0"):
        to_hf(bart_like, hf_class=transformers.MarianMTModel)
    with pytest.raises(TypeError, match="GPT2LMHeadModel.*allowed.*BartForConditionalGeneration"):
        to_hf(bart_like, hf_class=transformers.GPT2LMHeadModel)


def test_bart_mismatched_weight_shapes_are_listed():
    hf = transformers.BartForConditionalGeneration(seq2seq_config(transformers.BartConfig, **BART_SHAPES[0]))
    with torch.no_grad():  # a checkpoint whose decoder position table is longer than its config says
        hf.model.decoder.embed_positions.weight = torch.nn.Parameter(torch.zeros(50, 32))
    with pytest.raises(ValueError, match=r"decoder\.embeddings\.positions\.weight \(42, 32\) does not fit"):
        from_hf(hf)


def test_position_options_validate_and_lay_out_sinusoids_as_marian_does():
    with pytest.raises(ValueError, match="position_offset"):
        ScratchTransformerConfig(position_offset=-1)
    with pytest.raises(ValueError, match="sinusoidal_layout"):
        ScratchTransformerConfig(sinusoidal_layout="halves")
    from scratchformers.embeddings import sinusoidal_position_encoding

    positions = torch.arange(7)
    split, interleaved = (sinusoidal_position_encoding(positions, 10, layout) for layout in ("split", "interleaved"))
    assert torch.equal(split[:, :5], interleaved[:, 0::2]) and torch.equal(split[:, 5:], interleaved[:, 1::2])
    marian_table = transformers.MarianModel(seq2seq_config(transformers.MarianConfig, **MARIAN_SHAPES[0]))
    table = marian_table.encoder.embed_positions.weight[:7]
    assert max_diff(table, sinusoidal_position_encoding(positions, 32, "split")) <= 1e-5


def test_cli_converts_a_local_bart_folder_both_ways(tmp_path, capsys):
    hf = transformers.BartForConditionalGeneration(seq2seq_config(transformers.BartConfig, **BART_SHAPES[0]))
    perturb(hf, scale=SCALE)
    hf.save_pretrained(tmp_path / "hf")
    assert main([str(tmp_path / "hf"), str(tmp_path / "ours")]) == 0
    ours = transformers.AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "ours")
    assert isinstance(ours, ScratchTransformerForConditionalGeneration)
    assert main([str(tmp_path / "ours"), str(tmp_path / "back")]) == 0
    back = transformers.AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "back")
    assert isinstance(back, transformers.BartForConditionalGeneration)
    inputs = seq2seq_inputs()
    for model in (ours.eval(), back.eval()):
        assert max_diff(seq2seq_output(hf, inputs), seq2seq_output(model, inputs)) <= ATOL
        assert torch.equal(seq2seq_greedy(hf, inputs), seq2seq_greedy(model, inputs))
    assert "BartForConditionalGeneration → ScratchTransformerForConditionalGeneration" in capsys.readouterr().out


# ------------------------------------------------------------------------------------ every class of every spec

SPEC_MODELS = {  # one row per architecture: a small HF config of it (2 labels: also the QA head's start and end)
    "GPT-2": lambda: gpt2_config(**GPT2_SHAPES[0], num_labels=2),
    "Llama": lambda: transformers.LlamaConfig(**MODERN_SIZES),
    "Qwen2": lambda: transformers.Qwen2Config(**MODERN_SIZES),
    "Mistral": lambda: transformers.MistralConfig(**MODERN_SIZES, sliding_window=8),
    "BERT": lambda: bert_config(num_labels=2, **BERT_SHAPES[0]),
    "BART": lambda: seq2seq_config(transformers.BartConfig, **BART_SHAPES[0]),
    "Marian": lambda: seq2seq_config(transformers.MarianConfig, **MARIAN_SHAPES[0]),
}
MODERN_SIZES = dict(vocab_size=61, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0)
SPEC_CLASSES = [(spec, head) for spec in SPECS for head in spec.classes]


def test_every_spec_has_a_test_row_and_lists_its_classes_for_the_command_line():
    assert set(SPEC_MODELS) == {spec.name for spec in SPECS}
    assert supported_conversions() == {head.hf: head.ours for _, head in SPEC_CLASSES}


@pytest.mark.parametrize("spec, head", SPEC_CLASSES, ids=lambda x: getattr(x, "hf", ""))
def test_every_class_of_every_spec_round_trips_exactly_and_names_each_tensor_both_ways(spec, head):
    hf = perturb(getattr(transformers, head.hf)(SPEC_MODELS[spec.name]()), scale=SCALE)
    ours = from_hf(hf)
    assert type(ours).__name__ == head.ours
    back = to_hf(ours, hf_class=type(hf))
    assert list(back.state_dict()) == list(hf.state_dict())
    for key, tensor in hf.state_dict().items():
        assert torch.equal(tensor, back.state_dict()[key]), key
    rows = weight_map(ours, hf_class=type(hf))  # export formats find each tensor by either side's name
    assert unnamed(ours, rows.by_ours) == unnamed(hf, rows.by_theirs) == set()
    assert weight_map(hf).by_theirs.keys() == rows.by_theirs.keys()


def unnamed(model: torch.nn.Module, names) -> set[str]:
    """Tensors of `model` that `names` misses, a tensor tied to a named one (same storage) counting as named."""
    state = model.state_dict(keep_vars=True)
    named = {state[name].data_ptr() for name in names if name in state}
    return {key for key, tensor in state.items() if tensor.data_ptr() not in named}


@pytest.mark.parametrize("target", [transformers.LlamaForCausalLM, transformers.Qwen2ForCausalLM,
                                    transformers.MistralForCausalLM])
def test_a_gpt_without_rotary_positions_to_a_rope_architecture_names_what_does_not_fit(target):
    """A learned-position config carries no `rope_parameters`: the RoPE translation must not trip over that before
    the fixed options report the mismatch."""
    model = ScratchGPTForCausalLM(ScratchGPTConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                                   num_attention_heads=4, intermediate_size=64))
    with pytest.raises(ValueError, match="`position_embedding_type`='learned'"):
        to_hf(model, hf_class=target)
