"""GGUF, llama.cpp's file format, both ways: `write_gguf` writes one of our decoder-only causal LMs (GPT-2, Llama,
Qwen2 and Mistral style) as a `.gguf` file; `read_gguf` loads a `.gguf` file into transformers' class (which
`scratchformers convert` then turns into ours).

Writing goes ours → transformers' names → GGUF names, with no table of our own:

1. `convert.hf_state_dict` gives our tensors under the names and layouts of the transformers class `to_hf` picks
   (`LlamaForCausalLM`, `Qwen2ForCausalLM`, `MistralForCausalLM`, `GPT2LMHeadModel`), read from the conversion
   specs (fused q/k/v split again; GPT-2's Conv1D weights (in, out));
2. `gguf.get_tensor_name_map(arch, n_blocks)` (gguf-py's `TensorNameMap`, the table llama.cpp's
   `convert_hf_to_gguf.py` uses) turns each transformers name into llama.cpp's: `model.layers.3.self_attn.q_proj.weight`
   → `blk.3.attn_q.weight`, `transformer.h.0.attn.c_attn.weight` → `blk.0.attn_qkv.weight`;
3. the layout changes llama.cpp's converter makes (its `modify_tensors`), which transformers' GGUF loader
   (`modeling_gguf_pytorch_utils.py`: `LlamaTensorProcessor`, `GPT2TensorProcessor`) reverses on reading:

   - **llama** (Llama and Mistral): the rows of W_q and W_k (and their biases) are permuted per head. transformers
     rotates the two halves of each head (`rotate_half`: dimension i pairs with i + D/2); llama.cpp's `llama` graph
     rotates adjacent pairs (2i with 2i + 1, RoPE "normal" mode). `LlamaModel.permute` in llama.cpp's converter,
     for a (H·D, C) weight: `w.reshape(H, 2, D/2, C).swapaxes(1, 2).reshape(H·D, C)`, with H = the key/value head
     count for W_k: row h·D + 2i + j ← row h·D + j·D/2 + i. The loader's `_reverse_permute_weights` undoes it.
   - **qwen2**: none (llama.cpp's `qwen2` graph uses the rotate-half ("NEOX") RoPE itself).
   - **gpt2**: GPT-2's Conv1D weights (in, out) are transposed back to (out, in): `c_attn`, `c_proj`, `c_fc`.

4. tensor types as llama.cpp's `prepare_tensors`: 1-D tensors and norm weights stay float32; the others take
   `--outtype` (`f32`, `f16`, `bf16`, `q8_0`, quantized with gguf-py's `gguf.quants.quantize`); a tensor whose rows
   are no multiple of the quantization block (32 for q8_0) falls back to f16, as there.

The metadata carries the hyper-parameters under llama.cpp's keys (`{arch}.context_length`, `.embedding_length`,
`.block_count`, `.feed_forward_length`, `.attention.head_count[_kv]`, `.rope.freq_base`, `.rope.dimension_count`,
`.attention.layer_norm_[rms_]epsilon`, `.vocab_size`) and the tokenizer as llama.cpp's `_set_vocab_gpt2` writes a
byte-level BPE: `tokenizer.ggml.model = "gpt2"`, the pre-tokenizer's name (`tokenizer.ggml.pre`), every token in id
order with its type (normal / control for special added tokens / user-defined for other added tokens / unused for
ids the tokenizer lacks, spelled `[PAD{id}]`), the merges, the special token ids, whether BOS/EOS are added, and the
chat template (those last four through gguf-py's own `SpecialVocab`, reading a saved tokenizer folder).

What is refused, with the reason (`gguf_problems`): sliding windows (llama.cpp's `llama`/`qwen2` graphs attend to
every earlier token), rotary scaling other than the default (llama.cpp reads it from keys transformers' loader
ignores, so the file could not be checked), biases in a Llama (transformers' loader builds `LlamaConfig` without
them), GPT-2 activations other than gelu_new (llama.cpp's `gpt2` graph computes the tanh GELU), and tokenizers that
are not byte-level BPE (SentencePiece vocabularies are not written yet).
"""

from __future__ import annotations

import importlib.util
import json
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["OUTTYPES", "GGUF_ARCHITECTURES", "gguf_problems", "write_gguf", "read_gguf", "gguf_summary"]

#: --outtype → (llama.cpp's file type name in gguf.LlamaFileType, the tensor type of 2-D weights in
#: gguf.GGMLQuantizationType); the choices of llama.cpp's convert_hf_to_gguf.py that transformers can read back.
OUTTYPES = {"f32": ("ALL_F32", "F32"), "f16": ("MOSTLY_F16", "F16"), "bf16": ("MOSTLY_BF16", "BF16"),
            "q8_0": ("MOSTLY_Q8_0", "Q8_0")}

#: transformers class → llama.cpp architecture (`general.architecture`). llama.cpp converts Mistral as `llama`
#: (without a window it computes as Llama); transformers' loader reads such a file as LlamaForCausalLM (it takes the
#: file for a Mistral only when `general.name` is exactly "mistral").
GGUF_ARCHITECTURES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2",
                      "GPT2LMHeadModel": "gpt2"}

INSTALL_HINT = 'pip install "scratchformers[export]"'


def require_gguf() -> None:
    """ValueError naming the install command when the `gguf` package is missing (one `error:` line in the CLI)."""
    if importlib.util.find_spec("gguf") is None:
        raise ValueError(f"GGUF files need the `gguf` package: {INSTALL_HINT}")


# ----------------------------------------------------------------------------------------------------------------
# What can be written
# ----------------------------------------------------------------------------------------------------------------


def gguf_problems(config) -> list[str]:
    """Why our (scratch_gpt) `config` cannot be written as GGUF; empty when it can. Read from the config alone, so the
    CLI can refuse before loading any weights."""
    problems = []
    if getattr(config, "sliding_window", None) is not None:
        problems.append(f"`sliding_window`={config.sliding_window}: llama.cpp's llama/qwen2 graphs attend to every "
                        "earlier token (set it to None only if every prompt fits in the window)")
    if config.position_embedding_type == "rotary":
        rope = dict(config.rope_parameters or {})
        if rope.get("rope_type", "default") != "default":
            problems.append(f"rope_type={rope['rope_type']!r}: only unscaled rotary positions are written (llama.cpp "
                            "reads scaling from keys transformers' GGUF loader ignores, so the file could not be "
                            "checked)")
        if config.attention_bias and getattr(config, "attention_output_bias", None) is not False:
            problems.append("`attention_bias`=True with a bias on the output projection: a Llama with biases, which "
                            "transformers' GGUF loader reads without them (Qwen2's q/k/v-only biases are written)")
        if config.ffn_bias:
            problems.append("`ffn_bias`=True: a Llama MLP with biases, which transformers' GGUF loader reads without "
                            "them")
    elif config.position_embedding_type == "learned" and config.activation != "gelu_new":
        problems.append(f"`activation`={config.activation!r}: llama.cpp's gpt2 graph computes gelu_new (the tanh GELU)")
    return problems


# ----------------------------------------------------------------------------------------------------------------
# The tokenizer
# ----------------------------------------------------------------------------------------------------------------


def _pre_tokenizer_splits() -> dict[str, str]:
    """{regex: llama.cpp pre-tokenizer name} from transformers' own GGUF table (`GGUF_PRE_TOKENIZER_SPLITS`, whose
    names are llama.cpp's `tokenizer.ggml.pre` values); empty on a transformers release without it."""
    try:
        from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS
    except ImportError:
        return {}
    by_regex: dict[str, str] = {}
    for name, regex in GGUF_PRE_TOKENIZER_SPLITS.items():
        by_regex.setdefault(regex, name)  # the first name of several with one regex
    return by_regex


def _pre_tokenizer_name(pre: dict | None) -> str | None:
    """llama.cpp's name for a byte-level BPE pre-tokenizer (tokenizer.json's `pre_tokenizer`), or None if we know
    none: ByteLevel with its own regex → "gpt-2"; digits split one by one, then GPT-2's → "smollm" (SmolLM's);
    Split(regex) + ByteLevel without regex → the name transformers' GGUF reader gives that regex."""
    if pre is None:
        return None
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"
    parts = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else []
    kinds = [p.get("type") for p in parts]
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits") and parts[1].get("use_regex", True):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and not parts[1].get("use_regex", True):
        regex = parts[0].get("pattern", {}).get("Regex")
        return _pre_tokenizer_splits().get(regex)
    return None


@dataclass
class GGUFVocab:
    """The tokenizer as llama.cpp's byte-level BPE metadata: tokens in id order, their types, the pre-tokenizer
    name; `folder` holds the saved tokenizer that gguf-py's `SpecialVocab` reads merges, special ids and the chat
    template from."""

    tokens: list[str]
    types: list[int]
    pre: str
    add_bos: bool
    add_eos: bool


def gguf_vocab(tokenizer: PreTrainedTokenizerBase, vocab_size: int) -> GGUFVocab:
    """Our tokenizer as GGUF vocabulary lists (llama.cpp's `get_vocab_base`): ValueError when it is not a byte-level
    BPE with a pre-tokenizer llama.cpp names, or has more tokens than the model's `vocab_size`."""
    from gguf import TokenType

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(f"the tokenizer ({type(tokenizer).__name__}) is not a fast (tokenizers) tokenizer; GGUF "
                         "export writes byte-level BPE tokenizers")
    spec = json.loads(backend.to_str())
    decoder = (spec.get("decoder") or {}).get("type")
    if spec["model"]["type"] != "BPE" or decoder != "ByteLevel":
        raise ValueError(f"the tokenizer is a {spec['model']['type']} model with a {decoder} decoder; GGUF export "
                         "writes byte-level BPE tokenizers (GPT-2's, SmolLM's, Llama 3's, Qwen2's) only")
    pre = _pre_tokenizer_name(spec.get("pre_tokenizer"))
    if pre is None:
        raise ValueError(f"the tokenizer's pre-tokenizer {json.dumps(spec.get('pre_tokenizer'))[:200]} has no "
                         "llama.cpp name we know (ByteLevel alone: gpt-2; Digits + ByteLevel: smollm; the Split "
                         "regexes of transformers' GGUF reader)")
    vocab = tokenizer.get_vocab()
    if max(vocab.values()) >= vocab_size:
        raise ValueError(f"the tokenizer has ids up to {max(vocab.values())}, the model only {vocab_size} embeddings")
    by_id = {index: token for token, index in vocab.items()}
    added = tokenizer.added_tokens_decoder  # {id: AddedToken}
    tokens, types = [], []
    for index in range(vocab_size):
        if index not in by_id:  # the embedding matrix is larger than the vocabulary (padded)
            tokens.append(f"[PAD{index}]")
            types.append(int(TokenType.UNUSED))
        else:
            tokens.append(by_id[index])
            kind = TokenType.NORMAL if index not in added else (
                TokenType.CONTROL if added[index].special else TokenType.USER_DEFINED)
            types.append(int(kind))
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    add_bos = len(full) > len(plain) and tokenizer.bos_token_id is not None and full[0] == tokenizer.bos_token_id
    add_eos = len(full) > len(plain) and tokenizer.eos_token_id is not None and full[-1] == tokenizer.eos_token_id
    return GGUFVocab(tokens, types, pre, add_bos, add_eos)


# ----------------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------------


def permute_for_llama_cpp(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """llama.cpp's `LlamaModel.permute` (convert_hf_to_gguf.py): the (heads·D, …) rows of W_q or W_k (or a bias),
    from transformers' rotate-half pairing (i with i + D/2) to adjacent pairs (2i with 2i + 1) in every head."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(
        weight.shape)


def _llama_cpp_layout(arch: str, hf_name: str, tensor: torch.Tensor, hf_config) -> torch.Tensor:
    """A transformers tensor in the layout llama.cpp's converter writes for `arch` (see the module docstring)."""
    if arch == "llama" and re.search(r"\.(q_proj|k_proj)\.(weight|bias)$", hf_name):
        heads = hf_config.num_attention_heads if ".q_proj." in hf_name else hf_config.num_key_value_heads
        return permute_for_llama_cpp(tensor, heads)
    if arch == "gpt2" and hf_name.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")):
        return tensor.t()  # Conv1D (in, out) → (out, in)
    return tensor


def _write_hyperparameters(writer, arch: str, hf_config) -> None:
    """llama.cpp's keys for the shape of the model (its `set_gguf_parameters` for the architecture)."""
    if arch == "gpt2":
        writer.add_context_length(hf_config.n_positions)
        writer.add_embedding_length(hf_config.n_embd)
        writer.add_block_count(hf_config.n_layer)
        writer.add_feed_forward_length(hf_config.n_inner or 4 * hf_config.n_embd)
        writer.add_head_count(hf_config.n_head)
        writer.add_layer_norm_eps(hf_config.layer_norm_epsilon)
        return
    head_dim = hf_config.hidden_size // hf_config.num_attention_heads
    rope = hf_config.rope_parameters or {}
    writer.add_vocab_size(hf_config.vocab_size)
    writer.add_context_length(hf_config.max_position_embeddings)
    writer.add_embedding_length(hf_config.hidden_size)
    writer.add_block_count(hf_config.num_hidden_layers)
    writer.add_feed_forward_length(hf_config.intermediate_size)
    writer.add_head_count(hf_config.num_attention_heads)
    writer.add_head_count_kv(hf_config.num_key_value_heads)
    writer.add_rope_freq_base(float(rope.get("rope_theta", 10000.0)))
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(hf_config.rms_norm_eps)


def _tensor_type(gguf_name: str, tensor: np.ndarray, outtype: str):
    """llama.cpp's choice (`prepare_tensors`): float32 for 1-D tensors and norm weights, else the outtype's."""
    from gguf import GGMLQuantizationType

    if tensor.ndim <= 1 or gguf_name.endswith("_norm.weight"):
        return GGMLQuantizationType.F32
    return GGMLQuantizationType[OUTTYPES[outtype][1]]


def _quantized(tensor: np.ndarray, qtype) -> tuple[np.ndarray, Any]:
    """`tensor` (float32) as `qtype` data; f16 when its rows do not split into whole blocks (llama.cpp's fallback)."""
    from gguf import GGMLQuantizationType, quants

    try:
        return quants.quantize(tensor, qtype), qtype
    except quants.QuantError:
        return quants.quantize(tensor, GGMLQuantizationType.F16), GGMLQuantizationType.F16


def write_gguf(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: str | Path, outtype: str = "f16",
    name: str | None = None,
) -> Path:
    """Write our decoder-only causal LM `model` (ScratchGPTForCausalLM) and its byte-level BPE `tokenizer` (chat
    template included) as the llama.cpp file `path`, weights in `outtype` (see `OUTTYPES`). `name` goes into
    `general.name` (default: the model's `name_or_path` folder name). ValueError listing what does not fit
    (`gguf_problems`, the tokenizer, or the config's HF architecture); returns `path`."""
    require_gguf()
    import gguf

    from .convert import hf_state_dict

    if outtype not in OUTTYPES:
        raise ValueError(f"--outtype {outtype!r} is not a GGUF type we write; choose from {', '.join(OUTTYPES)}")
    problems = gguf_problems(model.config)
    if problems:
        raise ValueError("Cannot write this model as GGUF:\n  - " + "\n  - ".join(problems))
    hf_class, hf_config, tensors = hf_state_dict(model)
    arch = GGUF_ARCHITECTURES.get(hf_class.__name__)
    if arch is None:
        raise ValueError(f"{hf_class.__name__} has no llama.cpp architecture here; GGUF export writes "
                         f"{', '.join(GGUF_ARCHITECTURES)}")
    vocab = gguf_vocab(tokenizer, model.config.vocab_size)
    name = name or Path(str(getattr(model, "name_or_path", "") or "model")).name
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[_arch_enum(arch)])
    writer.add_name(name)
    writer.add_file_type(int(gguf.LlamaFileType[OUTTYPES[outtype][0]]))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _write_hyperparameters(writer, arch, hf_config)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    with tempfile.TemporaryDirectory() as folder:  # gguf-py reads merges, special ids, chat template from files
        tokenizer.save_pretrained(folder)
        (Path(folder) / "config.json").write_text(json.dumps(
            {k: getattr(model.config, k, None) for k in ("bos_token_id", "eos_token_id", "pad_token_id")}))
        special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=model.config.vocab_size)
    special.add_special_token.update(bos=vocab.add_bos, eos=vocab.add_eos)  # what the tokenizer does, not a guess
    special.add_to_gguf(writer, quiet=True)
    names = gguf.get_tensor_name_map(_arch_enum(arch), model.config.num_hidden_layers)
    for hf_name, tensor in tensors.items():
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ValueError(f"gguf's tensor map for {arch} has no name for {hf_name}")
        data = _llama_cpp_layout(arch, hf_name, tensor.detach(), hf_config).float().contiguous().numpy()
        data, qtype = _quantized(data, _tensor_type(gguf_name, data, outtype))
        writer.add_tensor(gguf_name, data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _arch_enum(arch: str):
    import gguf

    return next(key for key, value in gguf.MODEL_ARCH_NAMES.items() if value == arch)


# ----------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------


def _field(reader, key: str) -> Any:
    """One metadata value of a GGUFReader (a str, number or list), or None."""
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def _dequantizable(qtype) -> bool:
    """Whether gguf-py (what transformers' GGUF loader calls) can turn tensors of this type into floats."""
    from gguf import GGML_QUANT_SIZES, quants

    block_bytes = GGML_QUANT_SIZES[qtype][1]
    try:
        quants.dequantize(np.zeros((1, block_bytes), dtype=np.uint8), qtype)
    except (NotImplementedError, KeyError, ValueError):
        return False
    return True


def gguf_summary(path: str | Path) -> dict:
    """What a GGUF file holds, read from its header and metadata only: architecture, name, context length, FFN
    width, tensor types (counted), tokenizer model and pre-tokenizer, special token ids, chat template."""
    require_gguf()
    import gguf

    reader = gguf.GGUFReader(str(path))
    types: dict[str, int] = {}
    for tensor in reader.tensors:
        types[tensor.tensor_type.name] = types.get(tensor.tensor_type.name, 0) + 1
    ids = {k: _field(reader, f"tokenizer.ggml.{k}_token_id") for k in ("bos", "eos", "padding", "unknown")}
    arch = _field(reader, "general.architecture")
    return {"architecture": arch, "name": _field(reader, "general.name"),
            "context_length": _field(reader, f"{arch}.context_length"),
            "feed_forward_length": _field(reader, f"{arch}.feed_forward_length"),
            "tensor_types": types, "tokenizer": _field(reader, "tokenizer.ggml.model"),
            "pre": _field(reader, "tokenizer.ggml.pre"), "token_ids": ids,
            "chat_template": _field(reader, "tokenizer.chat_template")}


#: llama.cpp architectures whose transformers class our converter takes (`general.architecture`).
READABLE = ("llama", "qwen2", "gpt2")


def check_gguf_file(path: Path) -> None:
    """ValueError before any weights are read: not a GGUF file, an architecture we do not convert, or a tensor type
    transformers cannot de-quantize (named, with the tensor)."""
    require_gguf()
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as err:  # not GGUF: a bad magic number, a truncated file
        raise ValueError(f"{path} is not a readable GGUF file ({type(err).__name__}: {err})") from err
    arch = _field(reader, "general.architecture")
    if arch not in READABLE:
        raise ValueError(f"{path} holds a {arch!r} model; scratchformers converts GGUF architectures "
                         f"{', '.join(READABLE)} (Mistral is written as llama)")
    unreadable = {}
    for tensor in reader.tensors:
        if tensor.tensor_type.name not in unreadable and not _dequantizable(tensor.tensor_type):
            unreadable[tensor.tensor_type.name] = tensor.name
    if unreadable:
        kind, first = next(iter(unreadable.items()))
        raise ValueError(f"{path}: tensor {first} is stored as {kind}, which transformers' GGUF loader (gguf-py) "
                         "cannot de-quantize; re-quantize the file to a type it reads (e.g. llama.cpp's "
                         "llama-quantize to Q8_0, Q4_K_M or F16)")


def read_gguf(path: str | Path, dtype: torch.dtype = torch.float32
              ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, dict]:
    """Load a GGUF file with transformers' own loader (`from_pretrained(folder, gguf_file=name)`: de-quantized into
    LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM or GPT2LMHeadModel, in `dtype`) and its tokenizer (rebuilt
    from the metadata, chat template included). Returns (model, tokenizer, `gguf_summary`); ValueError first as
    `check_gguf_file`. The special token ids of the metadata are set on the model's config and generation config
    (transformers' loader leaves the config class's defaults there) and on the tokenizer (transformers 5.13's rebuild
    sets no padding token or EOS as padding, and swaps BOS and EOS for llama files); for gpt2 files the context
    length and FFN width are passed to the config (transformers' gpt2 mapping reads them into keys GPT2Config
    ignores, `n_ctx` and `feed_forward_length`, and would build the default 1024 positions and 4·n_embd)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    check_gguf_file(path)
    summary = gguf_summary(path)
    overrides = {}
    if summary["architecture"] == "gpt2":  # transformers' gpt2 mapping sends these keys to names GPT2Config ignores
        overrides = {"n_positions": summary["context_length"], "n_inner": summary["feed_forward_length"]}
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=dtype, **overrides)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    ids = summary["token_ids"]
    for ours, theirs in (("bos_token_id", "bos"), ("eos_token_id", "eos"), ("pad_token_id", "padding")):
        if ids[theirs] is not None:
            setattr(model.config, ours, int(ids[theirs]))
            if model.generation_config is not None:
                setattr(model.generation_config, ours, int(ids[theirs]))
            token = tokenizer.convert_ids_to_tokens(int(ids[theirs]))
            if getattr(tokenizer, ours.replace("_id", "")) != token:  # older transformers' rebuilds differ
                setattr(tokenizer, ours.replace("_id", ""), token)
    tokenizer.model_max_length = _context_length(model.config)
    _restore_pre_tokenizer(tokenizer, summary["pre"])
    return model.eval(), tokenizer, summary


def _restore_pre_tokenizer(tokenizer: PreTrainedTokenizerBase, pre: str | None) -> None:
    """Give a rebuilt byte-level tokenizer the pre-tokenizer its llama.cpp name stands for where transformers' GGUF
    reader does not know the name and falls back to GPT-2's regex: "smollm" (SmolLM's tokenizer.json: every digit
    its own piece, then GPT-2's ByteLevel regex; llama.cpp's regexes "\\p{N}" then GPT-2's). Then our checkpoint
    splits text as the original tokenizer does, and exporting it again writes the same name."""
    from tokenizers import pre_tokenizers

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if pre != "smollm" or backend is None:
        return
    current = json.loads(backend.to_str()).get("pre_tokenizer") or {}
    if current.get("type") == "ByteLevel" and current.get("use_regex", True):
        backend.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])


def _context_length(config) -> int:
    return int(getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", 1024))


def tensor_types(path: str | Path) -> Iterable[tuple[str, str]]:
    """(name, type) of every tensor in a GGUF file."""
    require_gguf()
    import gguf

    return [(t.name, t.tensor_type.name) for t in gguf.GGUFReader(str(path)).tensors]
