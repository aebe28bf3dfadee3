"""`scratchformers export CHECKPOINT OUTPUT --format {gguf,onnx}`: one of our decoder-only causal LMs
(ScratchGPTForCausalLM: GPT-2, Llama, Qwen2 and Mistral style) to the runtimes small models are deployed with.

- `--format gguf` (`export_gguf.write_gguf`): `OUTPUT/<name>-<outtype>.gguf` for llama.cpp (and Ollama, LM Studio,
  transformers' GGUF loader), tokenizer and chat template in the metadata; `--outtype f32 | f16 (default) | bf16 |
  q8_0`.
- `--format onnx` (`export_onnx.write_onnx`): `OUTPUT/model.onnx` with optimum's decoder inputs and outputs (cache
  included), plus config.json, generation_config.json and the tokenizer files; checked with onnxruntime on a short
  prompt before the command returns.
- `--format executorch` (`export_executorch.write_pte`): `OUTPUT/model.pte` for ExecuTorch (XNNPACK, float32) with a
  static cache of `--max-cache-len` positions, plus config and tokenizer; checked with ExecuTorch's runtime on a short
  prompt before the command returns. Needs `pip install "scratchformers[executorch]"`.

Everything that can be refused is refused before the weights load: a checkpoint that is no causal LM of ours (BERT,
the encoder-decoder, the RNNs have no export format yet), options the format cannot express (`gguf_problems`,
`onnx_problems`), a missing optional package (`pip install "scratchformers[export]"`), an OUTPUT that holds files
(unless `--overwrite`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .folders import keeps_earlier_run, replace_later

FORMATS = ("gguf", "onnx", "executorch")
#: What each family of ours can be exported to (the decoder-only causal LM only, so far).
FAMILY_FORMATS = {"scratch_gpt": ("gguf", "onnx", "executorch"), "scratch_bert": (), "scratch_transformer": (),
                  "scratch_rnn": ()}
CAUSAL_LM = "ScratchGPTForCausalLM"


def _checkpoint_config(checkpoint: str) -> dict:
    """config.json of the checkpoint (for a LoRA adapter: its base's), ValueError when there is none."""
    from .cli import _config

    return _config(checkpoint)


def check_exportable(checkpoint: str, fmt: str) -> dict:
    """The checkpoint's config dict when it is a causal LM of ours that `fmt` can take; else one ValueError naming
    what the checkpoint is and the formats that exist for it. Reads config.json only."""
    config = _checkpoint_config(checkpoint)
    family = config.get("model_type", "?")
    architecture = (config.get("architectures") or ["?"])[0]
    if family not in FAMILY_FORMATS:
        raise ValueError(f"{checkpoint} holds {architecture} (model_type {family!r}), not a scratchformers model: "
                         "convert it first (`scratchformers convert IN OUT`), then export the converted folder")
    formats = FAMILY_FORMATS[family] if architecture == CAUSAL_LM else ()
    if not formats:
        raise ValueError(f"{checkpoint} holds {architecture} ({family}); export formats exist for decoder-only "
                         f"causal LMs ({CAUSAL_LM}: {', '.join(FAMILY_FORMATS['scratch_gpt'])}), none yet for "
                         f"{architecture}")
    if fmt not in formats:
        raise ValueError(f"--format {fmt} is not available for {architecture}; formats: {', '.join(formats)}")
    return config


def _check_output(output: Path, overwrite: bool) -> bool:
    """ValueError for an OUTPUT that is a file, or a folder with files and no --overwrite; True if it is to be
    replaced."""
    if output.exists() and not output.is_dir():
        raise ValueError(f"OUTPUT {str(output)!r} is a file; give a folder (the exported files go inside it)")
    replace = output.is_dir() and any(output.iterdir())
    if replace and not overwrite:
        raise ValueError(f"OUTPUT {str(output)!r} already holds files; pass --overwrite to replace them or choose "
                         "another folder")
    return replace


def _megabytes(path: Path) -> str:
    size = sum(p.stat().st_size for p in ([path] if path.is_file() else path.iterdir()))
    return f"{size / 1e6:.1f} MB"


@keeps_earlier_run
def run_export(args: argparse.Namespace) -> int:
    """`scratchformers export`: check everything that can be checked from files, load the model, write, report. An
    OUTPUT replaced with --overwrite is put back when the export fails."""
    fmt, output = args.format, Path(args.output)
    if fmt == "gguf":
        from .export_gguf import OUTTYPES, gguf_problems, require_gguf

        require_gguf()
        outtype = args.outtype or "f16"
        if outtype not in OUTTYPES:
            raise ValueError(f"--outtype {outtype} is not a GGUF type we write; choose from {', '.join(OUTTYPES)}")
        problems_of = gguf_problems
    elif fmt == "onnx":
        from .export_onnx import onnx_problems, require_onnx

        require_onnx()
        problems_of = onnx_problems
    else:
        from .export_executorch import executorch_problems, require_executorch

        require_executorch()
        problems_of = executorch_problems
    if fmt != "gguf" and (args.outtype or "f32") != "f32":
        raise ValueError(f"--outtype {args.outtype}: {fmt} export writes float32 weights (f32) only")
    if getattr(args, "max_cache_len", None) is not None and (fmt != "executorch" or args.max_cache_len < 1):
        raise ValueError("--max-cache-len is a positive number of positions, for --format executorch only")
    check_exportable(args.checkpoint, fmt)
    replace = _check_output(output, args.overwrite)

    from transformers import AutoConfig, AutoTokenizer

    import scratchformers  # noqa: F401  (registers our model types)

    from .sft import adapter_base, load_causal_lm

    base = adapter_base(args.checkpoint) or args.checkpoint
    problems = problems_of(AutoConfig.from_pretrained(base))
    if problems:
        raise ValueError(f"Cannot export {args.checkpoint} to {fmt}:\n  - " + "\n  - ".join(problems))
    tokenizer = _tokenizer(args.checkpoint, base, AutoTokenizer)
    if tokenizer is None and fmt == "gguf":
        raise ValueError(f"{args.checkpoint} has no tokenizer files; a GGUF file carries its tokenizer")
    if replace:
        replace_later(output)  # put back if the export fails
    model = load_causal_lm(args.checkpoint)
    output.mkdir(parents=True, exist_ok=True)
    name = Path(args.checkpoint).resolve().name
    if fmt == "gguf":
        from .export_gguf import gguf_summary, write_gguf

        path = write_gguf(model, tokenizer, output / f"{name}-{outtype}.gguf", outtype, name=name)
        summary = gguf_summary(path)
        types = ", ".join(f"{n} × {t}" for t, n in summary["tensor_types"].items())
        print(f"wrote {path} ({_megabytes(path)}; {summary['architecture']}, tensors {types}; tokenizer "
              f"{summary['tokenizer']}/{summary['pre']}"
              + (", chat template" if summary["chat_template"] else ", no chat template") + ")")
        return 0
    model.config.to_json_file(output / "config.json")  # (not save_pretrained: no copy of the remote code)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(output)
    if tokenizer is not None:
        tokenizer.save_pretrained(output)
    if fmt == "executorch":
        from .export_executorch import write_pte

        length = min(args.max_cache_len or 1024, model.config.max_position_embeddings)
        path = write_pte(model, output / "model.pte", length)
        same, steps = _check_pte(model, path, tokenizer)
        print(f"wrote {path} ({_megabytes(path)}, static cache of {length} positions) with config and "
              + ("tokenizer" if tokenizer is not None else "no tokenizer")
              + f"; ExecuTorch's runtime gives {'the same' if same else 'OTHER'} greedy tokens as the model over "
              f"{steps} steps")
        return 0 if same else 1
    from .export_onnx import write_onnx

    path = write_onnx(model, output / "model.onnx")
    difference, largest, length = _check_onnx(model, path, tokenizer)
    print(f"wrote {path} ({_megabytes(path)}) with config and "
          + ("tokenizer" if tokenizer is not None else "no tokenizer") + f"; onnxruntime agrees with the model: max "
          f"|Δ logits| = {difference:.1e} (largest |logit| {largest:.1f}) on a {length}-token prompt")
    return 0


def _tokenizer(checkpoint: str, base: str, auto):
    """The checkpoint's tokenizer (an adapter folder's own, else its base's), or None when neither has one."""
    for folder in dict.fromkeys((checkpoint, base)):
        if any((Path(folder) / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
            return auto.from_pretrained(folder)
    return None


CHECK_TEXT = "The quick brown fox jumps over the lazy dog, and then it rests in the shade of a tree."


def _check_ids(model, tokenizer, length: int):
    """(1, ≤ length) ids of `CHECK_TEXT`, or `length` ids spread over the vocabulary without a tokenizer."""
    import torch

    if tokenizer is not None:
        return tokenizer(CHECK_TEXT, return_tensors="pt")["input_ids"][:, :length]
    return (torch.arange(length) * 7919 + 11).remainder(model.config.vocab_size)[None]


def _check_pte(model, path: Path, tokenizer=None, steps: int = 8) -> tuple[bool, int]:
    """Whether ExecuTorch's runtime on `path` and `model.generate` give the same `steps` greedy tokens after a short
    prompt; (same, steps)."""
    import torch

    from .export_executorch import greedy_generate, load_method

    prompt = _check_ids(model, tokenizer, 8)
    with torch.no_grad():
        expected = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=steps,
                                  min_new_tokens=steps, do_sample=False, eos_token_id=None,
                                  pad_token_id=model.config.pad_token_id or 0)
    got = greedy_generate(load_method(path), prompt[0].tolist(), steps)
    return got == expected[0].tolist(), steps


def _check_onnx(model, path: Path, tokenizer=None) -> tuple[float, float, int]:
    """(max |Δ logits|, max |logit|, prompt length) between onnxruntime on `path` and `model`, prefill of one prompt:
    `CHECK_TEXT` tokenized, or 16 ids spread over the vocabulary without a tokenizer."""
    import numpy as np
    import torch

    from .export_onnx import empty_past, session

    ids = _check_ids(model, tokenizer, 64 if tokenizer is not None else 16)
    length = ids.shape[1]
    sess = session(path)
    feeds = {"input_ids": ids.numpy(), "attention_mask": np.ones((1, length), dtype=np.int64),
             "position_ids": np.arange(length, dtype=np.int64)[None], **empty_past(sess, 1)}
    logits = sess.run(["logits"], feeds)[0]
    with torch.no_grad():
        reference = model(ids).logits.float().numpy()
    return float(np.abs(logits - reference).max()), float(np.abs(reference).max()), length

