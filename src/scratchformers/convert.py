"""Weight conversion between Hugging Face's native models and ours: `from_hf(hf_model)` and `to_hf(our_model)`.

Every supported architecture is one spec in `scratchformers_light.conversions`: data, in the spirit of nanoGPT's
`GPT.from_pretrained` and LitGPT's weight maps — config renames used both ways, what the HF architecture fixes in our
options, refusals with their reasons, weight rows (transposes, fused q/k/v, layer groups), head rows per task class,
and a hatch for the few real computations. This module is the one engine that reads them in both directions:

1. **config**: each HF option becomes ours by its rename (and back), the fixed options are set (or required), and
   everything that does not fit — an HF option our blocks cannot reproduce (GPT-2's `scale_attn_by_inverse_layer_idx`),
   or one of ours the HF class cannot express — is listed in one ValueError;
2. **weights**: the spec's rows for the class pair and config, checked before anything is copied: every tensor on
   both sides accounted for, every shape matching, all problems reported at once. Several HF tensors are
   concatenated along dim 0 on our side (separate q, k, v → our fused `qkv_proj`) and split again on the way back;
   GPT-2's Conv1D weights, stored (in, out), are transposed; tied weights are copied once, through their source.

`supported_conversions()` lists the pairs (GPT-2, BERT, BART, Marian, Llama, Qwen2, Mistral; docs/convert.md).
Command line: `scratchformers convert <checkpoint dir or Hub id> <out dir>` (direction auto-detected); a GGUF file
(`model.gguf`, or a folder with `--gguf-file NAME`) goes through transformers' GGUF loader (`export_gguf.read_gguf`).
"""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from torch import nn
from transformers import PreTrainedModel

from scratchformers_light.conversions import ACTIVATIONS, SPECS, Head, Row, Spec, WeightMap, conversions, option
from scratchformers_light.names import CARD_TASKS

from .folders import keeps_earlier_run, replace_later

__all__ = ["from_hf", "to_hf", "config_from_hf", "config_to_hf", "weight_map", "hf_state_dict", "supported_conversions",
           "main"]


class _Problems:
    """Collects everything that does not fit, so one ValueError lists it all."""

    def __init__(self, what: str):
        self.what = what
        self.items: list[str] = []

    def add(self, item: str) -> None:
        self.items.append(item)

    def raise_if_any(self) -> None:
        if self.items:
            listing = "\n  - ".join(self.items)
            raise ValueError(f"Cannot convert {self.what}; {len(self.items)} thing(s) do not fit:\n  - {listing}")


# ----------------------------------------------------------------------------------------------------------------
# The class pairs of every spec
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pair:
    """One head of one spec, with its two classes: transformers' and ours (from `modeling_<family>.py`)."""

    spec: Spec
    head: Head
    hf_class: type[PreTrainedModel]
    our_class: type[PreTrainedModel]


def _our_class(spec: Spec, name: str) -> type[PreTrainedModel]:
    return getattr(importlib.import_module(f".modeling_{spec.family}", __package__), name)


_PAIRS = [_Pair(spec, head, getattr(transformers, head.hf), _our_class(spec, head.ours))
          for spec in SPECS for head in spec.classes]


def supported_conversions() -> dict[str, str]:
    """{HF class name: our class name} for every pair `from_hf`/`to_hf` can convert (read from the specs)."""
    return conversions()


def _pair_for(model: nn.Module, side: str) -> _Pair:
    for pair in _PAIRS:
        if type(model) is (pair.hf_class if side == "hf" else pair.our_class):
            return pair
    allowed = tuple(supported_conversions()) if side == "hf" else tuple(dict.fromkeys(supported_conversions().values()))
    raise TypeError(f"Cannot convert a {type(model).__name__}; supported classes are {allowed}.")


# ----------------------------------------------------------------------------------------------------------------
# Config: renames both ways, fixed options, refusals, the hatch
# ----------------------------------------------------------------------------------------------------------------


class _Fields:
    """A config's fields by name, for the refusal reasons' format strings (`{head_dim}`), and the spec's
    `{architecture}`."""

    def __init__(self, config, spec: Spec):
        self.config, self.spec = config, spec

    def __getitem__(self, name: str):
        return self.spec.name if name == "architecture" else getattr(self.config, name, None)


def _refuse(checks, config, spec: Spec, problems: _Problems) -> None:
    for test, reason in checks:
        if test(config):
            problems.add(reason.format_map(_Fields(config, spec)))


def _copied(value):
    return dict(value) if isinstance(value, dict) else value  # label tables, rope parameters: not shared


def _options_from_hf(pair: _Pair, hf_model: PreTrainedModel) -> dict:
    """Our config's options for `hf_model`: refusals, then renames (with HF's activation names), fixed options, the
    class's options, the class converted from (`converted_from`: `to_hf` goes back to it) and the hatch's; one
    ValueError lists every problem."""
    spec, hf_config = pair.spec, hf_model.config
    problems = _Problems(f"{spec.name} config (model_type={hf_config.model_type!r})")
    _refuse(spec.refuse_hf, hf_config, spec, problems)
    options = {}
    for ours, theirs in spec.renames.items():
        names = (theirs,) if isinstance(theirs, str) else theirs
        value, *others = (getattr(hf_config, name, None) for name in names)
        for name, other in zip(names[1:], others):
            if other != value:
                problems.add(f"`{names[0]}`={value} != `{name}`={other}: {spec.family} uses one value for both stacks")
        if ours == "activation" and value not in ACTIVATIONS:
            problems.add(f"`{names[0]}`={value!r} is not supported; allowed values are {tuple(ACTIVATIONS)}")
        options[ours] = ACTIVATIONS.get(value) if ours == "activation" else _copied(value)
    options.update({**spec.fixed, **spec.our_defaults, **pair.head.options}, converted_from=pair.head.hf)
    if spec.from_hf is not None:
        options.update(spec.from_hf(hf_model, problems.items))
    problems.raise_if_any()
    return options


def _options_to_hf(spec: Spec, config) -> dict:
    """The HF config's arguments for our `config`: every fixed option must hold and no refusal apply; renames back,
    the one-way HF defaults and the hatch's."""
    problems = _Problems(f"{spec.family} config to {spec.name} (model_type={config.model_type!r})")
    for name, value in spec.fixed.items():
        if option(config, name) != value:
            problems.add(f"`{name}`={getattr(config, name)!r}: {spec.name} supports only {value!r}")
    _refuse(spec.refuse_ours, config, spec, problems)
    options = {}
    for ours, theirs in spec.renames.items():
        options.update(dict.fromkeys((theirs,) if isinstance(theirs, str) else theirs, _copied(getattr(config, ours))))
    options.update(spec.hf_defaults)
    if spec.to_hf is not None:
        options.update(spec.to_hf(config, problems.items))
    problems.raise_if_any()
    return options


def config_from_hf(hf_model: PreTrainedModel):
    """Our config for a native transformers model (ValueError listing every option that does not fit)."""
    pair = _pair_for(hf_model, "hf")
    return pair.our_class.config_class(**_options_from_hf(pair, hf_model))


def _hf_config(spec: Spec, config):
    return getattr(transformers, spec.hf_config)(**_options_to_hf(spec, config))


def config_to_hf(config, hf_class: type[PreTrainedModel]):
    """The config of `hf_class` for our `config` (ValueError listing every option the class cannot express)."""
    pair = next((p for p in _PAIRS if p.hf_class is hf_class), None)
    if pair is None:
        raise TypeError(f"Cannot convert to a {getattr(hf_class, '__name__', hf_class)}; supported classes are "
                        f"{tuple(supported_conversions())}.")
    return _hf_config(pair.spec, config)


def _target_for(model: nn.Module, hf_class: type[PreTrainedModel] | None) -> tuple[_Pair, object]:
    """The pair and HF config for exporting `model`. One of our classes can match several HF architectures
    (scratch_transformer → BART or Marian; scratch_gpt's modern decoder → Llama, Qwen2 or Mistral): the spec of the
    class it was converted from (`config.converted_from`, so a classifier fine-tuned from a converted Mistral goes to
    MistralForSequenceClassification) is tried first, then the others in order; the first whose config translation
    accepts our config wins, unless `hf_class` names one; when none accepts, one ValueError gives each candidate's
    reasons."""
    _pair_for(model, "ours")  # TypeError for a class with no converter at all
    candidates = [p for p in _PAIRS if type(model) is p.our_class and (hf_class is None or p.hf_class is hf_class)]
    source = next((p.spec for p in _PAIRS if p.head.hf == getattr(model.config, "converted_from", None)), None)
    candidates.sort(key=lambda p: p.spec is not source)  # (stable: the others keep their order)
    if not candidates:
        allowed = [p.hf_class.__name__ for p in _PAIRS if type(model) is p.our_class]
        raise TypeError(f"`hf_class`={getattr(hf_class, '__name__', hf_class)!r} is not a conversion target of "
                        f"{type(model).__name__}; allowed: {allowed}.")
    errors = []
    for pair in candidates:
        try:
            return pair, _hf_config(pair.spec, model.config)
        except ValueError as error:
            errors.append(str(error))
    if len(errors) == 1:
        raise ValueError(errors[0])
    raise ValueError(f"{type(model).__name__} fits none of its HF architectures:\n" + "\n".join(errors))


# ----------------------------------------------------------------------------------------------------------------
# Weights: the one copy, checked first
# ----------------------------------------------------------------------------------------------------------------


def weight_map(model: PreTrainedModel, hf_class: type[PreTrainedModel] | None = None) -> WeightMap:
    """The rows of `model`'s class pair for its config: every tensor with its name on both sides (`by_ours`,
    `by_theirs`). `model` is transformers' or ours; for ours, the HF architecture is the one `to_hf` would choose
    (or `hf_class`)."""
    if any(type(model) is p.our_class for p in _PAIRS):
        pair, _ = _target_for(model, hf_class)
        return pair.spec.weight_map(pair.head, model.config)
    pair = _pair_for(model, "hf")
    return pair.spec.weight_map(pair.head, config_from_hf(model))


def hf_state_dict(
    model: PreTrainedModel, hf_class: type[PreTrainedModel] | None = None
) -> tuple[type[PreTrainedModel], transformers.PreTrainedConfig, dict[str, torch.Tensor]]:
    """Our `model`'s tensors under the names and layouts of the transformers class `to_hf` would convert it to,
    without building that model: `(hf_class, hf_config, {HF name: tensor})`, read from the same spec rows as
    `to_hf` (fused q/k/v split again along dim 0, GPT-2's Conv1D weights transposed to (in, out)). The tensors are
    views of ours (no copy); tied ones (the output layer ≡ the token embedding) appear once, under their source's
    HF name, as a transformers checkpoint saves them. What exporters (GGUF) read; ValueError/TypeError as `to_hf`."""
    pair, hf_config = _target_for(model, hf_class)
    with torch.device("meta"):  # only the shapes: where each fused tensor of ours splits
        hf_model = pair.hf_class._from_config(hf_config, **{n: getattr(model.config, n) for n in pair.head.hf_kwargs})
    shapes = {name: tuple(t.shape) for name, t in hf_model.state_dict().items()}
    our_state, tied = model.state_dict(), _tied_keys(model)
    tensors = {}
    for row in pair.spec.weight_map(pair.head, model.config).rows:
        if row.kind != "copy" or row.ours in tied:
            continue
        sizes = [shapes[t][-1] if row.transpose else shapes[t][0] for t in row.theirs]
        for name, part in zip(row.theirs, our_state[row.ours].split(sizes, dim=0)):
            tensors[name] = part.t() if row.transpose else part
    return pair.hf_class, hf_config, tensors


def _tied_keys(model: nn.Module) -> set[str]:
    """State-dict keys whose tensor is the same storage as an earlier key (tied weights): copied through their source."""
    seen, tied = {}, set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        ptr = tensor.data_ptr()
        if ptr in seen:
            tied.add(name)
        seen.setdefault(ptr, name)
    return tied


def _check_sinusoids(row: Row, ours: nn.Module, their_state: dict, problems: _Problems) -> None:
    """HF stores a fixed sinusoid table (Marian) that our module computes: it must be the same formula."""
    table = their_state[row.theirs[0]].detach().float().cpu()
    computed = ours.get_submodule(row.ours)(torch.arange(table.shape[0]))
    if computed.shape != table.shape or not torch.allclose(table, computed, atol=1e-4):
        problems.add(f"{row.theirs[0]} is not the sin|cos table our sinusoidal positions compute")


def _copy(weights: WeightMap, ours: nn.Module, theirs: nn.Module, direction: str, what: str) -> None:
    """Copy every row of `weights` in `direction` ("from_hf" or "to_hf"), after checking every key and shape."""
    our_state, their_state = ours.state_dict(), theirs.state_dict()
    problems = _Problems(what)
    tied_ours, tied_theirs = _tied_keys(ours), _tied_keys(theirs)
    used_ours, used_theirs = set(), set()
    plan = []
    for row in weights.rows:
        if row.kind != "copy":  # an HF tensor no forward needs from us, or a table ours computes
            used_theirs.update(row.theirs)
            if row.kind == "sinusoids" and direction == "from_hf" and row.theirs[0] in their_state:
                _check_sinusoids(row, ours, their_state, problems)
            continue
        if row.ours in tied_ours and all(t in tied_theirs or t not in their_state for t in row.theirs):
            used_ours.add(row.ours)
            used_theirs.update(row.theirs)
            continue  # tied on both sides (e.g. lm_head ≡ token embedding): the source tensor carries it
        missing = [k for k in (row.ours,) if k not in our_state] + [t for t in row.theirs if t not in their_state]
        if missing:
            problems.add(f"missing tensor(s) {missing}")
            continue
        used_ours.add(row.ours)
        used_theirs.update(row.theirs)
        parts = [their_state[t].t() if row.transpose else their_state[t] for t in row.theirs]
        expected = (sum(p.shape[0] for p in parts), *parts[0].shape[1:])
        if tuple(our_state[row.ours].shape) != tuple(expected) or any(p.shape[1:] != parts[0].shape[1:] for p in parts):
            shapes = [tuple(their_state[t].shape) for t in row.theirs]
            problems.add(f"shape of {row.ours} {tuple(our_state[row.ours].shape)} does not fit {list(row.theirs)} "
                         f"{shapes}" + (" (transposed)" if row.transpose else ""))
            continue
        plan.append((row, [p.shape[0] for p in parts]))
    for key in sorted(set(our_state) - used_ours - tied_ours):
        problems.add(f"our tensor {key} has no HF counterpart")
    for key in sorted(set(their_state) - used_theirs - tied_theirs):
        problems.add(f"HF tensor {key} has no counterpart in our model")
    problems.raise_if_any()
    with torch.no_grad():
        for row, sizes in plan:
            if direction == "from_hf":
                parts = [their_state[t].t() if row.transpose else their_state[t] for t in row.theirs]
                our_state[row.ours].copy_(torch.cat(parts, dim=0) if len(parts) > 1 else parts[0])
            else:
                for t, part in zip(row.theirs, our_state[row.ours].split(sizes, dim=0)):
                    their_state[t].copy_(part.t() if row.transpose else part)


def _copy_generation_config(source: PreTrainedModel, target: PreTrainedModel) -> None:
    if getattr(source, "generation_config", None) is not None and target.can_generate():
        target.generation_config = source.generation_config.__class__.from_dict(source.generation_config.to_dict())


def from_hf(hf_model: PreTrainedModel, attn_implementation: str | None = None) -> PreTrainedModel:
    """Convert a native transformers model to ours with the same weights, so logits agree to float rounding.

    `attn_implementation` defaults to the source model's. Raises TypeError for an unsupported class and ValueError
    listing every option or tensor that does not fit.
    """
    pair = _pair_for(hf_model, "hf")
    config = pair.our_class.config_class(**_options_from_hf(pair, hf_model))
    model = pair.our_class._from_config(
        config, attn_implementation=attn_implementation or hf_model.config._attn_implementation, dtype=torch.float32
    )
    _copy(pair.spec.weight_map(pair.head, config), model, hf_model, "from_hf",
          f"{type(hf_model).__name__} → {pair.our_class.__name__}")
    _copy_generation_config(hf_model, model)
    return model.to(hf_model.dtype).train(hf_model.training)


def to_hf(
    model: PreTrainedModel, attn_implementation: str | None = None, hf_class: type[PreTrainedModel] | None = None
) -> PreTrainedModel:
    """Convert one of our models to the native transformers class of the same architecture (e.g. GPT2LMHeadModel).

    A scratch_transformer model goes to BART or Marian, whichever its config fits (learned positions with offset 2
    → BART; split sinusoidal positions → Marian); the modern decoder to Llama, Qwen2 or Mistral. A model `from_hf`
    converted goes back to the architecture it came from (recorded as `config.converted_from`) when that still fits:
    a Mistral without a sliding window stays Mistral, though Llama computes the same. `hf_class` (e.g.
    `transformers.MarianMTModel`) forces one.
    """
    pair, hf_config = _target_for(model, hf_class)
    hf_model = pair.hf_class._from_config(
        hf_config,
        attn_implementation=attn_implementation or model.config._attn_implementation,
        dtype=torch.float32,
        **{name: getattr(model.config, name) for name in pair.head.hf_kwargs},
    )
    _copy(pair.spec.weight_map(pair.head, model.config), model, hf_model, "to_hf",
          f"{type(model).__name__} → {pair.hf_class.__name__}")
    _copy_generation_config(model, hf_model)
    return hf_model.to(model.dtype).train(model.training)


# ----------------------------------------------------------------------------------------------------------------
# Command line: convert a local checkpoint folder or a Hub model
# ----------------------------------------------------------------------------------------------------------------

# Everything a tokenizer folder can hold (what `save_pretrained` writes, and the SentencePiece models of Llama 2,
# Mistral, T5, Marian, XLM-R); the chat template travels as its own file (`chat_template.jinja`, transformers ≥ 4.50),
# inside tokenizer_config.json (older saves) or as named templates (`additional_chat_templates/`).
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "vocab.txt",
                    "merges.txt", "added_tokens.json", "source.spm", "target.spm", "spiece.model", "tokenizer.model",
                    "sentencepiece.bpe.model", "chat_template.jinja", "chat_template.json")
_TOKENIZER_FOLDERS = ("additional_chat_templates",)
# What `convert` fetches of a Hub model: config, weights, tokenizer, card (not other frameworks' weights, GGUF or
# the original/ consolidated checkpoints).
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.spm", "README.md",
                 "additional_chat_templates/*"]


def _resolve_checkpoint(name: str) -> Path:
    """A local folder as it is; otherwise a Hub model id, downloaded with `huggingface_hub.snapshot_download`
    (config, safetensors — else PyTorch .bin — weights, tokenizer files). ValueError in one sentence when it is
    neither a folder nor a model the Hub gives (no network, HF_HUB_OFFLINE, a private or missing repo)."""
    path = Path(name)
    if path.exists():
        return path
    import huggingface_hub
    from huggingface_hub.utils import HFValidationError

    if name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        raise ValueError(f"{name}: no such folder (and not a Hub model id such as 'HuggingFaceTB/SmolLM2-135M')")
    try:
        folder = Path(huggingface_hub.snapshot_download(name, allow_patterns=_HUB_PATTERNS))
        if not any(folder.glob("*.safetensors")):  # an older repo with PyTorch weights only
            folder = Path(huggingface_hub.snapshot_download(name, allow_patterns=[*_HUB_PATTERNS, "*.bin"]))
    except HFValidationError as err:
        raise ValueError(f"{name}: no such folder, and not a valid Hub model id ({err})") from err
    except Exception as err:  # offline, unreachable, gated, missing: one line, the id and the reason
        reason = " ".join(str(err).split())[:300] or type(err).__name__
        raise ValueError(f"{name}: no such folder, and could not download it from the Hugging Face Hub "
                         f"({type(err).__name__}: {reason}); pass a local folder, or run where the Hub is reachable"
                         ) from err
    return folder


def _copy_tokenizer(source: Path, out_dir: Path) -> list[str]:
    """Copy the tokenizer files (and chat templates) of `source` into `out_dir`; returns the names copied."""
    copied = [name for name in _TOKENIZER_FILES if (source / name).is_file()]
    for name in copied:
        shutil.copy2(source / name, out_dir / name)
    for name in _TOKENIZER_FOLDERS:
        if (source / name).is_dir():
            shutil.copytree(source / name, out_dir / name, dirs_exist_ok=True)
            copied.append(name + "/")
    return copied


def _load_checkpoint(directory: Path) -> tuple[PreTrainedModel, str]:
    """Load a local checkpoint with the class named in its config's `architectures`; returns (model, side)."""
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{directory} is not a checkpoint folder: it has no config.json.")
    config = transformers.AutoConfig.from_pretrained(directory, local_files_only=True)
    names = list(getattr(config, "architectures", None) or [])
    for pair in _PAIRS:
        for side, cls in (("hf", pair.hf_class), ("ours", pair.our_class)):
            if cls.__name__ in names:
                return cls.from_pretrained(directory, local_files_only=True), side
    allowed = sorted(set(supported_conversions()) | set(supported_conversions().values()))
    raise ValueError(f"{directory}: architectures {names} cannot be converted; supported classes are {allowed}.")


def _card_task(our_class: type[PreTrainedModel]) -> str | None:
    """The model-card task of a class pair: the one whose Auto class loads our class (none for the bare models, QA
    and tagging)."""
    auto = {cls: name for name, cls in importlib.import_module(our_class.__module__).AUTO_CLASSES.items()}
    return next((task for task, (_, _, loader) in CARD_TASKS.items() if loader == auto.get(our_class)), None)


def _write_card(source: Path, out_dir: Path, model: PreTrainedModel, converted: PreTrainedModel, task: str | None
                ) -> bool:
    """A model card for a converted checkpoint (either direction), so `push --check` passes on it: the `task` of the
    pair, the datasets/language/licence the source's own card states (none claimed when it has none), and a line
    saying where the weights came from. False for pairs without a card task (the bare models, QA, tagging)."""
    from huggingface_hub import ModelCard

    from .model_card import write_model_card

    if task is None:
        return False
    data = ModelCard.load(source / "README.md").data if (source / "README.md").is_file() else None
    datasets = list(getattr(data, "datasets", None) or []) or ["unrecorded"]
    write_model_card(
        out_dir, {}, datasets=datasets, base_config=str(source), task=task,
        language=getattr(data, "language", None), license=getattr(data, "license", None),
        training_summary=f"weights converted unchanged from `{source}` ({type(model).__name__}) with "
        "`scratchformers convert`; the training data is that of the source checkpoint"
        + ("." if data is not None and data.datasets else " (its card does not name it)."),
    )
    return True


def _gguf_source(checkpoint: str, gguf_file: str | None) -> Path | None:
    """The GGUF file to convert: `checkpoint` itself when it is a .gguf file, or `checkpoint`/`gguf_file`; None for
    a checkpoint folder or Hub id (ValueError when --gguf-file names no file)."""
    path = Path(checkpoint)
    if gguf_file is not None:
        if not path.is_dir():
            raise ValueError(f"--gguf-file {gguf_file!r} needs a folder as checkpoint; {checkpoint!r} is none (give "
                             "the .gguf path itself instead)")
        if not (path / gguf_file).is_file():
            found = sorted(p.name for p in path.glob("*.gguf"))
            raise ValueError(f"{path / gguf_file}: no such file" + (f" (GGUF files there: {found})" if found else ""))
        return path / gguf_file
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ValueError(f"{checkpoint}: no such GGUF file")
        return path
    return None


def _convert_gguf(gguf_file: Path, out_dir: Path, replace: bool) -> int:
    """A GGUF file → our checkpoint: transformers' GGUF loader (de-quantized, float32), then `from_hf`; the tokenizer
    and chat template rebuilt from the metadata, and a model card."""
    from .export_gguf import check_gguf_file, read_gguf

    check_gguf_file(gguf_file)  # architecture and tensor types, before any weights are read
    if replace:
        replace_later(out_dir)
    hf_model, tokenizer, summary = read_gguf(gguf_file)
    converted = from_hf(hf_model)
    out_dir.mkdir(parents=True, exist_ok=True)
    converted.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    carded = _write_card(gguf_file, out_dir, hf_model, converted, _card_task(type(converted)))
    types = ", ".join(f"{n} × {t}" for t, n in summary["tensor_types"].items())
    print(f"{gguf_file.name} ({summary['architecture']}; {types}) → {type(hf_model).__name__} → "
          f"{type(converted).__name__}: wrote {out_dir} with its tokenizer"
          + (" and chat template" if tokenizer.chat_template else "") + (" and a model card" if carded else ""))
    return 0


@keeps_earlier_run
def main(argv: Sequence[str] | None = None) -> int:
    """`scratchformers convert <checkpoint dir, Hub id or .gguf file> <out dir>`: HF-native → ours, or ours →
    HF-native (auto-detected); a GGUF file (or `--gguf-file NAME` in a folder) → ours (`_convert_gguf`).

    The converted folder gets the source's tokenizer files, chat template included (so `scratchformers chat OUT`
    works on it) and a model card (upload-complete for `scratchformers push`, in either direction). A
    checkpoint that is not an existing path is taken as a Hub model id (`_resolve_checkpoint`). An out_dir that is a
    file, or a folder that already holds files, is refused (ValueError) unless ``--overwrite``.
    """
    from scratchformers_light.arguments import convert_parser  # (shared with the light `convert --help`)

    args = convert_parser().parse_args(argv)
    if args.out_dir.exists() and not args.out_dir.is_dir():
        raise ValueError(f"out_dir {str(args.out_dir)!r} is a file; give a folder path")
    replace = args.out_dir.is_dir() and any(args.out_dir.iterdir())
    if replace and not args.overwrite:
        raise ValueError(f"out_dir {str(args.out_dir)!r} already holds files; pass --overwrite to replace them "
                         "or choose another folder")
    gguf_file = _gguf_source(args.checkpoint, args.gguf_file)
    if gguf_file is not None:
        return _convert_gguf(gguf_file, args.out_dir, replace)
    source = _resolve_checkpoint(args.checkpoint)  # (a failed download leaves an existing out_dir as it was)
    if replace:
        replace_later(args.out_dir)  # deleted when the conversion succeeds, put back when it fails
    model, side = _load_checkpoint(source)
    converted = from_hf(model) if side == "hf" else to_hf(model)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    converted.save_pretrained(args.out_dir)
    copied = _copy_tokenizer(source, args.out_dir)
    carded = _write_card(source, args.out_dir, model, converted,
                         _card_task(type(converted) if side == "hf" else type(model)))
    print(f"{type(model).__name__} → {type(converted).__name__}: wrote {args.out_dir}"
          + (f" (+ tokenizer files {copied})" if copied else "") + (" and a model card" if carded else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
