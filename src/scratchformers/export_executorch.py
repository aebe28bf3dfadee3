"""ExecuTorch export of our decoder-only causal LMs: a `.pte` program for ExecuTorch's runtime (phones, edge devices,
and its Python bindings), through transformers' own recipe for it.

1. transformers' `convert_and_export_with_cache` (`integrations/executorch.py`) wraps the model in
   `TorchExportableModuleWithStaticCache`: a `StaticCache` of `max_cache_len` positions registered as buffers, and
   `forward(input_ids (1, 1), cache_position (1,)) → logits (1, 1, V)`, the signature of ExecuTorch's LLM runner;
   `torch.export.export(strict=True)` captures it (our model's static-cache path is the one `torch.compile(
   fullgraph=True)` already takes, docs/static-cache.md).
2. `executorch.exir.to_edge_transform_and_lower(..., partitioner=[XnnpackPartitioner()]).to_executorch()` lowers it
   to the XNNPACK CPU backend (float32) and serializes the program.

The program takes one token per call (the prompt too, as transformers' `TorchExportableModuleWithStaticCache.generate`
feeds it) at `cache_position` = its position; `greedy_generate` does that with ExecuTorch's Python runtime. The cache
holds `max_cache_len` positions (prompt + answer); it lives in the program's memory at run time, not in the file.
Needs `pip install "scratchformers[executorch]"` (executorch; its native runtime is built for one torch release).
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import torch
from transformers import PreTrainedModel

__all__ = ["require_executorch", "executorch_problems", "write_pte", "greedy_generate"]

INSTALL_HINT = 'pip install "scratchformers[executorch]"'


def require_executorch() -> None:
    """ValueError naming the install command when `executorch` is missing."""
    if importlib.util.find_spec("executorch") is None:
        raise ValueError(f"ExecuTorch export needs the `executorch` package: {INSTALL_HINT}")


def executorch_problems(config) -> list[str]:
    """Why our (scratch_gpt) `config` cannot be exported to ExecuTorch here; empty when it can."""
    if getattr(config, "sliding_window", None) is not None:
        return [f"`sliding_window`={config.sliding_window}: transformers' ExecuTorch recipe replaces sliding cache "
                "layers by full ones (tokens beyond the window would be attended), so windows are not exported"]
    return []


def write_pte(model: PreTrainedModel, path: str | Path, max_cache_len: int = 1024) -> Path:
    """Export our causal LM `model` (float32, CPU) as the ExecuTorch program `path` with a static cache of
    `max_cache_len` positions (capped at the model's `max_position_embeddings`). ValueError for what cannot be
    exported or a missing package; returns `path`."""
    require_executorch()
    problems = executorch_problems(model.config)
    if problems:
        raise ValueError("Cannot export this model to ExecuTorch:\n  - " + "\n  - ".join(problems))
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from transformers.integrations.executorch import convert_and_export_with_cache

    length = min(max_cache_len, model.config.max_position_embeddings)
    model = model.float().cpu().eval()
    saved = model.generation_config
    model.generation_config = copy.deepcopy(saved)  # the recipe reads its cache settings from here
    model.generation_config.use_cache = True
    model.generation_config.cache_implementation = "static"
    model.generation_config.cache_config = {"batch_size": 1, "max_cache_len": length, "device": "cpu"}
    try:
        exported = convert_and_export_with_cache(model)
    finally:
        model.generation_config = saved
    program = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(program.buffer)
    return path


def load_method(path: str | Path):
    """The `forward` method of a `.pte` program, loaded with ExecuTorch's Python runtime."""
    require_executorch()
    from executorch.runtime import Runtime

    return Runtime.get().load_program(str(path)).load_method("forward")


def greedy_generate(method, prompt: list[int], max_new_tokens: int, eos_token_id: int | None = None) -> list[int]:
    """Greedy decoding with a loaded program (`load_method`): the prompt one token per call, then one new token per
    call, each at its cache position. Returns prompt + new ids; stops after `eos_token_id`."""
    tokens = list(prompt)
    for position in range(len(prompt) + max_new_tokens - 1):
        logits = method.execute([torch.tensor([[tokens[position]]]), torch.tensor([position])])[0]
        if position >= len(prompt) - 1:
            tokens.append(int(logits[0, -1].argmax()))
            if tokens[-1] == eos_token_id:
                break
    return tokens
