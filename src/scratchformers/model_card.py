"""Model cards for saved checkpoints: a ``README.md`` with Hub metadata (YAML front-matter) and a readable body.

The metadata is built with ``huggingface_hub.ModelCardData``, so the Hub parses it exactly as written here:
``library_name: transformers``, ``tags: [scratchformers, <model_type>, custom_code, ...]``, ``datasets``,
``pipeline_tag`` and a ``model-index`` whose ``metrics`` hold the values measured on this checkpoint.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from scratchformers_light.names import CARD_TASKS

from .hub import transformers_knows

# metric names used by our scripts -> (Hub metric type, readable name)
METRIC_TYPES = {
    "perplexity": ("perplexity", "Perplexity"),
    "eval_perplexity": ("perplexity", "Perplexity"),
    "eval_loss": ("loss", "Cross-entropy loss"),
    "eval_accuracy": ("accuracy", "Accuracy"),
    "accuracy": ("accuracy", "Accuracy"),
    "eval_bleu": ("bleu", "BLEU"),
    "bleu": ("bleu", "BLEU"),
    "eval_chrf": ("chrf", "chrF"),
    "chrf": ("chrf", "chrF"),
}


def _read_config(checkpoint_dir: Path) -> dict:
    """The checkpoint's ``config.json`` as a dict (it must exist: write the card after ``save_pretrained``)."""
    path = checkpoint_dir / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: save the model (save_pretrained) before writing its model card")
    return json.loads(path.read_text(encoding="utf-8"))


def _eval_results(metrics: Mapping[str, float], task: str, dataset: str, split: str) -> list[EvalResult]:
    """One ``EvalResult`` per known, finite metric in ``metrics`` (unknown keys such as runtimes are skipped)."""
    results = []
    for key, value in metrics.items():
        if key not in METRIC_TYPES or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        metric_type, metric_name = METRIC_TYPES[key]
        results.append(
            EvalResult(
                task_type=CARD_TASKS[task][0],
                task_name=CARD_TASKS[task][1],
                dataset_type=dataset,
                dataset_name=dataset,
                dataset_split=split,
                metric_type=metric_type,
                metric_name=f"{metric_name} ({split})",
                metric_value=round(float(value), 4),
            )
        )
    return results


def _architecture(config: dict) -> str:
    """One line describing the shape stored in ``config`` (layers, width, heads, FFN size, positions)."""
    keys = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "max_position_embeddings")
    shape = ", ".join(f"{k}={config[k]}" for k in keys if k in config)
    modern = _modern_decoder_options(config)
    return (f"`{config.get('model_type', '?')}` ({', '.join(config.get('architectures') or ['?'])}): {shape}"
            + (f"; {modern}" if modern else ""))


def _modern_decoder_options(config: dict) -> str:
    """The modern decoder's options a config uses (docs/llm.md), in words; "" for the 2017/GPT-2 blocks."""
    parts = []
    if config.get("position_embedding_type") == "rotary":
        rope = config.get("rope_parameters") or {}
        parts.append(f"rotary positions ({rope.get('rope_type', 'default')}, base {rope.get('rope_theta', 10000.0):g})")
    if config.get("norm_type") == "rmsnorm":
        parts.append("RMSNorm")
    if config.get("ffn_type") == "gated":
        parts.append(f"gated feed-forward ({config.get('activation')}: SwiGLU when silu)")
    kv_heads, heads = config.get("num_key_value_heads"), config.get("num_attention_heads")
    if kv_heads and heads and kv_heads != heads:
        parts.append(f"{kv_heads} key/value heads (grouped-query attention)")
    window = config.get("sliding_window")
    if window is not None:
        kinds = config.get("layer_types")
        which = "every layer" if kinds is None else f"{kinds.count('sliding_attention')} of {len(kinds)} layers"
        parts.append(f"sliding-window attention (W={window}, {which})")
    return ", ".join(parts)


def _intro(folder: Path, model_type: str, native: bool) -> str:
    """The card's opening: what the folder holds and what loading it needs (a model with its code, one of
    transformers' own classes when ``native``, or an adapter)."""
    family = ("Transformer-family models written from scratch and packaged as Hugging Face `transformers` models.")
    if (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file():
        return (f"A LoRA adapter (peft) for a `{model_type}` model from scratchformers — {family} This folder holds "
                "only the adapter weights (`adapter_config.json`, `adapter_model.safetensors`) and the tokenizer, no "
                "model: it loads on its base checkpoint, named in `adapter_config.json`, which carries the config and "
                "modeling code.")
    if native:
        return (f"A `{model_type}` model in transformers' own classes, converted from a scratchformers checkpoint "
                "(`scratchformers convert`), weights unchanged; it loads with transformers alone, no custom code.")
    return (f"A `{model_type}` model from scratchformers — {family} This checkpoint carries its own modeling code\n"
            "(`auto_map` in `config.json`), so it loads with `trust_remote_code=True` without the package installed.")


def write_model_card(
    checkpoint_dir: str | os.PathLike,
    metrics: Mapping[str, float],
    datasets: Sequence[str],
    base_config: str | None,
    task: str = "causal-lm",
    model_name: str | None = None,
    dataset_split: str = "validation",
    language: str | list[str] | None = "en",
    license: str | None = "apache-2.0",
    training_summary: str | None = None,
    extra_tags: Sequence[str] = (),
    config: Mapping[str, Any] | None = None,
    usage: str | None = None,
) -> Path:
    """Write ``checkpoint_dir/README.md``: Hub metadata with the measured ``metrics`` and a card body. Returns its path.

    ``task`` ∈ causal-lm | masked-lm | translation | text-classification picks the pipeline tag and the Auto class
    shown in the loading snippet; ``base_config`` names the config the model was built from (e.g.
    ``configs/gpt-tiny.json``) or the checkpoint it was fine-tuned from. A folder without ``config.json`` (a LoRA
    adapter) passes its base model's ``config`` and its own ``usage`` text (markdown) for the "How to use" section.
    """
    if task not in CARD_TASKS:
        raise ValueError(f"unknown task {task!r}; allowed: {', '.join(CARD_TASKS)}")
    if isinstance(datasets, str) or not datasets:
        raise ValueError(f"datasets must be a non-empty list of dataset names, got {datasets!r}")
    folder = Path(checkpoint_dir)
    config = dict(config) if config is not None else _read_config(folder)
    model_type = config.get("model_type", "scratchformers")
    name = model_name or folder.resolve().name
    native = (folder / "config.json").is_file() and transformers_knows(model_type)  # transformers' own class
    data = ModelCardData(
        model_name=name,
        library_name="transformers",
        license=license,
        language=language,
        tags=list(dict.fromkeys(["scratchformers", model_type, *([] if native else ["custom_code"]),
                                 *extra_tags])),
        datasets=list(datasets),
        pipeline_tag=CARD_TASKS[task][0],
        eval_results=_eval_results(metrics, task, datasets[0], dataset_split) or None,
        base_config=base_config,
    )
    _, task_name, auto = CARD_TASKS[task]
    measured = [f"| {k} | {v:.4g} |" for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)]
    body = f"""
# {name}

{_intro(folder, model_type, native)}

## Model
- Task: {task_name} (`{auto}`)
- Architecture: {_architecture(config)}
- Built from: `{base_config or "(not recorded)"}`

## Training data
{", ".join(f"`{d}`" for d in datasets)} — {training_summary or "see the scratchformers repository's data/README.md for sources and licences."}

## Evaluation (measured on the {dataset_split} split of `{datasets[0]}`)
| metric | value |
|---|---|
{chr(10).join(measured) if measured else "| (none measured) | |"}

## How to use
{usage or (_native_usage(auto, name) if native else _default_usage(auto, name, model_type))}
## Intended use and limitations
For learning how Transformer models work and for small experiments. Demo-scale models are tiny and trained for
minutes on small corpora: they produce fluent-looking nonsense and must not be used for decisions about people.
The tokenizer was trained on the same small corpus and splits rare words heavily.
"""
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")
    path = folder / "README.md"
    card.save(path)
    return path


def _native_usage(auto: str, name: str) -> str:
    """The card's "How to use" text for a checkpoint in transformers' own classes (no custom code)."""
    return f"""With transformers alone:

```python
from transformers import {auto}, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained("{name}")
model = {auto}.from_pretrained("{name}")
```
"""


def _default_usage(auto: str, name: str, model_type: str) -> str:
    """The card's "How to use" text for a full checkpoint: loading with and without the package."""
    return f"""Without scratchformers installed (the checkpoint carries its code):

```python
from transformers import {auto}, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained("{name}", trust_remote_code=True)
model = {auto}.from_pretrained("{name}", trust_remote_code=True)
```

With the package installed (`import scratchformers` registers `{model_type}` with the Auto classes):

```python
import scratchformers
from transformers import {auto}
model = {auto}.from_pretrained("{name}")
```
"""
