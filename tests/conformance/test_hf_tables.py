"""transformers' static tables of model classes decide for ours as they decide for its own models.

Places that read transformers' `MODEL_FOR_*_MAPPING_NAMES` tables (or class-name patterns) instead of the model:
the Trainer's label-smoothing shift, `Trainer.create_model_card`'s task, pipelines' `check_model_type`, the Trainer's
token count for `num_items_in_batch` (loss type from the class name), generate()'s default-cache choice. Each is
checked against HF's own model of the same kind, in this process and in one that loads the checkpoint with
`trust_remote_code=True` and cannot import scratchformers. The list is in docs/compatibility.md.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
import transformers
from transformers import Trainer, TrainingArguments
from transformers.modelcard import TrainingSummary
from transformers.models.auto import modeling_auto
from transformers.models.auto.auto_factory import _LazyAutoMapping

from scratchformers import (
    ScratchBertConfig,
    ScratchBertForMaskedLM,
    ScratchBertForQuestionAnswering,
    ScratchBertForSequenceClassification,
    ScratchBertForTokenClassification,
    ScratchGPTConfig,
    ScratchGPTForCausalLM,
    ScratchGPTForSequenceClassification,
    ScratchRNNConfig,
    ScratchRNNForConditionalGeneration,
    ScratchTransformerConfig,
    ScratchTransformerForConditionalGeneration,
    shift_tokens_right,
)
from scratchformers.convert import to_hf

EPS = 0.1
SIZES = dict(vocab_size=64, hidden_size=32, num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
             hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=0, bos_token_id=1, eos_token_id=2)
SEQ2SEQ = dict(vocab_size=64, hidden_size=32, num_attention_heads=4, intermediate_size=64, encoder_layers=1,
               decoder_layers=1, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
               decoder_start_token_id=1, dropout=0.0, attention_dropout=0.0)


def gpt(cls=ScratchGPTForCausalLM, **extra):
    return cls(ScratchGPTConfig(**SIZES, num_hidden_layers=2, **extra)).eval()


def bert(cls, **extra):
    sizes = {k: v for k, v in SIZES.items() if k not in ("bos_token_id", "eos_token_id")}
    return cls(ScratchBertConfig(**sizes, num_hidden_layers=2, **extra)).eval()


def transformer_s2s():
    return ScratchTransformerForConditionalGeneration(ScratchTransformerConfig(**SEQ2SEQ)).eval()


def rnn_s2s():
    return ScratchRNNForConditionalGeneration(
        ScratchRNNConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, pad_token_id=0, bos_token_id=1,
                         eos_token_id=2, decoder_start_token_id=1)
    ).eval()


def trainer_for(model, tmp_path, **args) -> Trainer:
    return Trainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, **args))


def smoothed(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Label-smoothed cross-entropy (Szegedy et al. 2016): (1−ε)·(−log p(y)) + ε·mean_v(−log p(v)), over targets ≠ −100."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=-100,
                           label_smoothing=EPS)


def tokens(*shape: int) -> torch.Tensor:
    return torch.randint(3, 64, shape)


# --- the tables themselves ------------------------------------------------------------------------------------------


def test_every_auto_registration_is_in_transformers_name_table():
    """The whole kind: each class we register with an Auto class is in the name table that Auto class is built on
    (what `_get_name()`-based checks read), and the tables name nothing of ours that is not registered."""
    registered, tabled = set(), set()
    for name in dir(modeling_auto):
        mapping = getattr(modeling_auto, name)
        if not isinstance(mapping, _LazyAutoMapping):
            continue
        table = mapping._model_mapping
        for config_class, model_class in mapping._extra_content.items():
            if getattr(config_class, "model_type", "").startswith("scratch_"):
                registered.add((name, config_class.model_type, model_class.__name__))
        tabled |= {(name, key, value) for key, value in table.items() if key.startswith("scratch_")}
    assert len(registered) == 12  # GPT 3, BERT 5, Transformer 2, RNN 2
    assert tabled == registered


# --- Trainer: label smoothing shifts labels for causal LMs, and only for them -----------------------------------------


def test_trainer_label_smoothing_trains_next_token_prediction_like_gpt2(tmp_path):
    """With `label_smoothing_factor` the Trainer computes the loss from the logits itself, shifting labels only for
    classes in its causal-LM table: ours must get the next-token loss (else it learns to copy its input), equal to
    the formula and to GPT-2 with the same weights."""
    model = gpt()
    x = tokens(2, 10)
    labels = x.clone()
    labels[0, :3] = -100  # a masked prompt
    ours = trainer_for(model, tmp_path, label_smoothing_factor=EPS).compute_loss(model, {"input_ids": x, "labels": labels})
    hf = to_hf(model).eval()
    theirs = trainer_for(hf, tmp_path, label_smoothing_factor=EPS).compute_loss(hf, {"input_ids": x, "labels": labels})
    logits = model(x).logits
    expected = smoothed(logits[:, :-1], labels[:, 1:])  # position t predicts token t+1
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(ours, smoothed(logits, labels))  # the unshifted (copy-the-input) loss differs


def _seq2seq_inputs(x, labels):
    return {"input_ids": x, "decoder_input_ids": shift_tokens_right(labels, 0, 1), "labels": labels}


CASES = {  # model, inputs, how the logits line up with the labels
    "gpt-seq-cls": (lambda: gpt(ScratchGPTForSequenceClassification, num_labels=3),
                    lambda: {"input_ids": tokens(2, 8), "labels": torch.tensor([0, 2])}, None),
    "bert-mlm": (lambda: bert(ScratchBertForMaskedLM),
                 lambda: {"input_ids": tokens(2, 8), "labels": torch.where(torch.rand(2, 8) < 0.5, tokens(2, 8), -100)},
                 None),
    "bert-token-cls": (lambda: bert(ScratchBertForTokenClassification, num_labels=5),
                       lambda: {"input_ids": tokens(2, 8), "labels": torch.randint(0, 5, (2, 8))}, None),
    "bert-seq-cls": (lambda: bert(ScratchBertForSequenceClassification, num_labels=3),
                     lambda: {"input_ids": tokens(2, 8), "labels": torch.tensor([1, 2])}, None),
    "transformer-s2s": (transformer_s2s, lambda: _seq2seq_inputs(tokens(2, 7), tokens(2, 5)), None),
    "rnn-s2s": (rnn_s2s, lambda: _seq2seq_inputs(tokens(2, 7), tokens(2, 5)), None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_trainer_label_smoothing_keeps_aligned_labels_unshifted(case, tmp_path):
    """Heads whose logits already line up with their labels (classification, MLM, seq2seq decoders fed the
    right-shifted labels) must stay out of the causal-LM table: the Trainer's loss is the unshifted formula."""
    make_model, make_inputs, _ = CASES[case]
    model, inputs = make_model(), make_inputs()
    loss = trainer_for(model, tmp_path, label_smoothing_factor=EPS).compute_loss(model, dict(inputs))
    logits = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits
    torch.testing.assert_close(loss, smoothed(logits, inputs["labels"]))


def test_trainer_label_smoothing_on_a_peft_wrapped_model(tmp_path):
    """The Trainer reads the class name under a PEFT wrapper (`base_model.model._get_name()`): still shifted."""
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(gpt(), peft.LoraConfig(r=2, target_modules=["qkv_proj"], task_type="CAUSAL_LM"))
    x = tokens(2, 9)
    loss = trainer_for(model, tmp_path, label_smoothing_factor=EPS).compute_loss(model, {"input_ids": x, "labels": x})
    torch.testing.assert_close(loss, smoothed(model(input_ids=x).logits[:, :-1], x[:, 1:]))


@pytest.mark.parametrize("case", ["gpt", "transformer-s2s", "rnn-s2s", "bert-mlm"])
def test_trainer_counts_the_scored_tokens_for_num_items_in_batch(case, tmp_path):
    """The Trainer decides from the loss type (matched on the class name: `…ForCausalLM`, `…ForConditionalGeneration`)
    whether position 0 is never a target. Our seq2seq and MLM heads score every label: the count must be all of them
    (transformers 5.13 counted `labels[..., 1:]` for every `…ForConditionalGeneration`). Our causal LM is counted as
    HF's `LlamaForCausalLM` is (T−1 targets a row from 5.13 on; 5.6 counts all T for every model)."""
    if case == "gpt":
        model, x = gpt(), tokens(2, 8)
        llama = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=4, num_key_value_heads=4)
        inputs, reference = {"input_ids": x, "labels": x}, transformers.LlamaForCausalLM(llama)
    else:
        model, inputs = CASES[case][0](), CASES[case][1]()
        reference = int((inputs["labels"] != -100).sum())

    def count(m):
        return trainer_for(m, tmp_path).get_batch_samples(iter([dict(inputs)]), 1, torch.device("cpu"))[1]

    counted = count(model)
    assert counted is not None  # every one of these heads takes `num_items_in_batch`
    assert int(counted) == (int(count(reference)) if case == "gpt" else reference)


# --- model card ------------------------------------------------------------------------------------------------------

CARD_CASES = [
    (lambda: gpt(), transformers.GPT2LMHeadModel),
    (lambda: gpt(ScratchGPTForSequenceClassification), transformers.GPT2ForSequenceClassification),
    (lambda: bert(ScratchBertForMaskedLM), transformers.BertForMaskedLM),
    (lambda: bert(ScratchBertForSequenceClassification), transformers.BertForSequenceClassification),
    (lambda: bert(ScratchBertForTokenClassification), transformers.BertForTokenClassification),
    (lambda: bert(ScratchBertForQuestionAnswering), transformers.BertForQuestionAnswering),
    (transformer_s2s, transformers.BartForConditionalGeneration),
    (rnn_s2s, transformers.BartForConditionalGeneration),
]


@pytest.mark.parametrize("make_model, hf_class", CARD_CASES, ids=lambda v: getattr(v, "__name__", ""))
def test_trainer_model_card_names_the_same_task_as_hf_models(make_model, hf_class, tmp_path):
    """`Trainer.create_model_card` takes the card's task from the class-name tables: ours get HF's task."""
    model = make_model()
    hf_model = hf_class(hf_class.config_class(vocab_size=64, hidden_size=32, num_attention_heads=4, num_hidden_layers=1,
                                              intermediate_size=64, n_embd=32, n_head=4, n_layer=1, d_model=32,
                                              encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
                                              decoder_attention_heads=4, pad_token_id=0))
    ours = TrainingSummary.from_trainer(trainer_for(model, tmp_path)).tasks
    expected = TrainingSummary.from_trainer(trainer_for(hf_model, tmp_path)).tasks
    assert ours == expected and expected is not None


# --- pipelines ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "task, make_model",
    [
        ("text-generation", lambda: gpt()),
        ("text-classification", lambda: gpt(ScratchGPTForSequenceClassification)),
        ("text-classification", lambda: bert(ScratchBertForSequenceClassification)),
        ("token-classification", lambda: bert(ScratchBertForTokenClassification)),
    ],
)
def test_pipelines_accept_our_classes_without_an_error(task, make_model, caplog):
    """`Pipeline.check_model_type` logs an error for a class outside the task's table (and its registrations)."""
    pipe_class = {
        "text-generation": transformers.TextGenerationPipeline,
        "text-classification": transformers.TextClassificationPipeline,
        "token-classification": transformers.TokenClassificationPipeline,
    }[task]
    model = make_model()
    pipe = pipe_class.__new__(pipe_class)
    pipe.model, pipe.task = model, task
    supported = {
        "text-generation": modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        "text-classification": modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
        "token-classification": modeling_auto.MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES,
    }[task]
    with caplog.at_level("ERROR"):
        pipe.check_model_type(supported)
    assert "is not supported" not in caplog.text


# --- the same, in a process that loads the checkpoint through remote code ------------------------------------------------


def test_tables_hold_in_a_remote_code_process_without_the_package(tmp_path, run_without_package):
    """Loaded with trust_remote_code=True where `import scratchformers` fails: the label-smoothed Trainer loss is the
    next-token loss, the card's task is text-generation, and a pipeline given a class of the checkpoint's code that
    no Auto class registered (loaded directly) does not refuse it."""
    model = gpt()
    model.save_pretrained(tmp_path / "ckpt")
    x = tokens(2, 10)
    expected = smoothed(model(x).logits[:, :-1], x[:, 1:])
    out = run_without_package(
        f"""
        import json, logging, os, sys
        os.environ["HF_MODULES_CACHE"] = {str(tmp_path / "modules")!r}  # not shared with other runs' "ckpt" code
        import torch
        import transformers
        from transformers import AutoModel, AutoModelForCausalLM, Trainer, TrainingArguments
        from transformers.modelcard import TrainingSummary
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        from transformers.pipelines import TextGenerationPipeline
        path = {str(tmp_path / "ckpt")!r}
        body = AutoModel.from_pretrained(path, trust_remote_code=True)  # registers only the body class
        cls = sys.modules[type(body).__module__].ScratchGPTForCausalLM  # the checkpoint's code, never registered
        direct = cls.from_pretrained(path).eval()
        assert "scratchformers" not in type(direct).__module__
        pipe = TextGenerationPipeline.__new__(TextGenerationPipeline)
        pipe.model, pipe.task = direct, "text-generation"
        errors = []
        handler = logging.Handler(); handler.emit = lambda record: errors.append(record.getMessage())
        transformers.utils.logging.get_logger("transformers.pipelines.base").addHandler(handler)
        pipe.check_model_type(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
        model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True).eval()
        args = TrainingArguments(output_dir={str(tmp_path / "out")!r}, report_to=[], use_cpu=True,
                                 label_smoothing_factor={EPS})
        trainer = Trainer(model=model, args=args)
        x = torch.tensor({x.tolist()})
        loss = trainer.compute_loss(model, {{"input_ids": x, "labels": x.clone()}})
        print(json.dumps({{"loss": loss.item(), "task": TrainingSummary.from_trainer(trainer).tasks,
                          "errors": errors}}))
        """
    )
    result = json.loads(out.strip().splitlines()[-1])
    assert result["loss"] == pytest.approx(expected.item(), abs=1e-5)
    assert result["task"] == "text-generation"
    assert result["errors"] == []
    assert math.isfinite(result["loss"])


# --- the training script ------------------------------------------------------------------------------------------------


def test_train_clm_with_label_smoothing_reports_the_real_perplexity(tmp_path):
    """`scratchformers train clm --label_smoothing_factor 0.1` reports exp(unsmoothed next-token loss) on the
    validation file: the same number `scratchformers.examples.evaluate.perplexity` measures on the saved checkpoint."""
    from journey_helpers import tiny_config_file

    from scratchformers.data import DATA_DIR
    from scratchformers.examples.evaluate import perplexity
    from scratchformers_cli import main

    lines = (DATA_DIR / "prose" / "train.txt").read_text().splitlines()
    train, valid = tmp_path / "train.txt", tmp_path / "valid.txt"
    train.write_text("\n".join(lines[:100]))
    valid.write_text("\n".join(lines[100:130]))
    out = tmp_path / "clm"
    code = main([
        "train", "clm", "--config", str(tiny_config_file(tmp_path)), "--train_file", str(train),
        "--validation_file", str(valid), "--vocab_size", "300", "--block_size", "16", "--output_dir", str(out),
        "--max_steps", "3", "--max_train_samples", "24", "--label_smoothing_factor", "0.1", "--report_to", "none",
        "--use_cpu", "true", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8",
        "--save_strategy", "no", "--disable_tqdm", "true",
    ])  # fmt: skip
    assert code in (0, None)
    reported = json.loads((out / "all_results.json").read_text())
    measured = perplexity(out, valid, block_size=16)
    assert reported["perplexity"] == pytest.approx(measured["perplexity"], rel=1e-4)
