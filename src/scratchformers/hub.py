"""Push a checkpoint folder to the Hugging Face Hub — after checking it holds everything a Hub user needs.

``check_upload_complete(folder)`` lists what is missing for ``AutoModel*.from_pretrained(repo, trust_remote_code=True)``
to work from the uploaded files alone: ``config.json`` with ``auto_map``, the weights, every code file named in
``auto_map`` and every sibling module those files import (``from .x import``), a tokenizer and a ``README.md`` model
card. ``push_checkpoint`` refuses incomplete folders, and fails fast — before creating anything on the Hub — when
there is no token or the Hub cannot be reached.
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt")
IGNORE_PATTERNS = ["checkpoint-*", "checkpoint-*/**", "*.pt", "*.pth", ".git/**", "__pycache__/**"]
_RELATIVE_IMPORT = re.compile(r"^\s*from\s+\.([A-Za-z_][A-Za-z0-9_]*)\s+import\b", re.MULTILINE)
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


class HubPushError(RuntimeError):
    """The push could not start (no token, Hub unreachable, offline mode); nothing was created or uploaded."""


def _code_modules(config: dict) -> set[str]:
    """Module names referenced by ``auto_map`` (``"modeling_x.Cls"`` → ``modeling_x``; tokenizer tuples included)."""
    names = set()
    for value in (config.get("auto_map") or {}).values():
        for ref in value if isinstance(value, (list, tuple)) else [value]:
            if ref and "--" not in ref:  # "repo--module.Class" points at another repository
                names.add(ref.rsplit(".", 1)[0])
    return names


ADAPTER_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


def transformers_knows(model_type: str | None) -> bool:
    """Whether transformers itself knows ``model_type`` (e.g. ``llama`` after ``convert`` back): no code to upload,
    none to load. Our ``scratch_*`` types are never in its table, even after ``import scratchformers``."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return bool(model_type) and model_type in CONFIG_MAPPING_NAMES


def _check_adapter(root: Path) -> list[str]:
    """What a LoRA adapter folder (peft; ``train sft`` without ``--merge_lora``) lacks for ``PeftModel``/
    ``scratchformers.sft.load_adapter`` to load it from the Hub: adapter weights, a tokenizer (it may have added chat
    tokens) and a model card. Its base model is a separate repository named in ``adapter_config.json``."""
    missing: list[str] = []
    if not any((root / name).is_file() for name in ADAPTER_WEIGHT_FILES):
        missing.append(f"adapter weights (one of {', '.join(ADAPTER_WEIGHT_FILES)})")
    if not (root / "tokenizer_config.json").is_file() or not any((root / n).is_file() for n in TOKENIZER_FILES):
        missing.append(f"tokenizer (tokenizer_config.json and one of {', '.join(TOKENIZER_FILES)})")
    if not (root / "README.md").is_file():
        missing.append("README.md (model card: scratchformers.model_card.write_model_card)")
    return missing


def check_upload_complete(folder: str | os.PathLike) -> list[str]:
    """What ``folder`` lacks for loading from the Hub with ``trust_remote_code=True`` (a LoRA adapter folder: with
    peft, on its base); an empty list when complete."""
    root = Path(folder)
    if not root.is_dir():
        return [f"{root} (not a folder)"]
    missing: list[str] = []
    config_path = root / "config.json"
    if not config_path.is_file() and (root / "adapter_config.json").is_file():
        return _check_adapter(root)
    if not config_path.is_file():
        return ["config.json"]
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if not config.get("auto_map") and not transformers_knows(config.get("model_type")):
        missing.append("config.json: auto_map (save the model after `import scratchformers` so its code is attached)")
    if not any((root / name).is_file() for name in WEIGHT_FILES):
        missing.append(f"weights (one of {', '.join(WEIGHT_FILES)})")
    # every module auto_map names, and every sibling module those import, transitively
    pending, seen = sorted(_code_modules(config)), set()
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        path = root / f"{module}.py"
        if not path.is_file():
            missing.append(f"{module}.py")
            continue
        pending.extend(_RELATIVE_IMPORT.findall(path.read_text(encoding="utf-8")))
    if not (root / "tokenizer_config.json").is_file() or not any((root / n).is_file() for n in TOKENIZER_FILES):
        missing.append(f"tokenizer (tokenizer_config.json and one of {', '.join(TOKENIZER_FILES)})")
    if not (root / "README.md").is_file():
        missing.append("README.md (model card: scratchformers.model_card.write_model_card)")
    return missing


def resolve_token(token: str | None = None) -> str | None:
    """The token to push with: ``token``, else ``$HF_TOKEN``, else the one saved by ``hf auth login``."""
    if token:
        return token
    if os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"]
    from huggingface_hub import get_token

    return get_token()


def hub_reachable(endpoint: str | None = None, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub's host opens within ``timeout`` seconds (no request is sent)."""
    from huggingface_hub import constants

    url = urlparse(endpoint or constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def push_checkpoint(
    folder: str | os.PathLike,
    repo_id: str,
    token: str | None = None,
    private: bool = True,
    commit_message: str = "Upload scratchformers checkpoint",
    endpoint: str | None = None,
) -> str:
    """Upload ``folder`` (weights, config with ``auto_map``, code, tokenizer, card) to ``repo_id``; returns its URL.

    Checks run in this order and each stops the push before anything is created: the repo id's form, the folder's
    completeness (``check_upload_complete``), a token, offline mode (``HF_HUB_OFFLINE``), the Hub's reachability.
    Trainer sub-checkpoints (``checkpoint-*``) and optimizer states are not uploaded.
    """
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id):
        raise ValueError(f"repo_id {repo_id!r} is not a Hub repository id; expected 'name' or 'user-or-org/name'")
    missing = check_upload_complete(folder)
    if missing:
        raise ValueError(f"{folder} is not upload-complete; missing: {'; '.join(missing)}")
    token = resolve_token(token)
    if not token:
        raise HubPushError(
            "no Hugging Face token: pass --token, set HF_TOKEN, or run `hf auth login` (a token with write access). "
            "Nothing was pushed."
        )
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise HubPushError("HF_HUB_OFFLINE is set: unset it to push. Nothing was pushed.")
    if not hub_reachable(endpoint):
        raise HubPushError(
            f"the Hugging Face Hub ({endpoint or constants.ENDPOINT}) cannot be reached: check the network. "
            "Nothing was pushed."
        )
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token)
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(
        folder_path=str(folder), repo_id=repo_id, commit_message=commit_message, ignore_patterns=IGNORE_PATTERNS
    )
    return str(url)
