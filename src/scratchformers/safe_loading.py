"""Load checkpoints from strangers safely: never unpickle, never run their code, and fail clearly on bad files.

`from_pretrained` (transformers 5.x) already prefers safetensors and loads `.bin` files with
`torch.load(weights_only=True)`; but a truncated or corrupted safetensors file fails inside the safetensors parser
without saying which file, a config whose shapes do not match the weights fails (or re-initialises silently with
`ignore_mismatched_sizes`) deep in the loading code, and `trust_remote_code=True` would import the folder's Python
files. `load_checked` checks the folder *before* anything is loaded:

1. only safetensors weights are read; a folder whose weights exist only as pickles (`pytorch_model.bin`, `*.pt`, …)
   is refused, unless `allow_pickle=True`, which loads them with `torch.load(weights_only=True)`. Other pickles in
   the folder (a Trainer's `optimizer.pt`, `rng_state.pth`) are never opened;
2. every safetensors header is parsed and checked against the file size (truncated/corrupt → ValueError naming the
   file and the bad byte range);
3. `config.json` must name one of our `model_type`s and the one the requested class expects;
4. every tensor's shape is compared with the shape the config implies (built on the meta device, no memory), and
   all mismatches are listed (e.g. `num_labels=5` against a 3-label head);
5. the model is built from *our* classes (never the folder's code) and, by default, checked for NaN/inf weights.
"""

from __future__ import annotations

import ast
import functools
import inspect
import json
import math
import os
import struct
import textwrap
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, PreTrainedConfig, PreTrainedModel

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
PICKLE_WEIGHT_NAMES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format's own limit
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}


def read_safetensors_header(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Parse and validate a safetensors file's header without loading any tensor.

    Layout: 8 bytes little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [b, e]}},
    then the data; each tensor needs e − b = prod(shape) · itemsize bytes and the data must end exactly at the end of
    the file. Returns {name: {"dtype", "shape"}}; raises ValueError naming the file and what is wrong.
    """
    path = Path(path)
    size = path.stat().st_size
    if size < 8:
        raise ValueError(f"{path}: not a safetensors file ({size} bytes; the 8-byte header length is missing).")
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if header_len > MAX_HEADER_BYTES or 8 + header_len > size:
            raise ValueError(
                f"{path}: corrupt or truncated safetensors file: the header claims {header_len} bytes but the file "
                f"has {size} bytes."
            )
        raw = f.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: corrupt safetensors header (not valid JSON: {error}).") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: corrupt safetensors header (expected a JSON object).")
    header.pop("__metadata__", None)
    data_size, end_max, tensors = size - 8 - header_len, 0, {}
    for name, info in header.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], [int(d) for d in info["shape"]], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: corrupt safetensors header entry for tensor {name!r}: {info!r}.") from None
        if dtype not in DTYPE_BYTES:
            raise ValueError(f"{path}: tensor {name!r} has unknown dtype {dtype!r}; allowed: {sorted(DTYPE_BYTES)}.")
        if any(d < 0 for d in shape) or not (0 <= begin <= end):
            raise ValueError(f"{path}: tensor {name!r} has an invalid shape {shape} or byte range [{begin}, {end}).")
        expected = math.prod(shape) * DTYPE_BYTES[dtype]
        if end - begin != expected:
            raise ValueError(
                f"{path}: tensor {name!r} ({dtype}, shape {shape}) needs {expected} bytes but its byte range "
                f"[{begin}, {end}) holds {end - begin}."
            )
        if end > data_size:
            raise ValueError(
                f"{path}: truncated safetensors file: tensor {name!r} ends at data byte {end} but the file holds only "
                f"{data_size} data bytes."
            )
        end_max = max(end_max, end)
        tensors[name] = {"dtype": dtype, "shape": tuple(shape)}
    if end_max != data_size:
        raise ValueError(f"{path}: corrupt safetensors file: {data_size - end_max} bytes after the last tensor.")
    return tensors


@functools.cache
def from_pretrained_arguments() -> frozenset[str]:
    """Every keyword `PreTrainedModel.from_pretrained` takes for itself, read from the installed transformers.

    That is its named parameters (`config`, `revision`, `local_files_only`, …) and the names it takes out of
    `**kwargs` before the rest go to the config (`dtype`, `device_map`, `attn_implementation`, `max_memory`,
    `offload_folder`, `subfolder`, `variant`, `output_loading_info`, …), found by parsing its source for
    `kwargs.pop("name", …)`, `"name" in kwargs` and `for name in [...]: kwargs.pop(name)`. These are loading
    arguments even where a config has a field of the same name (`dtype`), as in `from_pretrained` itself.
    """
    function = PreTrainedModel.from_pretrained
    names = {
        p.name for p in inspect.signature(function).parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD,
                                                                                     p.KEYWORD_ONLY)
    }
    names.discard("pretrained_model_name_or_path")

    def is_kwargs(node: ast.AST) -> bool:
        return isinstance(node, ast.Name) and node.id == "kwargs"

    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(function)))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("pop", "get"):
            if is_kwargs(node.func.value) and node.args and isinstance(node.args[0], ast.Constant):
                names.add(node.args[0].value)
        elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) and any(map(is_kwargs,
                                                                                              node.comparators)):
            names.add(node.left.value)
        elif isinstance(node, ast.For) and isinstance(node.iter, (ast.List, ast.Tuple)):
            names.update(e.value for e in node.iter.elts if isinstance(e, ast.Constant))
    return frozenset(n for n in names if isinstance(n, str) and not n.startswith("_"))


def _weight_files(folder: Path) -> list[Path]:
    """The safetensors weight files of a checkpoint folder: the index's shards, or model.safetensors."""
    index = folder / SAFE_WEIGHTS_INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"{index}: corrupt safetensors index ({error}).") from None
        shards = sorted(set(weight_map.values()))
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise ValueError(f"{index}: lists shard files that are missing from {folder}: {missing}.")
        return [folder / s for s in shards]
    single = folder / SAFE_WEIGHTS_NAME
    return [single] if single.is_file() else []


def _read_config_json(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise ValueError(f"{folder}: no config.json; not a model checkpoint folder.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error}).") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}.")
    return data


def _our_model_types() -> dict[str, type[PreTrainedConfig]]:
    """model_type → config class for every family this package registers (never the folder's own code)."""
    import scratchformers  # noqa: F401  (registers the families with AutoConfig)

    return {
        model_type: AutoConfig.for_model(model_type).__class__
        for model_type in _registered_scratch_types()
    }


def _registered_scratch_types() -> list[str]:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    return sorted(k for k in CONFIG_MAPPING._extra_content if k.startswith("scratch_"))


def _model_class_for(config: PreTrainedConfig, model_class: type[PreTrainedModel] | str | None):
    """Resolve the class to build: the given one, a scratchformers class name, or config.architectures[0]."""
    import scratchformers

    if model_class is None:
        names = getattr(config, "architectures", None) or []
        if not names:
            raise ValueError("config.json has no `architectures`; pass `model_class=` (e.g. ScratchGPTForCausalLM).")
        model_class = names[0]
    if isinstance(model_class, str):
        allowed = [n for n in scratchformers.__all__ if n.endswith(("Model", "LM")) or "For" in n]
        if model_class not in allowed:
            raise ValueError(f"`model_class`={model_class!r} is not a scratchformers model; allowed: {allowed}.")
        model_class = getattr(scratchformers, model_class)
    if not (isinstance(model_class, type) and issubclass(model_class, PreTrainedModel)):
        raise TypeError(f"`model_class` must be a PreTrainedModel subclass or its name, got {model_class!r}.")
    return model_class


def _pickle_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.name.endswith(PICKLE_SUFFIXES))


def check_checkpoint_folder(
    path: str | os.PathLike,
    model_class: type[PreTrainedModel] | str | None = None,
    allow_pickle: bool = False,
    *,
    config: PreTrainedConfig | None = None,
    ignore_mismatched_sizes: bool = False,
    **config_overrides: Any,
) -> tuple[PreTrainedConfig, type[PreTrainedModel], bool]:
    """Validate a checkpoint folder without loading its weights; return (config, model class, weights are pickled).

    Raises ValueError naming the file and the problem: no config.json or invalid JSON; a `model_type` that is not a
    scratchformers family or not the one `model_class` expects; only pickled weights (unless `allow_pickle`); a
    truncated/corrupt safetensors file; tensors whose shapes differ from what the config (with `config_overrides`,
    e.g. `num_labels=5`) implies, or that are missing/unexpected. As in `from_pretrained`, `config` (a config
    object or another folder) replaces the folder's config.json, and `ignore_mismatched_sizes=True` lets tensors
    of another shape through (they are re-initialised on loading).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder (safe loading reads local checkpoint folders).")
    if isinstance(config, PreTrainedConfig):
        raw = config.to_dict()
    else:
        raw = _read_config_json(Path(config) if config is not None else folder)
    ours = _our_model_types()
    model_type = raw.get("model_type")
    if model_type not in ours:
        raise ValueError(
            f"{folder / 'config.json'}: `model_type`={model_type!r} is not a scratchformers family; allowed: "
            f"{sorted(ours)}. (Code shipped in the folder is never run.)"
        )
    config_class = ours[model_type]
    config_kwargs = {k: v for k, v in raw.items() if k not in ("model_type", "auto_map", "transformers_version")}
    for name, value in config_overrides.items():
        config_kwargs[name] = value
    if "num_labels" in config_overrides:  # id2label from the file would contradict the new label count
        config_kwargs.pop("id2label", None)
        config_kwargs.pop("label2id", None)
    try:
        config = config_class(**config_kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{folder / 'config.json'}: invalid config: {error}") from None
    model_class = _model_class_for(config, model_class)
    expected_type = getattr(model_class.config_class, "model_type", None)
    if expected_type != model_type:
        raise ValueError(
            f"{folder / 'config.json'}: `model_type`={model_type!r} but {model_class.__name__} expects "
            f"{expected_type!r}."
        )

    files = _weight_files(folder)
    pickled = False
    if not files:
        pickles = [n for n in _pickle_files(folder) if n in PICKLE_WEIGHT_NAMES or n.startswith("pytorch_model")]
        if not pickles:
            raise ValueError(f"{folder}: no weights found (expected {SAFE_WEIGHTS_NAME} or {SAFE_WEIGHTS_INDEX_NAME}).")
        if not allow_pickle:
            raise ValueError(
                f"{folder}: weights are only in pickle files {pickles}; refusing to unpickle files from a checkpoint "
                f"folder. Convert them to safetensors, or pass allow_pickle=True to load them with "
                f"torch.load(weights_only=True)."
            )
        return config, model_class, True

    found: dict[str, tuple[Path, tuple[int, ...]]] = {}
    for file in files:
        for name, info in read_safetensors_header(file).items():
            found[name] = (file, info["shape"])
    if not ignore_mismatched_sizes:
        _compare_shapes(folder, config, model_class, found, config_overrides)
    return config, model_class, pickled


def _compare_shapes(folder: Path, config, model_class, found: dict, overrides: dict) -> None:
    """Compare the checkpoint's tensor shapes with those of `model_class(config)` built on the meta device (a tensor
    saved under an older name, `pretrained.RENAMED_WEIGHTS`, under the name it loads as)."""
    from .pretrained import current_weight_name

    found = {current_weight_name(name): value for name, value in found.items()}
    with torch.device("meta"):
        model = model_class(config)
    state = model.state_dict(keep_vars=True)
    expected = {name: tuple(t.shape) for name, t in state.items()}
    tied = set(getattr(model, "_tied_weights_keys", None) or {}) if config.tie_word_embeddings else set()
    aliases: dict[int, set[str]] = {}  # one module shared under several names (e.g. encoder/decoder embeddings)
    for name, tensor in state.items():
        aliases.setdefault(id(tensor), set()).add(name)
    # A checkpoint saved from the body alone (XModel) loads into a head model under base_model_prefix, and back.
    prefix = model.base_model_prefix + "."
    if found and not (found.keys() & expected.keys()):
        if all(k.startswith(prefix) for k in found):
            found = {k[len(prefix):]: v for k, v in found.items()}
        else:
            found = {prefix + k: v for k, v in found.items()}
    # Another architecture's checkpoint (an LM body under a new classifier): heads may differ, the body may not.
    other_architecture = model_class.__name__ not in (getattr(config, "architectures", None) or [])

    def is_head(name: str) -> bool:
        return other_architecture and not name.startswith(prefix) and name != model.base_model_prefix

    problems = []
    for name, shape in expected.items():
        if name not in found:
            saved_as_alias = any(other in found for other in aliases[id(state[name])])
            if name not in tied and not saved_as_alias and not is_head(name):
                problems.append(f"tensor {name!r} (shape {shape}) is missing")
            continue
        file, have = found[name]
        if have != shape:
            hint = _config_hint(config, have, shape, overrides)
            problems.append(f"{file.name}: tensor {name!r} has shape {have} but the config implies {shape}{hint}")
    extra = sorted(name for name in set(found) - set(expected) if not is_head(name))
    if extra:
        problems.append(f"unexpected tensors not in {model_class.__name__}: {extra[:10]}")
    if problems:
        raise ValueError(f"{folder}: the weights do not match config.json:\n  - " + "\n  - ".join(problems))


def _config_hint(config, have: tuple[int, ...], want: tuple[int, ...], overrides: dict) -> str:
    """Name the config fields whose value equals a differing dimension (e.g. `num_labels`=5 vs 3 in the file)."""
    names = ("num_labels", "vocab_size", "hidden_size", "intermediate_size", "max_position_embeddings",
             "type_vocab_size", "num_attention_heads")
    hints = []
    for h, w in zip(have, want):
        if h != w:
            for name in names:
                if getattr(config, name, None) == w:
                    source = "given" if name in overrides else "config.json"
                    hints.append(f"`{name}`={w} ({source}) but the file has {h}")
    return f" ({'; '.join(dict.fromkeys(hints))})" if hints else ""


def load_checked(
    path: str | os.PathLike,
    model_class: type[PreTrainedModel] | str | None = None,
    allow_pickle: bool = False,
    check_finite: bool = True,
    **kwargs: Any,
) -> PreTrainedModel:
    """`check_checkpoint_folder`, then `model_class.from_pretrained` with safetensors only and no remote code.

    `kwargs` mean what they mean to `from_pretrained`: its own arguments (`from_pretrained_arguments()`: `dtype`
    — `"auto"` keeps the checkpoint's dtype —, `device_map`, `revision`, `attn_implementation`, `config`,
    `output_loading_info`, …) go to it unchanged; config fields (e.g. `num_labels=5`) are checked against the
    weights first. `trust_remote_code`, `use_safetensors` and `weights_only` are set here (ValueError if given).
    `check_finite` raises ValueError naming the first weight that holds NaN/inf (offloaded weights, left on the
    meta device by a `device_map`, are not read). Returns the model (with `output_loading_info=True`, the pair).
    """
    for refused in ("trust_remote_code", "use_safetensors", "weights_only"):
        if refused in kwargs:
            raise ValueError(f"`{refused}` is set by load_checked itself; got {refused}={kwargs[refused]!r}.")
    loading = from_pretrained_arguments()
    config_fields = set(PreTrainedConfig().to_dict()) | {"num_labels", "id2label", "label2id"}
    probe_type = _read_config_json(Path(path)).get("model_type") if Path(path).is_dir() else None
    ours = _our_model_types()
    if probe_type in ours:
        config_fields |= set(ours[probe_type]().to_dict())
    overrides = {k: v for k, v in kwargs.items() if k in config_fields and k not in loading}
    load_kwargs = {k: v for k, v in kwargs.items() if k not in overrides}
    load_kwargs.setdefault("local_files_only", True)
    config, model_class, pickled = check_checkpoint_folder(
        path, model_class, allow_pickle, config=load_kwargs.pop("config", None),
        ignore_mismatched_sizes=bool(load_kwargs.get("ignore_mismatched_sizes")), **overrides,
    )
    loaded = model_class.from_pretrained(
        os.fspath(path), config=config, use_safetensors=not pickled, weights_only=True, trust_remote_code=False,
        **load_kwargs,
    )
    model = loaded[0] if isinstance(loaded, tuple) else loaded
    if check_finite:
        for name, tensor in model.state_dict().items():
            if tensor.device.type == "meta" or not tensor.is_floating_point():
                continue
            if not bool(torch.isfinite(tensor).all()):
                raise ValueError(f"{path}: weight {name!r} contains NaN or inf values.")
    return loaded
