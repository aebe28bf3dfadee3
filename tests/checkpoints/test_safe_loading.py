"""Safe loading: only safetensors are written; loading never unpickles or runs a folder's code; truncated or corrupt
files and configs that do not match the weights fail with a ValueError naming the file and the mismatch."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from families import FAMILIES as ALL_FAMILIES
from families import RNN_TINY, TINY
from safetensors.torch import load_file, save_file

from scratchformers import (
    ScratchGPTConfig,
    ScratchGPTForCausalLM,
    ScratchGPTForSequenceClassification,
    ScratchGPTModel,
    ScratchRNNConfig,
)
from scratchformers.safe_loading import check_checkpoint_folder, load_checked, read_safetensors_header

# One line per family: (config class, every model class of it, each of which saves and loads).
FAMILIES = [(family.config_class, family.classes) for family in ALL_FAMILIES.values()]
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


class Booby:
    """Unpickling this creates the file `path`: proof that code ran."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def saved(tmp_path: Path, model_class=ScratchGPTForCausalLM, name: str = "ckpt", **config) -> Path:
    torch.manual_seed(0)
    model = model_class(ScratchGPTConfig(**{**TINY, **config}))
    model.save_pretrained(tmp_path / name)
    return tmp_path / name


def edit_config(folder: Path, **changes) -> None:
    path = folder / "config.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("config_class, model_classes", FAMILIES, ids=lambda x: getattr(x, "model_type", ""))
def test_save_pretrained_writes_only_safetensors_and_loads_back_exactly(tmp_path, config_class, model_classes):
    for model_class in model_classes:
        torch.manual_seed(0)
        model = model_class(config_class(**(RNN_TINY if config_class is ScratchRNNConfig else TINY))).eval()
        folder = tmp_path / model_class.__name__
        model.save_pretrained(folder)
        names = os.listdir(folder)
        assert not [n for n in names if n.endswith(PICKLE_SUFFIXES)], names
        assert "model.safetensors" in names
        loaded = load_checked(folder, model_class).eval()
        ids = torch.randint(1, TINY["vocab_size"], (2, 5))
        inputs = {"input_ids": ids}
        if model.config.is_encoder_decoder:
            inputs["decoder_input_ids"] = ids[:, :3]
        torch.testing.assert_close(loaded(**inputs)[0], model(**inputs)[0], rtol=0, atol=0)


def test_sharded_checkpoint_loads(tmp_path):
    model = ScratchGPTForCausalLM(ScratchGPTConfig(**TINY))
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    loaded = load_checked(tmp_path / "sharded")
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, rtol=0, atol=0)


def test_pickle_only_weights_are_refused(tmp_path):
    folder = saved(tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"pytorch_model\.bin.*refusing to unpickle"):
        load_checked(folder)


def test_allow_pickle_loads_plain_tensors_with_weights_only(tmp_path):
    folder = saved(tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    model = load_checked(folder, allow_pickle=True)
    name = "model.decoder.embeddings.embed_tokens.weight"
    torch.testing.assert_close(model.state_dict()[name], state[name], rtol=0, atol=0)


def test_allow_pickle_still_never_runs_pickled_code(tmp_path):
    folder = saved(tmp_path)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "pwned"
    with open(folder / "pytorch_model.bin", "wb") as f:
        pickle.dump({"x": Booby(str(marker))}, f)
    with pytest.raises(Exception):  # noqa: B017  (torch's weights_only unpickler refuses the global)
        load_checked(folder, allow_pickle=True)
    assert not marker.exists()


def test_other_pickles_in_the_folder_are_never_opened(tmp_path):
    folder = saved(tmp_path)
    marker = tmp_path / "pwned"
    for name in ("optimizer.pt", "training_args.bin", "rng_state.pth"):
        with open(folder / name, "wb") as f:
            pickle.dump(Booby(str(marker)), f)
    assert isinstance(load_checked(folder), ScratchGPTForCausalLM)
    assert not marker.exists()


def test_code_shipped_in_the_folder_is_never_run(tmp_path):
    folder = saved(tmp_path)
    marker = tmp_path / "pwned"
    for module in folder.glob("*.py"):  # the remote-code copies of our modules, now hostile
        module.write_text(f"open({str(marker)!r}, 'w').close()\n" + module.read_text())
    assert json.loads((folder / "config.json").read_text())["auto_map"]
    load_checked(folder)
    assert not marker.exists()


def test_truncated_safetensors_names_the_file_and_the_tensor(tmp_path):
    folder = saved(tmp_path)
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"model\.safetensors: truncated safetensors file: tensor '.+' ends at"):
        load_checked(folder)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda b: b[:5], "not a safetensors file"),
        (lambda b: (10**12).to_bytes(8, "little") + b[8:], "the header claims"),
        (lambda b: b[:8] + b"\xff" * 16 + b[24:], "not valid JSON"),
        (lambda b: b + b"\x00" * 7, "bytes after the last tensor"),
    ],
    ids=["shorter-than-header", "huge-header-length", "garbage-header", "trailing-bytes"],
)
def test_corrupt_safetensors_is_a_value_error_naming_the_file(tmp_path, corrupt, message):
    folder = saved(tmp_path)
    path = folder / "model.safetensors"
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(ValueError, match=message) as error:
        read_safetensors_header(path)
    assert str(path) in str(error.value)
    with pytest.raises(ValueError, match="model.safetensors"):
        load_checked(folder)


def test_header_with_a_wrong_byte_count_is_caught(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(2, 3)}, str(path))
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    header["a"]["shape"] = [3, 3]
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n :])
    with pytest.raises(ValueError, match=r"tensor 'a' \(F32, shape \[3, 3\]\) needs 36 bytes"):
        read_safetensors_header(path)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(model_type="gpt2"), r"`model_type`='gpt2' is not a scratchformers family"),
        (dict(model_type=None), r"`model_type`=None is not a scratchformers family"),
        (dict(vocab_size=40), r"'model\.decoder\.embeddings\.embed_tokens\.weight' has shape \(64, 32\) but the config "
                              r"implies \(40, 32\) \(`vocab_size`=40 \(config\.json\) but the file has 64\)"),
        (dict(intermediate_size=48), r"fc_in\.weight' has shape \(64, 32\) but the config implies \(48, 32\)"),
        (dict(num_hidden_layers=3), r"tensor 'model\.decoder\.layers\.2\..*' \(shape .*\) is missing"),
        (dict(num_hidden_layers=1), r"unexpected tensors not in ScratchGPTForCausalLM: \['model\.decoder\.layers\.1"),
        (dict(activation="swish"), r"invalid config: `activation`='swish' is not supported"),
    ],
    ids=["foreign-type", "no-type", "vocab", "ffn-width", "more-layers", "fewer-layers", "bad-option"],
)
def test_config_that_does_not_match_the_weights_names_the_mismatch(tmp_path, changes, message):
    folder = saved(tmp_path)
    edit_config(folder, **changes)
    with pytest.raises(ValueError, match=message) as error:
        load_checked(folder)
    assert str(folder) in str(error.value)


def test_config_that_is_not_json_names_the_file(tmp_path):
    folder = saved(tmp_path)
    (folder / "config.json").write_text("{ not json")
    with pytest.raises(ValueError, match=r"config\.json: not valid JSON"):
        load_checked(folder)


def test_num_labels_mismatch_on_load_names_num_labels(tmp_path):
    folder = saved(tmp_path, ScratchGPTForSequenceClassification, num_labels=3)
    with pytest.raises(ValueError, match=r"'score\.weight' has shape \(3, 32\) .*\(`num_labels`=5 \(given\) but the "
                                         r"file has 3"):
        load_checked(folder, num_labels=5)
    assert load_checked(folder, num_labels=3).config.num_labels == 3


def test_an_lm_checkpoint_loads_under_a_new_classification_head(tmp_path):
    folder = saved(tmp_path)
    classifier = load_checked(folder, ScratchGPTForSequenceClassification, num_labels=4)
    lm = load_checked(folder)
    name = "model.decoder.embeddings.embed_tokens.weight"
    torch.testing.assert_close(classifier.state_dict()[name], lm.state_dict()[name], rtol=0, atol=0)
    assert classifier.score.weight.shape == (4, TINY["hidden_size"])


def test_a_classifier_checkpoint_missing_its_head_is_refused(tmp_path):
    folder = saved(tmp_path, ScratchGPTForSequenceClassification, num_labels=3)
    state = load_file(str(folder / "model.safetensors"))
    del state["score.weight"]
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match=r"tensor 'score\.weight' \(shape \(3, 32\)\) is missing"):
        load_checked(folder)


def test_model_class_of_another_family_is_refused(tmp_path):
    folder = saved(tmp_path)
    with pytest.raises(ValueError, match=r"not a scratchformers model"):
        load_checked(folder, "GPT2LMHeadModel")


def test_nan_weights_are_refused(tmp_path):
    folder = saved(tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    state["model.decoder.final_norm.weight"][0] = float("nan")
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"weight 'model\.decoder\.final_norm\.weight' contains NaN or inf"):
        load_checked(folder)


def test_missing_shard_is_named(tmp_path):
    ScratchGPTForCausalLM(ScratchGPTConfig(**TINY)).save_pretrained(tmp_path / "s", max_shard_size="20KB")
    shard = sorted((tmp_path / "s").glob("model-*.safetensors"))[0]
    shard.unlink()
    with pytest.raises(ValueError, match=rf"missing from .*{shard.name}"):
        check_checkpoint_folder(tmp_path / "s")


def test_load_checked_refuses_to_be_told_to_trust_remote_code(tmp_path):
    folder = saved(tmp_path)
    with pytest.raises(ValueError, match="trust_remote_code"):
        load_checked(folder, trust_remote_code=True)


def test_body_checkpoint_loads_into_the_lm(tmp_path):
    folder = saved(tmp_path, ScratchGPTModel)
    body = load_checked(folder, ScratchGPTModel)
    lm = load_checked(folder, ScratchGPTForCausalLM)
    torch.testing.assert_close(lm.model.decoder.final_norm.weight, body.decoder.final_norm.weight, rtol=0, atol=0)


def test_not_a_folder(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        load_checked(tmp_path / "nowhere")
    shutil.rmtree(tmp_path, ignore_errors=True)
