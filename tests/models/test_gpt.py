"""The GPT family at every point a user touches it: forward, masks, cache, generate, save/load, remote code,
Trainer, pipelines and bad input."""

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    Trainer,
    TrainingArguments,
    pipeline,
)

from scratchformers import (
    ScratchGPTConfig,
    ScratchGPTForCausalLM,
    ScratchGPTForSequenceClassification,
    ScratchGPTModel,
)
from scratchformers.data import DATA_DIR
from scratchformers.tokenization import train_tokenizer


def lm(tiny, **kw) -> ScratchGPTForCausalLM:
    return ScratchGPTForCausalLM(ScratchGPTConfig(**(tiny | kw))).eval()


def ids(batch=2, length=8, vocab=64):
    return torch.randint(3, vocab, (batch, length))


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([DATA_DIR / "prose" / "validation.txt"], kind="bpe", vocab_size=300)


# --- configuration -------------------------------------------------------------------------------------------------


def test_config_accepts_the_papers_names_as_aliases():
    c = ScratchGPTConfig(d_model=48, d_ff=96, num_heads=6, num_layers=3)
    assert (c.hidden_size, c.intermediate_size, c.num_attention_heads, c.num_hidden_layers) == (48, 96, 6, 3)
    assert c.d_model == 48 and AutoConfig.for_model("scratch_gpt").model_type == "scratch_gpt"


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("activation", "tanh", "relu"),
        ("norm_placement", "middle", "pre"),
        ("position_embedding_type", "alibi", "sinusoidal"),
        ("hidden_size", 30, "divisible"),
        ("num_hidden_layers", 0, "positive"),
        ("hidden_dropout_prob", 1.5, "[0, 1)"),
    ],
)
def test_bad_config_values_raise_value_error_naming_field_and_allowed(field, value, allowed):
    with pytest.raises(ValueError, match=field) as err:
        ScratchGPTConfig(**{field: value, "num_attention_heads": 4})
    assert allowed in str(err.value)


# --- the causal language model -----------------------------------------------------------------------------------


def test_decoder_cannot_see_the_future(tiny):
    model = lm(tiny)
    x = ids(1, 10)
    changed = x.clone()
    changed[0, 6:] = torch.randint(3, 64, (4,))
    a, b = model(x).logits, model(changed).logits
    torch.testing.assert_close(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])


@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_does_not_change_real_tokens_logits(tiny, side):
    model = lm(tiny)
    short, long = ids(1, 5), ids(1, 8)
    pad = torch.zeros(1, 3, dtype=torch.long)
    batch = torch.cat([torch.cat([pad, short], 1) if side == "left" else torch.cat([short, pad], 1), long])
    mask = (batch != 0).long()
    out = model(batch, attention_mask=mask).logits
    real = slice(3, 8) if side == "left" else slice(0, 5)
    torch.testing.assert_close(out[0, real], model(short).logits[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[1], model(long).logits[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("position_embedding_type", ["learned", "sinusoidal"])
@pytest.mark.parametrize("norm_placement", ["pre", "post"])
def test_eager_and_sdpa_agree(tiny, position_embedding_type, norm_placement):
    model = lm(tiny, position_embedding_type=position_embedding_type, norm_placement=norm_placement)
    x = ids(3, 9)
    mask = torch.ones_like(x)
    mask[0, :4] = 0
    mask[1, 7:] = 0
    model.set_attn_implementation("eager")
    eager = model(x, attention_mask=mask).logits
    eager_nomask = model(x).logits
    model.set_attn_implementation("sdpa")
    assert model.config._attn_implementation == "sdpa"
    torch.testing.assert_close(model(x, attention_mask=mask).logits, eager, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(x).logits, eager_nomask, atol=1e-5, rtol=1e-5)


def test_loss_is_next_token_cross_entropy_ignoring_minus_100(tiny):
    model = lm(tiny)
    x = ids(2, 6)
    labels = x.clone()
    labels[0, 3:] = -100
    out = model(x, labels=labels)
    logits, target = out.logits[:, :-1], labels[:, 1:]
    keep = target != -100
    expected = torch.nn.functional.cross_entropy(logits[keep], target[keep])
    torch.testing.assert_close(out.loss, expected)
    summed = model(x, labels=labels, num_items_in_batch=keep.sum() * 2).loss  # Trainer's accumulation-aware norm
    torch.testing.assert_close(summed, expected / 2)


def test_hidden_states_and_attentions_are_returned_on_request(tiny):
    model = lm(tiny)
    out = model(ids(2, 7), output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == tiny["num_hidden_layers"] + 1
    assert out.hidden_states[0].shape == (2, 7, 32)
    assert len(out.attentions) == tiny["num_hidden_layers"] and out.attentions[0].shape == (2, 4, 7, 7)
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(2, 4, 7))
    assert torch.all(out.attentions[1].triu(1) == 0)  # no weight on future tokens
    assert model(ids(2, 7), return_dict=False)[0].shape == (2, 7, 64)


def test_tiny_model_memorises_a_tiny_text(tiny):
    torch.manual_seed(0)
    model = ScratchGPTForCausalLM(ScratchGPTConfig(**tiny)).train()
    text = torch.tensor([[1, 5, 9, 12, 7, 30, 22, 5, 9, 40, 41, 42, 2]])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        loss = model(text, labels=text).loss
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert loss.item() < 0.1 * first
    generated = model.generate(text[:, :1], max_new_tokens=12, do_sample=False)
    assert generated.tolist() == text.tolist()


# --- generation ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{}, {"num_beams": 3}, {"num_beams": 2, "num_return_sequences": 2}])
def test_cached_generation_matches_uncached(tiny, kwargs):
    model = lm(tiny)
    x = ids(2, 5)
    mask = torch.ones_like(x)
    mask[0, :2] = 0
    cached = model.generate(x, attention_mask=mask, max_new_tokens=8, do_sample=False, **kwargs)
    uncached = model.generate(x, attention_mask=mask, max_new_tokens=8, do_sample=False, use_cache=False, **kwargs)
    assert torch.equal(cached, uncached)


def test_sampling_is_reproducible_and_respects_top_k(tiny):
    model = lm(tiny)
    x = ids(1, 4)
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        runs.append(model.generate(x, do_sample=True, top_k=5, top_p=0.9, temperature=0.8, max_new_tokens=6))
    assert torch.equal(*runs)
    torch.manual_seed(7)
    top1 = model.generate(x, do_sample=True, top_k=1, max_new_tokens=6)
    assert torch.equal(top1, model.generate(x, do_sample=False, max_new_tokens=6))


def test_left_padded_batch_generation_matches_one_by_one(tiny):
    model = lm(tiny)
    a, b = ids(1, 3), ids(1, 7)
    batch = torch.cat([torch.cat([torch.zeros(1, 4, dtype=torch.long), a], 1), b])
    mask = (batch != 0).long()
    together = model.generate(batch, attention_mask=mask, max_new_tokens=6, do_sample=False)[:, -6:]
    alone = [model.generate(t, max_new_tokens=6, do_sample=False)[:, -6:] for t in (a, b)]
    assert torch.equal(together, torch.cat(alone))


def test_torch_compile_gives_the_same_logits(tiny):
    model = lm(tiny)
    x = ids(2, 6)
    compiled = torch.compile(model, backend="aot_eager")
    torch.testing.assert_close(compiled(x).logits, model(x).logits, atol=1e-5, rtol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients(tiny):
    x = ids(2, 6)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = ScratchGPTForCausalLM(ScratchGPTConfig(**tiny)).train()
        if checkpointing:
            model.gradient_checkpointing_enable()
            assert model.is_gradient_checkpointing
        model(x, labels=x).loss.backward()
        grads.append(model.model.decoder.layers[0].ffn.fc_in.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


# --- save / load / Auto / remote code -----------------------------------------------------------------------------


def test_save_and_reload_through_auto_gives_identical_logits_and_tied_weights(tiny, tmp_path):
    model = lm(tiny)
    model.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)
    assert {"modeling_scratch_gpt.py", "configuration_scratch_gpt.py", "layers.py", "attention.py"} <= files
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is ScratchGPTForCausalLM
    x = ids(2, 6)
    torch.testing.assert_close(loaded(x).logits, model(x).logits)
    assert loaded.lm_head.weight.data_ptr() == loaded.model.decoder.embeddings.embed_tokens.weight.data_ptr()
    assert type(AutoModel.from_pretrained(tmp_path)) is ScratchGPTModel


def test_trust_remote_code_load_works_without_the_package(tiny, tmp_path, run_without_package):
    model = lm(tiny)
    model.save_pretrained(tmp_path / "ckpt")
    x = ids(1, 6)
    expected = model.generate(x, max_new_tokens=5, do_sample=False)
    out = run_without_package(
        f"""
        import torch
        from transformers import AutoModelForCausalLM
        m = AutoModelForCausalLM.from_pretrained({str(tmp_path / "ckpt")!r}, trust_remote_code=True).eval()
        assert "scratchformers" not in type(m).__module__, type(m).__module__
        print(m.generate(torch.tensor({x.tolist()}), max_new_tokens=5, do_sample=False).tolist())
        from transformers import AutoModel, AutoModelForSequenceClassification
        print(type(AutoModel.from_pretrained({str(tmp_path / "ckpt")!r}, trust_remote_code=True)).__name__)
        clf = AutoModelForSequenceClassification.from_pretrained({str(tmp_path / "ckpt")!r}, trust_remote_code=True)
        print(type(clf).__name__)
        """
    )
    generated, body, classifier = out.strip().splitlines()
    assert generated == str(expected.tolist())
    assert (body, classifier) == ("ScratchGPTModel", "ScratchGPTForSequenceClassification")


# --- sequence classification ----------------------------------------------------------------------------------------


def test_sequence_classification_reads_the_last_real_token_and_supports_problem_types(tiny):
    model = ScratchGPTForSequenceClassification(ScratchGPTConfig(**tiny, num_labels=3)).eval()
    x = ids(2, 6)
    padded = torch.cat([x, torch.zeros(2, 2, dtype=torch.long)], 1)
    mask = (padded != 0).long()
    torch.testing.assert_close(model(padded, attention_mask=mask).logits, model(x).logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(padded).logits, model(x).logits, atol=1e-5, rtol=1e-5)  # via pad_token_id
    single = model(x, labels=torch.tensor([0, 2]))
    assert single.logits.shape == (2, 3) and model.config.problem_type == "single_label_classification"
    torch.testing.assert_close(single.loss, torch.nn.functional.cross_entropy(single.logits, torch.tensor([0, 2])))
    multi = ScratchGPTForSequenceClassification(ScratchGPTConfig(**tiny, num_labels=3)).eval()
    out = multi(x, labels=torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]))
    assert multi.config.problem_type == "multi_label_classification" and out.loss > 0
    reg = ScratchGPTForSequenceClassification(ScratchGPTConfig(**tiny, num_labels=1)).eval()
    out = reg(x, labels=torch.tensor([0.5, -1.0]))
    torch.testing.assert_close(out.loss, torch.nn.functional.mse_loss(out.logits.squeeze(-1), torch.tensor([0.5, -1.0])))


# --- pipelines ---------------------------------------------------------------------------------------------------------


def test_text_generation_pipeline_matches_generate(tiny, tokenizer):
    config = ScratchGPTConfig(
        **(tiny | dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id))
        | dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    )
    model = ScratchGPTForCausalLM(config).eval()
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    prompt = "The import statement"
    text = generator(prompt, max_new_tokens=8, do_sample=False)[0]["generated_text"]
    direct = model.generate(**tokenizer(prompt, return_tensors="pt"), max_new_tokens=8, do_sample=False)
    assert text == tokenizer.decode(direct[0], skip_special_tokens=True)


def test_text_classification_pipeline_matches_forward(tiny, tokenizer):
    config = ScratchGPTConfig(
        **(tiny | dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)),
        id2label={0: "neg", 1: "pos"},
        label2id={"neg": 0, "pos": 1},
    )
    model = AutoModelForSequenceClassification.from_config(config).eval()
    classify = pipeline("text-classification", model=model, tokenizer=tokenizer)
    texts = ["A short one.", "A much longer sentence about the data model of Python objects."]
    results = classify(texts, batch_size=2)
    for text, result in zip(texts, results):
        probs = model(**tokenizer(text, return_tensors="pt")).logits.softmax(-1)[0]
        assert result["label"] == config.id2label[int(probs.argmax())]
        assert result["score"] == pytest.approx(float(probs.max().detach()), abs=1e-5)


# --- Trainer ---------------------------------------------------------------------------------------------------------


def _train(tiny, out_dir, max_steps, resume=None, save_steps=3):
    torch.manual_seed(0)
    model = ScratchGPTForCausalLM(ScratchGPTConfig(**tiny))
    data = [{"input_ids": ids(1, 12)[0], "labels": None} for _ in range(16)]
    for row in data:
        row["labels"] = row["input_ids"]
    args = TrainingArguments(
        output_dir=str(out_dir), max_steps=max_steps, per_device_train_batch_size=4, learning_rate=1e-3,
        save_steps=save_steps, save_strategy="steps", logging_steps=1, report_to=[], seed=0, use_cpu=True,
        dataloader_num_workers=0, disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=data)
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def test_trainer_trains_saves_checkpoints_and_resumes_to_the_same_weights(tiny, tmp_path):
    torch.manual_seed(123)
    full = _train(tiny, tmp_path / "full", max_steps=6)
    losses = [h["loss"] for h in full.state.log_history if "loss" in h]
    assert losses[-1] < losses[0]
    checkpoint = tmp_path / "full" / "checkpoint-3"
    assert (checkpoint / "model.safetensors").exists()
    torch.manual_seed(123)
    resumed = _train(tiny, tmp_path / "resumed", max_steps=6, resume=str(checkpoint))
    assert resumed.state.global_step == 6
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


# --- bad input ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: {"input_ids": torch.tensor([[1, 64]])}, ValueError, "outside the vocabulary"),
        (lambda: {"input_ids": torch.tensor([[1, -3]])}, ValueError, "outside the vocabulary"),
        (lambda: {"input_ids": torch.ones(1, 3)}, TypeError, "integer token ids"),
        (lambda: {"input_ids": torch.ones(0, 3, dtype=torch.long)}, ValueError, "empty"),
        (lambda: {"input_ids": torch.ones(1, 0, dtype=torch.long)}, ValueError, "empty"),
        (lambda: {"input_ids": torch.ones(1, 65, dtype=torch.long)}, ValueError, "max_position_embeddings"),
        (lambda: {"input_ids": torch.ones(2, 4, dtype=torch.long), "attention_mask": torch.ones(2, 5)}, ValueError, "shape"),
        (lambda: {"input_ids": torch.ones(2, 4, dtype=torch.long), "inputs_embeds": torch.ones(2, 4, 32)}, ValueError, "exactly one"),
        (lambda: {"input_ids": [[1, 2]]}, TypeError, "torch.Tensor"),
    ],
)
def test_bad_input_raises_a_clear_error_before_tensor_work(tiny, make, error, message):
    with pytest.raises(error, match=message):
        lm(tiny)(**make())


def test_any_kernel_registered_in_the_attention_interface_is_used(tiny):
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    calls = []

    def recording_attention(module, query, key, value, attention_mask, **kwargs):
        calls.append(attention_mask is None)
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register("recording_sdpa", recording_attention)
    model = lm(tiny)
    x = ids(2, 6)
    reference = model(x).logits
    model.set_attn_implementation("recording_sdpa")
    torch.testing.assert_close(model(x).logits, reference, atol=1e-5, rtol=1e-5)
    assert calls == [True] * tiny["num_hidden_layers"]  # no padding: the kernel applies causality itself


def test_flash_attention_gets_the_two_dimensional_padding_mask():
    from scratchformers.masks import attention_inputs

    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])

    def inputs(mask, weights):
        return attention_inputs(mask, 2, 4, 4, True, "flash_attention_2", torch.float32, torch.device("cpu"),
                                output_attentions=weights)

    assert torch.equal(inputs(mask, weights=False)[0], mask)
    assert inputs(torch.ones(2, 4), weights=False) == (None, {})
    assert inputs(mask, weights=True)[0].shape == (2, 1, 4, 4)  # eager for weights


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("num_beams", [1, 2])
def test_static_cache_generation_matches_the_dynamic_cache(tiny, implementation, num_beams):
    model = lm(tiny)
    model.set_attn_implementation(implementation)
    x = ids(2, 5)
    mask = torch.ones_like(x)
    mask[0, :2] = 0  # left padding: the static cache's mask must hide it and the unfilled slots
    kwargs = dict(attention_mask=mask, max_new_tokens=6, do_sample=False, num_beams=num_beams)
    static = model.generate(x, cache_implementation="static", **kwargs)
    assert torch.equal(static, model.generate(x, **kwargs))


def test_a_prepared_four_dimensional_mask_of_the_wrong_shape_is_refused(tiny):
    with pytest.raises(ValueError, match="4-D `attention_mask` must have shape"):
        lm(tiny)(ids(2, 5), attention_mask=torch.zeros(2, 1, 5, 4))
