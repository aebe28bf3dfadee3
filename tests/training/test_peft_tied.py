"""peft on tied embeddings (issue 22): each peft option that trains the embedding of a tied model behaves on our
decoder exactly as on transformers' `LlamaForCausalLM` with the same weights — the same trainable parameter count,
the same warnings, the same logits after a few optimizer steps, the same tying (kept or undone) after
`merge_and_unload`, and a save + reload that gives back the merged model.

peft finds the embedding and its tied output layer by name (`EMBEDDING_LAYER_NAMES`: `embed_tokens`, `lm_head`) and
through `get_input_embeddings()` / `_tied_weights_keys`; our token table is `…embeddings.embed_tokens` for that.
"""

from __future__ import annotations

import copy
import json
import warnings
from dataclasses import dataclass

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file
from twin_helpers import perturb

from scratchformers import ScratchGPTForCausalLM
from scratchformers.convert import from_hf
from scratchformers.safe_loading import check_checkpoint_folder

peft = pytest.importorskip("peft")

# Float32 rounding only: our attention projects q, k, v with one fused matrix and HF's with three, so sums are taken
# in another order (~1e-7 at the start); five SGD steps at lr 0.5 on these tiny models grow it to ~4e-6.
STATE_TOLERANCE = 1e-4
# merge_and_unload adds the adapter into the weights (another rounding); save + reload itself is exact.
MERGE_TOLERANCE = 1e-5
# LoRA on a projection of the same shape in both twins (Llama's o_proj = our out_proj, BART's fc2 = our fc_out),
# created in the same order, so one seed gives both models the same adapter initialisation.
LORA_TARGET = {"llama": "o_proj", "ours": "out_proj", "bart": "fc2", "ours-seq2seq": "fc_out"}


def twins() -> tuple[torch.nn.Module, torch.nn.Module]:
    """(LlamaForCausalLM with tied embeddings, our converted decoder) with the same weights."""
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=True,
    )
    hf = perturb(transformers.LlamaForCausalLM(config), scale=0.05)
    ours = from_hf(hf).eval()
    assert ours.lm_head.weight is ours.get_input_embeddings().weight
    return hf, ours


def embedding_name(model: torch.nn.Module) -> str:
    """What a user writes in `modules_to_save` for the input embedding: its module's own name (as `print(model)`
    shows it)."""
    embedding = model.get_input_embeddings()
    return next(name for name, module in model.named_modules() if module is embedding).rsplit(".", 1)[-1]


@dataclass
class FineTuned:
    trainable: int
    warnings: list[str]
    logits: torch.Tensor  # (B, T, V) of the adapted model after training
    tied: bool  # after merge_and_unload: the output layer is the input embedding, or equal to it
    tie_word_embeddings: bool  # the merged model's config
    merged_logits: torch.Tensor
    reloaded_tied: bool
    reloaded_logits: torch.Tensor


def fine_tune(model: torch.nn.Module, kind: str, tmp_path, steps: int = 5, target: list[str] | None = None,
              batch: dict | None = None, **options) -> FineTuned:
    """LoRA(r=4) on `LORA_TARGET[kind]` (+ `target`) with the peft `options`, `steps` SGD steps on one `batch`
    (default: 2 random rows of 10 tokens, labels = inputs), then merge_and_unload, save_pretrained and
    from_pretrained."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.manual_seed(1)
        config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=[LORA_TARGET[kind], *(target or [])],
                                 **options)
        adapted = peft.get_peft_model(copy.deepcopy(model), config)
    trainable = [p for p in adapted.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.5)
    if batch is None:
        torch.manual_seed(2)
        x = torch.randint(3, 64, (2, 10))
        batch = dict(input_ids=x, labels=x)
    adapted.train()
    for _ in range(steps):
        adapted(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    adapted.eval()
    with torch.no_grad():
        logits = adapted(**batch).logits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peft's "no longer tied after merging" is reported through `tied` below
        merged = adapted.merge_and_unload()
    E, W = merged.get_input_embeddings().weight, merged.get_output_embeddings().weight
    with torch.no_grad():
        merged_logits = merged(**batch).logits
    merged.save_pretrained(tmp_path / kind)
    reloaded = type(merged).from_pretrained(tmp_path / kind).eval()
    with torch.no_grad():
        reloaded_logits = reloaded(**batch).logits
    return FineTuned(
        trainable=sum(p.numel() for p in trainable),
        warnings=sorted({str(w.message) for w in caught if "tie" in str(w.message) or "tying" in str(w.message)}),
        logits=logits,
        tied=E is W or torch.equal(E, W),
        tie_word_embeddings=merged.config.tie_word_embeddings,
        merged_logits=merged_logits,
        reloaded_tied=reloaded.get_input_embeddings().weight is reloaded.get_output_embeddings().weight,
        reloaded_logits=reloaded_logits,
    )


def assert_same_as_llama(hf: FineTuned, ours: FineTuned, tied: bool, merge_is_exact: bool = True) -> None:
    """`merge_is_exact`: merge_and_unload gives the model that was trained (False where peft itself does not, for
    HF's Llama as for ours: then the two merged models must still agree)."""
    assert ours.trainable == hf.trainable
    assert ours.warnings == hf.warnings
    assert (ours.logits - hf.logits).abs().max() < STATE_TOLERANCE
    assert (ours.merged_logits - hf.merged_logits).abs().max() < STATE_TOLERANCE
    assert (ours.tied, ours.tie_word_embeddings, ours.reloaded_tied) == (hf.tied, hf.tie_word_embeddings,
                                                                         hf.reloaded_tied) == (tied, tied, tied)
    for run in (hf, ours):
        assert torch.equal(run.reloaded_logits, run.merged_logits)  # save + reload is exact
        if merge_is_exact:
            assert (run.merged_logits - run.logits).abs().max() < MERGE_TOLERANCE


def test_our_embedding_has_the_name_peft_recognises():
    hf, ours = twins()
    assert embedding_name(ours) == embedding_name(hf) == "embed_tokens"
    assert embedding_name(ours) in peft.utils.constants.EMBEDDING_LAYER_NAMES


def test_modules_to_save_with_ensure_weight_tying_keeps_the_embedding_tied_as_llama_does(tmp_path):
    """The embedding named as a user reads it off each model (then the output layer, peft's other spelling): the
    output layer trains with it, and no warning."""
    hf, ours = twins()
    for name in (embedding_name, lambda model: "lm_head"):
        runs = [fine_tune(model, kind, tmp_path, modules_to_save=[name(model)], ensure_weight_tying=True)
                for model, kind in ((hf, "llama"), (ours, "ours"))]
        assert runs[0].warnings == []
        assert_same_as_llama(*runs, tied=True)


@pytest.mark.parametrize("layer", ["embed_tokens", "lm_head"])
def test_modules_to_save_without_ensure_weight_tying_unties_with_llamas_warning_and_saves_both_tables(tmp_path, layer):
    """The untie peft warns about: the named layer trains, the other keeps its weights, and the merged model
    (`tie_word_embeddings=False`) saves and reloads both."""
    hf, ours = twins()
    runs = [fine_tune(model, kind, tmp_path, modules_to_save=[layer])
            for model, kind in ((hf, "llama"), (ours, "ours"))]
    assert any("ensure_weight_tying" in w for w in runs[0].warnings)
    assert_same_as_llama(*runs, tied=False)


def test_lora_on_the_embedding_with_ensure_weight_tying_ties_the_output_adapter(tmp_path):
    """The embedding named as a user reads it off each model, as a LoRA target. peft 0.21.2 merges the tied pair's
    one adapter into the shared table twice (once through the embedding, once through the output layer), so the
    merged model is not the trained one — for HF's Llama exactly as for ours."""
    hf, ours = twins()
    runs = [fine_tune(model, kind, tmp_path, target=[embedding_name(model)], ensure_weight_tying=True)
            for model, kind in ((hf, "llama"), (ours, "ours"))]
    assert_same_as_llama(*runs, tied=True, merge_is_exact=False)


@pytest.mark.parametrize("ensure_weight_tying", [True, False])
def test_trainable_token_indices_of_both_tied_layers_train_the_same_rows(tmp_path, ensure_weight_tying):
    """peft's spelling for a tied model: the same indices for `embed_tokens` and `lm_head`."""
    hf, ours = twins()
    runs = [fine_tune(model, kind, tmp_path, trainable_token_indices={"embed_tokens": [3, 5, 7], "lm_head": [3, 5, 7]},
                      ensure_weight_tying=ensure_weight_tying)
            for model, kind in ((hf, "llama"), (ours, "ours"))]
    assert_same_as_llama(*runs, tied=True)


def test_a_checkpoint_saved_with_the_old_embedding_name_loads(tmp_path):
    """Before the rename the table was saved as `model.decoder.embeddings.tokens.weight`: the command line's
    checkpoint check, from_pretrained and torch's load_state_dict (the Trainer resuming a run) all take it."""
    _, ours = twins()
    ours.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    old = {k.replace(".embeddings.embed_tokens.", ".embeddings.tokens."): v for k, v in weights.items()}
    assert "model.decoder.embeddings.tokens.weight" in old
    save_file(old, tmp_path / "model.safetensors", metadata={"format": "pt"})
    check_checkpoint_folder(tmp_path)
    loaded = ScratchGPTForCausalLM.from_pretrained(tmp_path)
    assert torch.equal(loaded.get_input_embeddings().weight, ours.get_input_embeddings().weight)
    assert loaded.lm_head.weight is loaded.get_input_embeddings().weight
    fresh = ScratchGPTForCausalLM(ours.config)
    result = fresh.load_state_dict(old, strict=False)
    assert result.unexpected_keys == [] and set(result.missing_keys) <= {"lm_head.weight"}
    assert torch.equal(fresh.get_input_embeddings().weight, ours.get_input_embeddings().weight)



def test_bert_mlm_keeps_its_tie_with_modules_to_save_and_ensure_weight_tying(tmp_path):
    """BERT's MLM decoder is tied to the token table: named as a user reads it off the model, the table trains and
    the tie holds through merge, save and reload. The reference is the adapted model itself: HF's BERT calls its
    table `word_embeddings`, which peft does not recognise (it warns and unties)."""
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=32, hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0)
    model = from_hf(perturb(transformers.BertForMaskedLM(config), scale=0.05))
    run = fine_tune(model, "ours", tmp_path, modules_to_save=[embedding_name(model)], ensure_weight_tying=True)
    assert run.warnings == []
    assert run.trainable == 4 * 4 * 32 + model.get_input_embeddings().weight.numel()  # LoRA (2 layers) + the table
    assert (run.tied, run.tie_word_embeddings, run.reloaded_tied) == (True, True, True)
    assert (run.merged_logits - run.logits).abs().max() < MERGE_TOLERANCE
    assert torch.equal(run.reloaded_logits, run.merged_logits)


def test_encoder_decoder_trainable_token_indices_train_the_shared_rows_as_bart_does(tmp_path):
    """One table feeds the encoder, the decoder and the output layer: peft's list form (the rows of the input
    embedding) trains one delta that all three read. (`modules_to_save` with `ensure_weight_tying` is not for
    encoder-decoders: peft 0.21.2 ties the decoder's embedding as if it were an output layer and the forward fails,
    on HF's BART as on ours; and `{"embed_tokens": ids}` matches both stacks' tables, which then train apart.)"""
    torch.manual_seed(0)
    config = transformers.BartConfig(vocab_size=64, d_model=32, encoder_layers=1, decoder_layers=1,
                                     encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_attention_heads=4,
                                     decoder_attention_heads=4, max_position_embeddings=32, dropout=0.0,
                                     attention_dropout=0.0, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                                     decoder_start_token_id=2, forced_eos_token_id=None)
    hf = perturb(transformers.BartForConditionalGeneration(config), scale=0.05)
    ours = from_hf(hf).eval()
    batch = dict(input_ids=torch.randint(3, 64, (2, 10)), labels=torch.randint(3, 64, (2, 7)))
    runs = [fine_tune(model, kind, tmp_path, batch=batch, trainable_token_indices=[3, 5, 7])
            for model, kind in ((hf, "bart"), (ours, "ours-seq2seq"))]
    assert_same_as_llama(*runs, tied=True)


def test_an_adapter_saved_with_the_old_embedding_name_loads(tmp_path):
    """`train sft --lora_r` saves the added chat tokens' rows as peft's trainable tokens of the input embedding; an
    adapter saved before the rename names `…embeddings.tokens` and loads onto today's model with the same logits."""
    _, ours = twins()
    torch.manual_seed(1)
    adapted = peft.get_peft_model(copy.deepcopy(ours), peft.LoraConfig(
        r=4, target_modules=["out_proj"], init_lora_weights=False, trainable_token_indices={"embed_tokens": [3, 5]}))
    with torch.no_grad():
        for name, p in adapted.named_parameters():
            if "trainable_tokens_delta" in name:
                p.add_(1.0)
    adapted.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "adapter_model.safetensors")
    assert any(".embeddings.embed_tokens." in k for k in weights)
    save_file({k.replace(".embeddings.embed_tokens.", ".embeddings.tokens."): v for k, v in weights.items()},
              tmp_path / "adapter_model.safetensors", metadata={"format": "pt"})
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    config["trainable_token_indices"] = {"tokens": [3, 5]}
    (tmp_path / "adapter_config.json").write_text(json.dumps(config))
    loaded = peft.PeftModel.from_pretrained(copy.deepcopy(ours), tmp_path)
    x = torch.randint(3, 64, (2, 10))
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=x).logits, adapted.eval()(input_ids=x).logits)
