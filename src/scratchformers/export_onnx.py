"""ONNX export of our decoder-only causal LMs, with the key/value cache as inputs and outputs, in the layout of
Hugging Face optimum's decoder exports (`optimum.exporters.onnx`, `ORTModelForCausalLM`):

    inputs   input_ids (B, T) int64, attention_mask (B, P + T) int64 (1 = real token, 0 = padding),
             position_ids (B, T) int64, past_key_values.{i}.key / .value (B, H_kv, P, D) float32, i = 0 … L − 1
    outputs  logits (B, T, V), then present.{i}.key / .value (B, H_kv, P + T, D): the past with this step appended

B, T (new tokens), P (cached tokens) are dynamic axes; the prefill passes P = 0 (empty past tensors). A decoding
step feeds the `present` tensors back as `past_key_values` and one new token.

`OnnxDecoder` is the thin wrapper module that is exported: it turns the flat past tensors into a transformers
`DynamicCache`, builds the (B, 1, T, P + T) additive mask (causal ∧ padding, our `masks` functions) from the 2-D
attention mask in graph operations, so no data-dependent Python decision of the model's fast paths is baked into
the graph, runs our model, and flattens the updated cache again. The graph is traced with torch's TorchScript-based
exporter (`torch.onnx.export(..., dynamo=False)`, opset 17, without constant folding, so that a tied output layer is
stored once and transposed in the graph; onnxruntime folds it when it loads the file). The torch.export-based one
(`dynamo=True`) needs the extra package onnxscript, takes ~7× longer on the tiny test model, and specialised the past
length to the example's (torch 2.13). Sliding-window models are refused (one mask for every layer cannot hold
per-layer windows).

`greedy_generate` runs such a file with onnxruntime (CPU), prefill then one token per step, as a user would.
"""

from __future__ import annotations

import importlib.util
import itertools
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.cache_utils import DynamicCache

from .compat import output_cache
from .masks import additive_mask, causal_mask, padding_mask

__all__ = ["OnnxDecoder", "onnx_problems", "write_onnx", "greedy_generate", "input_names", "output_names"]

INSTALL_HINT = 'pip install "scratchformers[export]"'
OPSET = 17


def require_onnx() -> None:
    """ValueError naming the install command when `onnx` or `onnxruntime` is missing."""
    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(f"ONNX export needs {' and '.join(missing)}: {INSTALL_HINT}")


def onnx_problems(config) -> list[str]:
    """Why our (scratch_gpt) `config` cannot be exported to ONNX here; empty when it can."""
    if getattr(config, "sliding_window", None) is not None:
        return [f"`sliding_window`={config.sliding_window}: the exported graph applies one causal mask to every "
                "layer, so sliding windows are not exported yet"]
    return []


def input_names(num_layers: int) -> list[str]:
    """optimum's decoder input names for `num_layers` layers."""
    past = [f"past_key_values.{i}.{kind}" for i in range(num_layers) for kind in ("key", "value")]
    return ["input_ids", "attention_mask", "position_ids", *past]


def output_names(num_layers: int) -> list[str]:
    """optimum's decoder output names: `logits`, then `present.{i}.key` / `.value`."""
    return ["logits", *(f"present.{i}.{kind}" for i in range(num_layers) for kind in ("key", "value"))]


class OnnxDecoder(nn.Module):
    """Flat tensors in, flat tensors out, around one of our causal LMs (what `torch.onnx.export` traces).

    forward(input_ids (B, T), attention_mask (B, P + T), position_ids (B, T), *past (2L tensors (B, H_kv, P, D):
    layer 0's keys, its values, layer 1's keys, …)) → (logits (B, T, V), *present (2L tensors (B, H_kv, P + T,
    D)))."""

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        self.model = model
        self.num_layers = model.config.num_hidden_layers

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        queries, keys = input_ids.shape[1], attention_mask.shape[1]
        allowed = causal_mask(queries, keys, input_ids.device, past=keys - queries)[None, None]  # (1, 1, T, S)
        allowed = allowed & padding_mask(attention_mask)  # (B, 1, T, S)
        dtype = self.model.get_input_embeddings().weight.dtype
        cache = DynamicCache()
        for layer in range(self.num_layers):
            cache.update(past[2 * layer], past[2 * layer + 1], layer)
        out = self.model(input_ids=input_ids, attention_mask=additive_mask(allowed, dtype), position_ids=position_ids,
                         cache=cache, use_cache=True)
        present = output_cache(out)
        return (out.logits, *itertools.chain.from_iterable((layer.keys, layer.values) for layer in present.layers))


def _kv_shape(config) -> tuple[int, int]:
    """(H_kv, D) of one layer's cached keys."""
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    return heads, config.hidden_size // config.num_attention_heads


def write_onnx(model: PreTrainedModel, path: str | Path) -> Path:
    """Export our causal LM `model` (float32, on the CPU) as the ONNX file `path` (see the module docstring for the
    inputs and outputs). ValueError for what cannot be exported (`onnx_problems`) or a missing package; returns
    `path`. The model is put in float32 on the CPU (in place). Models over 2 GB get their weights in a `.data`
    file beside it (ONNX's protobuf limit)."""
    require_onnx()
    problems = onnx_problems(model.config)
    if problems:
        raise ValueError("Cannot export this model to ONNX:\n  - " + "\n  - ".join(problems))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.float().cpu().eval()
    layers = model.config.num_hidden_layers
    heads, dim = _kv_shape(model.config)
    batch, new, cached = 2, 3, 2  # an example with a past, so every axis is traced as it varies
    example = (torch.ones(batch, new, dtype=torch.long), torch.ones(batch, cached + new, dtype=torch.long),
               torch.arange(cached, cached + new).expand(batch, -1),
               *(torch.zeros(batch, heads, cached, dim) for _ in range(2 * layers)))
    names_in, names_out = input_names(layers), output_names(layers)
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "past_sequence+sequence"},
            "position_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}}
    axes.update({name: {0: "batch", 2: "past_sequence"} for name in names_in[3:]})
    axes.update({name: {0: "batch", 2: "past_sequence+sequence"} for name in names_out[1:]})
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings: the model's input checks run once, on the example
        torch.onnx.export(OnnxDecoder(model), example, str(path), input_names=names_in, output_names=names_out,
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False,
                          do_constant_folding=False)  # folding would store a tied output layer twice (its transpose)
    return path


def session(path: str | Path, threads: int | None = None):
    """An onnxruntime CPU InferenceSession for `path` (`threads`: intra-op threads, default onnxruntime's)."""
    require_onnx()
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def empty_past(sess, batch: int) -> dict[str, np.ndarray]:
    """Zero-length past key/value inputs (B, H_kv, 0, D) for a prefill, shaped from the session's inputs."""
    past = {}
    for spec in sess.get_inputs():
        if spec.name.startswith("past_key_values."):
            _, heads, _, dim = spec.shape
            past[spec.name] = np.zeros((batch, heads, 0, dim), dtype=np.float32)
    return past


def greedy_generate(sess, input_ids: np.ndarray, max_new_tokens: int, eos_token_id: int | None = None,
                    pad_token_id: int | None = None) -> np.ndarray:
    """Greedy decoding with an exported file's cache: one prefill over `input_ids` (B, T) int64 (no padding), then
    one token per step. Returns (B, T + n) token ids. As transformers' `generate()`: a row that has produced
    `eos_token_id` continues with `pad_token_id` (default: the EOS id), and decoding stops when every row has."""
    ids = np.asarray(input_ids, dtype=np.int64)
    batch, length = ids.shape
    feeds = {"input_ids": ids, "attention_mask": np.ones((batch, length), dtype=np.int64),
             "position_ids": np.tile(np.arange(length, dtype=np.int64), (batch, 1)), **empty_past(sess, batch)}
    names = [o.name for o in sess.get_outputs()]
    tokens, done = [ids], np.zeros(batch, dtype=bool)
    for _ in range(max_new_tokens):
        outputs = dict(zip(names, sess.run(None, feeds)))
        token = outputs["logits"][:, -1].argmax(-1).astype(np.int64)  # (B,)
        if eos_token_id is not None:
            token = np.where(done, eos_token_id if pad_token_id is None else pad_token_id, token)
            done |= token == eos_token_id
        tokens.append(token[:, None])
        if done.all():
            break
        seen = feeds["attention_mask"].shape[1]
        feeds = {"input_ids": token[:, None], "attention_mask": np.ones((batch, seen + 1), dtype=np.int64),
                 "position_ids": np.full((batch, 1), seen, dtype=np.int64),
                 **{name.replace("present.", "past_key_values."): value for name, value in outputs.items()
                    if name.startswith("present.")}}
    return np.concatenate(tokens, axis=1)
