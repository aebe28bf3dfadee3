"""Hub push: the folder is upload-complete, and without credentials or network the push fails fast, changing nothing."""

from __future__ import annotations

import json

import huggingface_hub
import pytest
from journey_helpers import tiny_checkpoint

from scratchformers import hub
from scratchformers.hub import HubPushError, check_upload_complete, push_checkpoint


@pytest.fixture
def checkpoint(tmp_path):
    return tiny_checkpoint(tmp_path / "ckpt")


@pytest.fixture
def no_network_calls(monkeypatch):
    """Any attempt to create or upload on the Hub fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the Hub was called")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", refuse)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", refuse)


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)


def snapshot(folder):
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_saved_checkpoint_is_upload_complete(checkpoint):
    assert check_upload_complete(checkpoint) == []
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_scratch_gpt.ScratchGPTForCausalLM"
    # the modules a Hub user's trust_remote_code import needs, transitively
    for name in ("modeling_scratch_gpt", "configuration_scratch_gpt", "layers", "attention", "masks", "embeddings"):
        assert (checkpoint / f"{name}.py").is_file()


@pytest.mark.parametrize(
    "remove, expected",
    [
        ("README.md", "README.md"),
        ("model.safetensors", "weights"),
        ("tokenizer.json", "tokenizer"),
        ("attention.py", "attention.py"),  # imported by layers.py, not named in auto_map: found transitively
    ],
)
def test_missing_files_are_listed(checkpoint, remove, expected):
    (checkpoint / remove).unlink()
    missing = check_upload_complete(checkpoint)
    assert len(missing) == 1 and expected in missing[0]


def test_config_without_auto_map_is_incomplete(checkpoint):
    path = checkpoint / "config.json"
    config = json.loads(path.read_text())
    del config["auto_map"]
    path.write_text(json.dumps(config))
    assert any("auto_map" in item for item in check_upload_complete(checkpoint))
    assert check_upload_complete(checkpoint / "nope") == [f"{checkpoint / 'nope'} (not a folder)"]


def test_push_without_token_fails_fast_and_changes_nothing(checkpoint, no_token, no_network_calls):
    before = snapshot(checkpoint)
    with pytest.raises(HubPushError, match="no Hugging Face token.*HF_TOKEN.*Nothing was pushed"):
        push_checkpoint(checkpoint, "someone/tiny-gpt")
    assert snapshot(checkpoint) == before


def test_push_offline_or_unreachable_fails_before_creating_anything(checkpoint, monkeypatch, no_network_calls):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubPushError, match="HF_HUB_OFFLINE"):
        push_checkpoint(checkpoint, "someone/tiny-gpt", token="hf_fake")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "hub_reachable", lambda endpoint=None, timeout=3.0: False)
    with pytest.raises(HubPushError, match="cannot be reached"):
        push_checkpoint(checkpoint, "someone/tiny-gpt", token="hf_fake")


def test_hub_reachable_is_false_for_a_closed_port():
    assert hub.hub_reachable("http://127.0.0.1:9", timeout=1.0) is False


def test_push_rejects_bad_repo_ids_and_incomplete_folders(checkpoint, no_token, no_network_calls):
    with pytest.raises(ValueError, match="not a Hub repository id"):
        push_checkpoint(checkpoint, "a/b/c")
    (checkpoint / "README.md").unlink()
    with pytest.raises(ValueError, match="not upload-complete; missing: README.md"):
        push_checkpoint(checkpoint, "someone/tiny-gpt", token="hf_fake")


def test_a_transformers_native_checkpoint_needs_no_auto_map(tmp_path, checkpoint):
    """`convert` back to transformers' own LlamaForCausalLM writes no code and needs none: only our scratch_* types
    (unknown to transformers) must carry auto_map and their modules."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path / "llama"
    LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, max_position_embeddings=16)).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "README.md"):
        (folder / name).write_bytes((checkpoint / name).read_bytes())
    assert check_upload_complete(folder) == []
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["model_type"].startswith("scratch_") and config["auto_map"]  # ours still needs it (test above)
