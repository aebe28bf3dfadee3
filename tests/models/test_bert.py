"""The BERT family: a bidirectional encoder, its heads, Auto/remote-code round trips, pipelines, MLM pre-training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    DataCollatorForLanguageModeling,
    Trainer,
    TrainingArguments,
    pipeline,
)

from scratchformers import (
    ScratchBertConfig,
    ScratchBertForMaskedLM,
    ScratchBertForQuestionAnswering,
    ScratchBertForSequenceClassification,
    ScratchBertForTokenClassification,
    ScratchBertModel,
    ScratchGPTConfig,
    ScratchGPTModel,
)
from scratchformers.data import resolve_data_dir, tokenize_and_group
from scratchformers.tokenization import train_tokenizer

REPO = Path(__file__).resolve().parents[2]
PROSE = resolve_data_dir() / "prose"
LABELS = {0: "PER", 1: "LOC", 2: "MISC"}
HEADS = [
    (AutoModel, ScratchBertModel),
    (AutoModelForMaskedLM, ScratchBertForMaskedLM),
    (AutoModelForSequenceClassification, ScratchBertForSequenceClassification),
    (AutoModelForTokenClassification, ScratchBertForTokenClassification),
    (AutoModelForQuestionAnswering, ScratchBertForQuestionAnswering),
]


@pytest.fixture(scope="module")
def tokenizer():
    """A small WordPiece tokenizer ([PAD]=0 [UNK] [CLS] [SEP] [MASK]) trained on the shipped prose."""
    return train_tokenizer(PROSE / "train.txt", kind="wordpiece", vocab_size=400)


def bert_config(tiny: dict, **overrides) -> ScratchBertConfig:
    """The shared tiny sizes with BERT's defaults (post-LN, gelu, segments) and three labels."""
    values = {k: v for k, v in tiny.items() if k not in ("bos_token_id", "eos_token_id")}
    values.update(num_labels=3, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    values.update(overrides)
    return ScratchBertConfig(**values)


def ids(config, B: int = 2, T: int = 9, low: int = 5) -> torch.Tensor:
    return torch.randint(low, config.vocab_size, (B, T))


# --- configuration ---------------------------------------------------------------------------------------------


def test_config_defaults_are_bert():
    c = ScratchBertConfig(d_model=64, num_heads=4, d_ff=128)
    assert (c.hidden_size, c.num_attention_heads, c.intermediate_size) == (64, 4, 128)
    assert (c.norm_placement, c.activation, c.layer_norm_eps) == ("post", "gelu", 1e-12)
    assert (c.type_vocab_size, c.embedding_layer_norm, c.pad_token_id, c.tie_word_embeddings) == (2, True, 0, True)
    with pytest.raises(ValueError, match="classifier_dropout"):
        ScratchBertConfig(classifier_dropout=1.5)
    with pytest.raises(ValueError, match="norm_placement"):
        ScratchBertConfig(norm_placement="middle")


def test_shipped_configs_load_and_base_has_bert_base_shape():
    tiny = AutoConfig.from_pretrained(REPO / "configs" / "bert-tiny.json")
    base = AutoConfig.from_pretrained(REPO / "configs" / "bert-base.json")
    assert isinstance(tiny, ScratchBertConfig) and isinstance(base, ScratchBertConfig)
    assert (base.num_hidden_layers, base.hidden_size, base.num_attention_heads, base.intermediate_size) == (
        12, 768, 12, 3072,
    )
    with torch.device("meta"):
        model = ScratchBertModel(base)
    C, F_, V, P, S, L = 768, 3072, base.vocab_size, base.max_position_embeddings, base.type_vocab_size, 12
    embeddings = (V + P + S) * C + 2 * C
    layer = (3 * C * C + 3 * C) + (C * C + C) + (C * F_ + F_) + (F_ * C + C) + 2 * (2 * C)
    pooler = C * C + C
    count = sum(p.numel() for p in model.parameters())
    assert count == embeddings + L * layer + pooler == 109_482_240  # = HF's bert-base-uncased BertModel


# --- the encoder -----------------------------------------------------------------------------------------------


def test_encoder_sees_the_future_unlike_gpt(tiny):
    """Changing the last token changes the first position's output in BERT, but not in (causal) GPT."""
    bert = ScratchBertModel(bert_config(tiny)).eval()
    gpt = ScratchGPTModel(ScratchGPTConfig(**tiny)).eval()
    x = ids(bert.config, B=1)
    y = x.clone()
    y[0, -1] = 5 if x[0, -1] != 5 else 6
    with torch.no_grad():
        assert not torch.allclose(bert(x).last_hidden_state[:, 0], bert(y).last_hidden_state[:, 0], atol=1e-4)
        torch.testing.assert_close(gpt(x).last_hidden_state[:, 0], gpt(y).last_hidden_state[:, 0])


@pytest.mark.parametrize("position_embedding_type", ["learned", "sinusoidal"])
def test_padding_does_not_change_real_positions(tiny, position_embedding_type):
    config = bert_config(tiny, position_embedding_type=position_embedding_type)
    mlm = ScratchBertForMaskedLM(config).eval()
    cls = ScratchBertForSequenceClassification(config).eval()
    x = ids(config, B=1, T=6)
    pad = torch.zeros(1, 3, dtype=torch.long)
    ones, zeros = torch.ones(1, 6, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long)
    with torch.no_grad():
        alone = mlm(x).logits
        right = mlm(torch.cat([x, pad], 1), attention_mask=torch.cat([ones, zeros], 1)).logits[:, :6]
        left = mlm(torch.cat([pad, x], 1), attention_mask=torch.cat([zeros, ones], 1)).logits[:, 3:]
        torch.testing.assert_close(right, alone, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(left, alone, atol=1e-5, rtol=1e-5)
        padded = cls(torch.cat([x, pad], 1), attention_mask=torch.cat([ones, zeros], 1)).logits
        torch.testing.assert_close(padded, cls(x).logits, atol=1e-5, rtol=1e-5)


def test_eager_and_sdpa_agree(tiny):
    model = ScratchBertForMaskedLM(bert_config(tiny)).eval()
    x = ids(model.config, B=3, T=8)
    mask = torch.ones_like(x)
    mask[1, 5:] = 0
    mask[2, 2:] = 0
    types = torch.zeros_like(x)
    types[:, 4:] = 1
    with torch.no_grad():
        model.set_attn_implementation("eager")
        eager = model(x, attention_mask=mask, token_type_ids=types).logits
        model.set_attn_implementation("sdpa")
        assert model.config._attn_implementation == "sdpa"
        sdpa = model(x, attention_mask=mask, token_type_ids=types).logits
    torch.testing.assert_close(sdpa, eager, atol=1e-5, rtol=1e-5)


def test_attention_weights_are_bidirectional_and_skip_padding(tiny):
    model = ScratchBertModel(bert_config(tiny)).eval()  # default (sdpa) backend: weights come from the eager path
    x = ids(model.config, B=2, T=6)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    with torch.no_grad():
        attentions = model(x, attention_mask=mask, output_attentions=True).attentions
    assert len(attentions) == 2 and attentions[0].shape == (2, 4, 6, 6)  # (B, H, T, S) per layer
    for weights in attentions:
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 6))
        assert weights[0].triu(1).sum() > 0.5  # queries attend to later keys (GPT's would be exactly 0)
        assert weights[1, :, :, 4:].abs().max() == 0  # no attention to padding


def test_inputs_embeds_match_input_ids(tiny):
    model = ScratchBertForMaskedLM(bert_config(tiny)).eval()
    x = ids(model.config)
    with torch.no_grad():
        torch.testing.assert_close(model(inputs_embeds=model.get_input_embeddings()(x)).logits, model(x).logits)


def test_segment_embeddings_change_the_output(tiny):
    model = ScratchBertModel(bert_config(tiny)).eval()
    x = ids(model.config, B=1, T=6)
    types = torch.tensor([[0, 0, 0, 1, 1, 1]])
    with torch.no_grad():
        default = model(x).last_hidden_state
        torch.testing.assert_close(model(x, token_type_ids=torch.zeros_like(x)).last_hidden_state, default)
        assert not torch.allclose(model(x, token_type_ids=types).last_hidden_state, default, atol=1e-4)


def test_pooler_is_tanh_of_dense_cls(tiny):
    model = ScratchBertModel(bert_config(tiny)).eval()
    assert ScratchBertModel(bert_config(tiny, add_pooling_layer=False)).pooler is None
    with torch.no_grad():
        out = model(ids(model.config))
    expected = torch.tanh(model.pooler.dense(out.last_hidden_state[:, 0]))
    torch.testing.assert_close(out.pooler_output, expected)


# --- heads -----------------------------------------------------------------------------------------------------


def test_mlm_head_is_tied_and_loss_counts_only_masked_positions(tiny):
    model = ScratchBertForMaskedLM(bert_config(tiny)).eval()
    assert model.lm_head.decoder.weight is model.get_input_embeddings().weight
    x = ids(model.config, B=2, T=8)
    labels = torch.full_like(x, -100)
    masked = torch.tensor([[0, 3], [1, 6]])  # (row, position) pairs that were masked
    labels[masked[:, 0], masked[:, 1]] = x[masked[:, 0], masked[:, 1]]
    out = model(x, labels=labels)
    assert out.logits.shape == (2, 8, model.config.vocab_size)
    expected = F.cross_entropy(out.logits[masked[:, 0], masked[:, 1]], x[masked[:, 0], masked[:, 1]])
    torch.testing.assert_close(out.loss, expected)
    # num_items_in_batch (from the Trainer) turns the mean into sum / N
    summed = model(x, labels=labels, num_items_in_batch=4).loss
    torch.testing.assert_close(summed, expected * 2 / 4)


def test_resizing_the_vocabulary_keeps_the_decoder_tied(tiny):
    model = ScratchBertForMaskedLM(bert_config(tiny))
    model.resize_token_embeddings(70, mean_resizing=False)  # e.g. after adding tokens to the tokenizer
    assert model.lm_head.decoder.weight is model.get_input_embeddings().weight
    assert model.lm_head.decoder.bias.shape == (70,) and model.config.vocab_size == 70
    x = torch.tensor([[2, 69, 3]])
    assert model(x, labels=x).logits.shape == (1, 3, 70)


def test_mlm_collator_labels_are_minus_100_except_masked(tokenizer, tiny):
    model = ScratchBertForMaskedLM(bert_config(tiny, vocab_size=len(tokenizer))).eval()
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=0.3, seed=0)
    lines = PROSE.joinpath("validation.txt").read_text(encoding="utf-8").splitlines()[:4]
    batch = collator([tokenizer(line, truncation=True, max_length=32) for line in lines])
    labels = batch["labels"]
    chosen = labels != -100
    assert chosen.any() and (~chosen).any()
    special = torch.isin(batch["input_ids"], torch.tensor(tokenizer.all_special_ids))
    assert not (chosen & special & (batch["input_ids"] != tokenizer.mask_token_id)).any()
    out = model(**batch)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits[chosen], labels[chosen]))


@pytest.mark.parametrize(
    "problem_type, make_labels, loss_fn",
    [
        ("single_label_classification", lambda: torch.tensor([0, 2]), lambda lg, y: F.cross_entropy(lg, y)),
        (
            "multi_label_classification",
            lambda: torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]),
            lambda lg, y: F.binary_cross_entropy_with_logits(lg, y),
        ),
        ("regression", lambda: torch.tensor([[0.5, -1.0, 2.0], [1.0, 0.0, 3.0]]), lambda lg, y: F.mse_loss(lg, y)),
    ],
)
def test_sequence_classification_problem_types(tiny, problem_type, make_labels, loss_fn):
    model = ScratchBertForSequenceClassification(bert_config(tiny, problem_type=problem_type)).eval()
    labels = make_labels()
    out = model(ids(model.config), labels=labels)
    assert out.logits.shape == (2, 3)
    torch.testing.assert_close(out.loss, loss_fn(out.logits, labels))


def test_sequence_classification_infers_problem_type(tiny):
    model = ScratchBertForSequenceClassification(bert_config(tiny)).eval()
    model(ids(model.config), labels=torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]))
    assert model.config.problem_type == "multi_label_classification"
    regression = ScratchBertForSequenceClassification(bert_config(tiny, num_labels=1, id2label=None, label2id=None))
    out = regression(ids(regression.config), labels=torch.tensor([0.3, -0.7]))
    assert regression.config.problem_type == "regression" and out.logits.shape == (2, 1)
    torch.testing.assert_close(out.loss, F.mse_loss(out.logits.squeeze(-1), torch.tensor([0.3, -0.7])))


def test_token_classification_loss_and_shape(tiny):
    model = ScratchBertForTokenClassification(bert_config(tiny)).eval()
    x = ids(model.config, B=2, T=7)
    labels = torch.randint(0, 3, (2, 7))
    labels[:, 0] = -100  # [CLS] and sub-word continuations are ignored
    out = model(x, labels=labels)
    assert out.logits.shape == (2, 7, 3)
    keep = labels != -100
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits[keep], labels[keep]))


def test_question_answering_loss_and_shape(tiny):
    model = ScratchBertForQuestionAnswering(bert_config(tiny)).eval()
    x = ids(model.config, B=3, T=7)
    starts, ends = torch.tensor([1, 2, 99]), torch.tensor([3, 2, 99])  # the third answer was truncated away
    out = model(x, start_positions=starts, end_positions=ends)
    assert out.start_logits.shape == out.end_logits.shape == (3, 7)
    expected = (F.cross_entropy(out.start_logits[:2], starts[:2]) + F.cross_entropy(out.end_logits[:2], ends[:2])) / 2
    torch.testing.assert_close(out.loss, expected)
    with pytest.raises(ValueError, match="end_positions"):
        model(x, start_positions=starts)


def test_return_dict_false_gives_tuples(tiny):
    model = ScratchBertForMaskedLM(bert_config(tiny)).eval()
    x = ids(model.config)
    loss, logits = model(x, labels=x, return_dict=False)
    torch.testing.assert_close(logits, model(x).logits)


# --- bad input -------------------------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_value_errors(tiny):
    config = bert_config(tiny)
    model = ScratchBertForMaskedLM(config).eval()
    x = ids(config, B=1, T=5)
    with pytest.raises(ValueError, match=r"token_type_ids.*id 2.*\[0, 1\]"):
        model(x, token_type_ids=torch.tensor([[0, 0, 1, 1, 2]]))
    with pytest.raises(ValueError, match=r"input_ids.*id 64.*\[0, 63\]"):
        model(torch.tensor([[2, 5, 64]]))
    with pytest.raises(ValueError, match=r"length 65 exceeds `max_position_embeddings`=64"):
        model(ids(config, B=1, T=65))
    with pytest.raises(ValueError, match=r"labels.*contains 64"):
        model(x, labels=torch.tensor([[-100, 64, -100, -100, -100]]))
    with pytest.raises(ValueError, match=r"labels.*shape"):
        model(x, labels=torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match=r"token_type_ids.*shape"):
        model(x, token_type_ids=torch.zeros(1, 4, dtype=torch.long))


# --- save / load -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("auto_class, model_class", HEADS)
def test_save_and_auto_load_round_trip(tiny, tmp_path, auto_class, model_class):
    model = model_class(bert_config(tiny)).eval()
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "scratch_bert"
    assert saved["auto_map"][auto_class.__name__] == f"modeling_scratch_bert.{model_class.__name__}"
    loaded = auto_class.from_pretrained(tmp_path).eval()
    assert type(loaded) is model_class
    x = ids(model.config)
    with torch.no_grad():
        for a, b in zip(model(x).to_tuple(), loaded(x).to_tuple()):
            torch.testing.assert_close(a, b)
    if model_class is ScratchBertForMaskedLM:
        assert loaded.lm_head.decoder.weight is loaded.get_input_embeddings().weight


@pytest.mark.parametrize("auto_class", [AutoModelForSequenceClassification, AutoModelForTokenClassification,
                                        AutoModelForQuestionAnswering, AutoModel])
def test_pretrained_mlm_body_loads_into_every_fine_tuning_head(tiny, tmp_path, auto_class):
    """The fine-tuning workflow: pre-train with MLM, then load the same checkpoint under a task head."""
    mlm = ScratchBertForMaskedLM(bert_config(tiny)).eval()
    mlm.save_pretrained(tmp_path)
    head = auto_class.from_pretrained(tmp_path).eval()
    body = head if auto_class is AutoModel else head.model
    x = ids(mlm.config)
    with torch.no_grad():
        torch.testing.assert_close(body(x).last_hidden_state, mlm.model(x).last_hidden_state)


def test_trust_remote_code_loads_without_the_package(tiny, tmp_path, run_without_package):
    x = ids(bert_config(tiny), B=2, T=6)
    torch.save(x, tmp_path / "x.pt")
    mlm = ScratchBertForMaskedLM(bert_config(tiny)).eval()
    qa = ScratchBertForQuestionAnswering(bert_config(tiny)).eval()
    mlm.save_pretrained(tmp_path / "mlm")
    qa.save_pretrained(tmp_path / "qa")
    stdout = run_without_package(
        f"""
        import torch
        from transformers import AutoModelForMaskedLM, AutoModelForQuestionAnswering
        x = torch.load({str(tmp_path / "x.pt")!r})
        mlm = AutoModelForMaskedLM.from_pretrained({str(tmp_path / "mlm")!r}, trust_remote_code=True).eval()
        qa = AutoModelForQuestionAnswering.from_pretrained({str(tmp_path / "qa")!r}, trust_remote_code=True).eval()
        with torch.no_grad():
            torch.save([mlm(x).logits, qa(x).start_logits, qa(x).end_logits], {str(tmp_path / "out.pt")!r})
        print(type(mlm).__module__, type(qa).__name__)
        """
    )
    assert stdout.startswith("transformers_modules.") and "ScratchBertForQuestionAnswering" in stdout
    logits, start, end = torch.load(tmp_path / "out.pt")
    with torch.no_grad():
        torch.testing.assert_close(logits, mlm(x).logits)
        qa_out = qa(x)
    torch.testing.assert_close(start, qa_out.start_logits)
    torch.testing.assert_close(end, qa_out.end_logits)


# --- pipelines -------------------------------------------------------------------------------------------------


def test_fill_mask_pipeline_matches_forward(tokenizer, tiny):
    model = ScratchBertForMaskedLM(bert_config(tiny, vocab_size=len(tokenizer))).eval()
    fill = pipeline("fill-mask", model=model, tokenizer=tokenizer)
    text = f"the {tokenizer.mask_token} statement is simple"
    results = fill(text, top_k=5)
    enc = tokenizer(text, return_tensors="pt")
    where = (enc["input_ids"][0] == tokenizer.mask_token_id).nonzero().item()
    with torch.no_grad():
        probs = model(**enc).logits[0, where].softmax(-1)
    top = probs.topk(5)
    assert [r["token"] for r in results] == top.indices.tolist()
    torch.testing.assert_close(torch.tensor([r["score"] for r in results]), top.values, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("problem_type", ["single_label_classification", "multi_label_classification"])
def test_text_classification_pipeline_matches_forward(tokenizer, tiny, problem_type):
    model = ScratchBertForSequenceClassification(
        bert_config(tiny, vocab_size=len(tokenizer), problem_type=problem_type)
    ).eval()
    classify = pipeline("text-classification", model=model, tokenizer=tokenizer)
    texts = ["the assert statement", "a module is a file containing python definitions and statements"]
    results = classify(texts, top_k=None)
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    probs = logits.softmax(-1) if problem_type == "single_label_classification" else logits.sigmoid()
    for row, result in zip(probs, results):
        scores = {r["label"]: r["score"] for r in result}
        assert set(scores) == set(LABELS.values())
        torch.testing.assert_close(torch.tensor([scores[LABELS[i]] for i in range(3)]), row, atol=1e-6, rtol=1e-5)
        assert result[0]["label"] == LABELS[int(row.argmax())]


def test_token_classification_pipeline_matches_forward(tokenizer, tiny):
    model = ScratchBertForTokenClassification(bert_config(tiny, vocab_size=len(tokenizer))).eval()
    tag = pipeline("token-classification", model=model, tokenizer=tokenizer, ignore_labels=[])
    text = "The assert statement raises AssertionError"
    entities = tag(text)
    enc = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        probs = model(**enc).logits[0].softmax(-1)  # (T, 3)
    real = [i for i, t in enumerate(enc["input_ids"][0].tolist()) if t not in tokenizer.all_special_ids]
    assert [e["index"] for e in entities] == real
    for e in entities:
        assert e["entity"] == LABELS[int(probs[e["index"]].argmax())]
        assert e["score"] == pytest.approx(float(probs[e["index"]].max()), rel=1e-5)
        assert e["word"] == tokenizer.convert_ids_to_tokens(int(enc["input_ids"][0, e["index"]]))


def test_feature_extraction_pipeline_matches_forward(tokenizer, tiny):
    model = ScratchBertModel(bert_config(tiny, vocab_size=len(tokenizer))).eval()
    extract = pipeline("feature-extraction", model=model, tokenizer=tokenizer)
    text = "Assert statements are a convenient way to insert debugging assertions"
    features = torch.tensor(extract(text))  # (1, T, C)
    with torch.no_grad():
        hidden = model(**tokenizer(text, return_tensors="pt")).last_hidden_state
    torch.testing.assert_close(features, hidden, atol=1e-6, rtol=1e-5)


# --- pre-training ----------------------------------------------------------------------------------------------


def test_trainer_mlm_pretraining_lowers_the_loss(tokenizer, tiny, tmp_path):
    from datasets import load_dataset

    raw = load_dataset("text", data_files={"train": str(PROSE / "train.txt")})["train"].select(range(800))
    blocks = tokenize_and_group(raw, tokenizer, block_size=32, add_labels=False)
    config = bert_config(tiny, vocab_size=len(tokenizer), max_position_embeddings=32)
    model = ScratchBertForMaskedLM(config)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, seed=0)
    fixed = collator([blocks[i] for i in range(32)])  # one masked batch, scored before and after

    def loss() -> float:
        model.eval()
        with torch.no_grad():
            return model(**fixed).loss.item()

    before = loss()
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=60, per_device_train_batch_size=16, learning_rate=3e-3,
        warmup_steps=3, report_to=[], use_cpu=True, save_strategy="no", logging_strategy="no", seed=0,
        disable_tqdm=True,
    )
    Trainer(model=model, args=args, train_dataset=blocks, data_collator=collator).train()
    after = loss()
    assert before == pytest.approx(math.log(len(tokenizer)), abs=0.5)  # an untrained model is near uniform
    assert after < before - 0.5, (before, after)  # > 0.5 nats: perplexity down by more than 39%


def _load_run_mlm():
    from scratchformers.examples import run_mlm

    return run_mlm


def test_run_mlm_help_lists_model_data_and_training_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _load_run_mlm().main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--config", "--model_name_or_path", "--tokenizer_name", "--train_file", "--validation_file",
                 "--mlm_probability", "--max_seq_length", "--learning_rate", "--output_dir"):
        assert flag in text


def test_run_mlm_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    metrics = _load_run_mlm().main([
        "--config", str(REPO / "configs" / "bert-tiny.json"), "--output_dir", str(out), "--vocab_size", "300",
        "--max_seq_length", "32", "--max_steps", "3", "--per_device_train_batch_size", "4", "--max_eval_samples", "8",
        "--per_device_eval_batch_size", "8", "--report_to", "none", "--use_cpu", "--save_strategy", "no",
        "--disable_tqdm", "true",
    ])
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["eval_loss"]))
    assert f"{metrics['perplexity']:.2f}" in capsys.readouterr().out
    model = AutoModelForMaskedLM.from_pretrained(out)
    assert isinstance(model, ScratchBertForMaskedLM) and model.config.vocab_size == 300
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    assert tok.mask_token == "[MASK]" and len(tok) == 300
    assert json.loads((out / "config.json").read_text())["auto_map"]["AutoModelForMaskedLM"].endswith("ForMaskedLM")
