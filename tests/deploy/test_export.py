"""`scratchformers export` (GGUF for llama.cpp, ONNX for onnxruntime) and `scratchformers convert MODEL.gguf` (issues
21 and 22), on tiny models of each decoder style with a byte-level BPE tokenizer trained here.

The proofs are the other side's own readers: transformers' GGUF loader (`from_pretrained(folder, gguf_file=...)`)
must give our logits from the file we wrote (float32 ≤ 1e-4; f16 and q8_0 ≤ 1e-4 against our model with the same
rounding applied to its weights, and f16 top-1 agreement ≥ 99 % against the unrounded model) and rebuild our tokenizer
and chat template; onnxruntime must give our logits (≤ 1e-4, left-padded batches too) and our greedy tokens over 32
cached steps. The real SmolLM2-135M-Instruct GGUF (scripts/fetch_smollm2_gguf.py) is used where it is cached.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from families import LLAMA_OPTIONS
from transformers import AutoModelForCausalLM, AutoTokenizer

import scratchformers_cli
from scratchformers import ScratchGPTConfig, ScratchGPTForCausalLM
from scratchformers.convert import hf_state_dict, to_hf
from scratchformers.tokenization import train_tokenizer

gguf = pytest.importorskip("gguf")
ort = pytest.importorskip("onnxruntime")

from scratchformers.export_gguf import gguf_summary, permute_for_llama_cpp, tensor_types, write_gguf  # noqa: E402
from scratchformers.export_onnx import greedy_generate, input_names, output_names, session  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|endoftext|>{% endfor %}"
TEXTS = ["Hello world, it's 2024!", "  two spaces  and\nnew lines\t tabs", "<|endoftext|>special<|pad|>",
         "ünïcödé ✓ — 日本語"]
ATOL = 1e-4
# transformers' GGUF tokenizer rebuild by tokenizer type (integrations/gguf/gguf_tokenizer_mapping.py, in 5.25): every
# control token special, a plain ByteLevel decoder. The older one (integrations/ggml.py, 5.13) builds Llama-arch
# files' byte-level BPE through its SentencePiece converter (decoding strips a leading space) and adds no control
# tokens but BOS/EOS for qwen2/gpt2 files, so there only plain text is compared, encoded.
FAITHFUL_GGUF_TOKENIZERS = importlib.util.find_spec("transformers.integrations.gguf") is not None
PLAIN = [text for text in TEXTS if "<|" not in text]
VOCAB = 320  # the tokenizer has 300 entries: ids 300 … 319 are padding rows of the embedding

LLAMA = {**LLAMA_OPTIONS, "num_key_value_heads": 2, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}
STYLES = {
    "llama": LLAMA,  # grouped-query attention, tied output layer
    "llama-untied": {**LLAMA, "tie_word_embeddings": False, "num_key_value_heads": 4},
    "qwen2": {**LLAMA, "attention_bias": True, "attention_output_bias": False, "tie_word_embeddings": False},
    "mistral": {**LLAMA, "converted_from": "MistralForCausalLM"},  # written as llama.cpp's llama, as llama.cpp does
    "gpt2": dict(activation="gelu_new", intermediate_size=96, max_position_embeddings=128),  # learned positions
}
GGUF_ARCH = {"llama": "llama", "llama-untied": "llama", "qwen2": "qwen2", "mistral": "llama", "gpt2": "gpt2"}
HF_CLASS = {"llama": "LlamaForCausalLM", "llama-untied": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
            "mistral": "LlamaForCausalLM", "gpt2": "GPT2LMHeadModel"}  # (a Mistral without window = Llama)


@pytest.fixture(scope="module")
def tokenizer():
    """Byte-level BPE (GPT-2's kind: the repo's `bpe`), 300 entries, with a chat template."""
    tok = train_tokenizer(ROOT / "data" / "prose" / "train.txt", "bpe", 300)
    tok.chat_template = TEMPLATE
    return tok


def tiny(style: str, **extra) -> ScratchGPTForCausalLM:
    """A random model of `style`; init std 0.2 gives peaked softmaxes (random std-0.02 models are nearly uniform)."""
    torch.manual_seed(0)
    options = dict(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                   max_position_embeddings=1024, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                   initializer_range=0.2, bos_token_id=0, eos_token_id=0, pad_token_id=1)
    return ScratchGPTForCausalLM(ScratchGPTConfig(**{**options, **STYLES[style], **extra})).eval()


def checkpoint(tmp_path: Path, style: str, tokenizer, **extra) -> tuple[Path, ScratchGPTForCausalLM]:
    model = tiny(style, **extra)
    folder = tmp_path / f"tiny-{style}"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model


def ids(batch: int = 4, length: int = 48, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 300, (batch, length), generator=torch.Generator().manual_seed(seed))


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `scratchformers ARGV`, run in this process."""
    capsys.readouterr()  # (what earlier steps printed: progress bars of save_pretrained)
    code = scratchformers_cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def transformers_from_gguf(path: Path, **overrides) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32,
                                                **overrides).eval()


def gpt2_overrides(style: str, model) -> dict:
    """transformers' gpt2 GGUF mapping reads the context length and FFN width into keys GPT2Config ignores."""
    if style != "gpt2":
        return {}
    return {"n_positions": model.config.max_position_embeddings, "n_inner": model.config.intermediate_size}


def rounded(model: ScratchGPTForCausalLM, qtype: str) -> ScratchGPTForCausalLM:
    """A copy of `model` whose 2-D weights went through the GGUF type `qtype` and back (gguf-py's own quantizer):
    what a file of that type holds. llama.cpp's permutation moves whole rows and quantization blocks run along rows,
    so rounding our (out, in) rows is rounding the file's."""
    copy = ScratchGPTForCausalLM(model.config).eval()
    copy.load_state_dict(model.state_dict())
    kind = gguf.GGMLQuantizationType[qtype]
    with torch.no_grad():
        for parameter in copy.parameters():
            if parameter.dim() == 2:
                data = parameter.numpy()
                parameter.copy_(torch.from_numpy(gguf.quants.dequantize(gguf.quants.quantize(data, kind), kind)
                                                 .reshape(data.shape)))
    return copy


# ----------------------------------------------------------------------------------------------------- GGUF export


def test_hf_state_dict_is_what_to_hf_builds():
    for style in STYLES:
        model = tiny(style)
        hf_class, _, tensors = hf_state_dict(model)
        reference = to_hf(model).state_dict()
        assert hf_class.__name__ == type(to_hf(model)).__name__
        assert set(reference) - set(tensors) <= {"lm_head.weight"}  # tied: saved once, under the embedding
        assert ("lm_head.weight" in tensors) == (not model.config.tie_word_embeddings)
        assert all(torch.equal(tensors[name], reference[name]) for name in tensors), style


def test_llama_cpp_permutation_is_what_transformers_reverses():
    """llama.cpp's converter pairs dimensions (2i, 2i + 1) in each head; transformers' loader undoes it exactly."""
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    heads, dim = 3, 8
    weight = torch.arange(heads * dim * 5, dtype=torch.float32).reshape(heads * dim, 5)
    permuted = permute_for_llama_cpp(weight, heads)
    for h in range(heads):
        for i in range(dim // 2):
            for j in range(2):  # row h·D + 2i + j ← row h·D + j·D/2 + i
                assert torch.equal(permuted[h * dim + 2 * i + j], weight[h * dim + j * dim // 2 + i])
    back = LlamaTensorProcessor()._reverse_permute_weights(permuted.numpy(), heads, heads)
    assert np.array_equal(back, weight.numpy())


@pytest.mark.parametrize("style", list(STYLES))
def test_float32_gguf_reads_back_in_transformers_with_our_logits_and_tokenizer(style, tokenizer, tmp_path):
    model = tiny(style)
    path = write_gguf(model, tokenizer, tmp_path / "tiny-f32.gguf", "f32", name="tiny")
    summary = gguf_summary(path)
    assert summary["architecture"] == GGUF_ARCH[style] and summary["tensor_types"].keys() == {"F32"}
    assert summary["tokenizer"] == "gpt2" and summary["pre"] == "gpt-2" and summary["chat_template"] == TEMPLATE
    names = dict(tensor_types(path))
    assert ("output.weight" in names) == (not model.config.tie_word_embeddings)
    theirs = transformers_from_gguf(path, **gpt2_overrides(style, model))
    assert type(theirs).__name__ == HF_CLASS[style]
    with torch.no_grad():
        assert (theirs(ids()).logits - model(ids()).logits).abs().max().item() <= ATOL

    rebuilt = AutoTokenizer.from_pretrained(str(tmp_path), gguf_file=path.name)
    for text in TEXTS if FAITHFUL_GGUF_TOKENIZERS else PLAIN:
        assert rebuilt(text)["input_ids"] == tokenizer(text)["input_ids"], text
        if FAITHFUL_GGUF_TOKENIZERS:
            assert rebuilt.decode(rebuilt(text)["input_ids"]) == text
    assert rebuilt.chat_template == TEMPLATE
    chat = [{"role": "user", "content": "Hi there"}]
    assert rebuilt.apply_chat_template(chat, tokenize=False) == tokenizer.apply_chat_template(chat, tokenize=False)
    if FAITHFUL_GGUF_TOKENIZERS:  # (5.13 leaves the padding token unset; `read_gguf` sets it from the metadata)
        assert (rebuilt.eos_token, rebuilt.pad_token) == (tokenizer.eos_token, tokenizer.pad_token)


def test_gguf_vocabulary_is_llama_cpps(tokenizer, tmp_path):
    """Tokens in id order, ids the tokenizer lacks as unused `[PAD{id}]`, special tokens as control; merges, special
    ids and add-BOS/EOS flags as gguf-py's SpecialVocab writes them."""
    path = write_gguf(tiny("llama"), tokenizer, tmp_path / "v.gguf", "f32")
    reader = gguf.GGUFReader(str(path))
    field = lambda key: reader.fields[key].contents()  # noqa: E731
    tokens, types = field("tokenizer.ggml.tokens"), field("tokenizer.ggml.token_type")
    assert len(tokens) == VOCAB and tokens[:300] == [tokenizer.convert_ids_to_tokens(i) for i in range(300)]
    assert tokens[300:] == [f"[PAD{i}]" for i in range(300, VOCAB)] and set(types[300:]) == {gguf.TokenType.UNUSED}
    assert types[tokenizer.convert_tokens_to_ids("<|endoftext|>")] == gguf.TokenType.CONTROL
    assert types[tokenizer.convert_tokens_to_ids("Ġthe")] == gguf.TokenType.NORMAL
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    assert field("tokenizer.ggml.merges") == [" ".join(m) if isinstance(m, list) else m for m in merges]
    assert field("tokenizer.ggml.eos_token_id") == 0 and field("tokenizer.ggml.padding_token_id") == 1
    assert field("tokenizer.ggml.add_bos_token") is False  # GPT-2's byte-level BPE adds no BOS
    assert field("llama.rope.dimension_count") == 16 and field("llama.attention.head_count_kv") == 2


@pytest.mark.parametrize("style", ["llama", "gpt2"])
@pytest.mark.parametrize("outtype", ["f16", "q8_0"])
def test_half_and_q8_0_files_hold_our_weights_rounded_to_that_type(style, outtype, tokenizer, tmp_path):
    model = tiny(style)
    path = write_gguf(model, tokenizer, tmp_path / f"tiny-{outtype}.gguf", outtype)
    kinds = set(gguf_summary(path)["tensor_types"])
    assert kinds == {"F32", outtype.upper()}  # norms and biases stay float32, as llama.cpp writes them
    theirs = transformers_from_gguf(path, **gpt2_overrides(style, model))
    with torch.no_grad():
        expected = rounded(model, outtype.upper())(ids()).logits
        got = theirs(ids()).logits
        assert (got - expected).abs().max().item() <= ATOL
        if outtype == "f16":  # and against the unrounded model: the same next token almost everywhere
            assert (got.argmax(-1) == model(ids()).logits.argmax(-1)).float().mean().item() >= 0.99


def test_gguf_refuses_what_llama_cpp_would_compute_differently(tokenizer, tmp_path):
    windowed = tiny("llama", sliding_window=8)
    with pytest.raises(ValueError, match="sliding_window"):
        write_gguf(windowed, tokenizer, tmp_path / "w.gguf")
    with pytest.raises(ValueError, match="activation"):
        write_gguf(tiny("gpt2", activation="relu"), tokenizer, tmp_path / "r.gguf")
    with pytest.raises(ValueError, match="rope_type"):
        write_gguf(tiny("llama", rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}),
                   tokenizer, tmp_path / "s.gguf")
    with pytest.raises(ValueError, match="outtype"):
        write_gguf(tiny("llama"), tokenizer, tmp_path / "q.gguf", "q4_k")
    spm = train_tokenizer(ROOT / "data" / "prose" / "train.txt", "seq2seq_bpe", 300)
    with pytest.raises(ValueError, match="byte-level BPE"):
        write_gguf(tiny("llama"), spm, tmp_path / "spm.gguf")
    assert not list(tmp_path.glob("*.gguf"))


@pytest.mark.parametrize("style", ["llama", "qwen2", "gpt2"])
def test_llama_cpp_runs_our_files_with_our_logits_and_tokens(style, tokenizer, tmp_path):
    """llama.cpp itself (llama-cpp-python, not a dependency: installed, it builds llama.cpp from source) on our f32
    files, with a float32 KV cache (its default is f16): our logits and our token ids. GPT-2 within 5e-3: ggml's CPU
    GELU reads a float16 table."""
    llama_cpp = pytest.importorskip("llama_cpp")
    model = tiny(style)
    path = write_gguf(model, tokenizer, tmp_path / "tiny-f32.gguf", "f32")
    tokens = tokenizer((ROOT / "data" / "prose" / "validation.txt").read_text()[:400])["input_ids"][:48]
    llm = llama_cpp.Llama(model_path=str(path), logits_all=True, n_ctx=64, n_threads=1, type_k=0, type_v=0,
                          verbose=False)  # type 0: GGML_TYPE_F32
    llm.eval(tokens)
    with torch.no_grad():
        ours = model(torch.tensor([tokens])).logits[0].numpy()
    assert np.abs(np.array(llm.scores[:len(tokens)]) - ours).max() <= (5e-3 if style == "gpt2" else ATOL)
    for text in TEXTS:
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == tokenizer(text)["input_ids"], text


# ----------------------------------------------------------------------------------------- convert MODEL.gguf → ours


@pytest.mark.parametrize("style", ["llama", "qwen2", "gpt2"])
def test_convert_a_gguf_file_gives_our_model_with_transformers_logits(style, tokenizer, tmp_path, capsys):
    model = tiny(style)
    path = write_gguf(model, tokenizer, tmp_path / "in" / "tiny-q8_0.gguf", "q8_0")  # a quantized file is accepted
    code, out, err = cli(capsys, "convert", str(path), str(tmp_path / "ours"))
    assert code == 0, err
    assert "ScratchGPTForCausalLM" in out
    ours = AutoModelForCausalLM.from_pretrained(tmp_path / "ours").eval()
    assert isinstance(ours, ScratchGPTForCausalLM)
    theirs = transformers_from_gguf(path, **gpt2_overrides(style, model))
    with torch.no_grad():
        assert (ours(ids()).logits - theirs(ids()).logits).abs().max().item() <= ATOL
    assert (ours.config.eos_token_id, ours.config.pad_token_id) == (0, 1)  # from the GGUF metadata
    loaded = AutoTokenizer.from_pretrained(tmp_path / "ours")
    assert (loaded.eos_token, loaded.pad_token) == ("<|endoftext|>", "<|pad|>")
    assert loaded.chat_template == TEMPLATE and (tmp_path / "ours" / "chat_template.jinja").is_file()
    assert all(loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
               for text in (TEXTS if FAITHFUL_GGUF_TOKENIZERS else PLAIN))
    assert (tmp_path / "ours" / "README.md").is_file()


def test_convert_takes_gguf_file_in_a_folder(tokenizer, tmp_path, capsys):
    path = write_gguf(tiny("llama"), tokenizer, tmp_path / "in" / "a.gguf", "f16")
    code, _, err = cli(capsys, "convert", str(path.parent), str(tmp_path / "ours"), "--gguf-file", "b.gguf")
    assert code == 2 and "b.gguf: no such file" in err and "a.gguf" in err
    code, _, err = cli(capsys, "convert", str(path.parent), str(tmp_path / "ours"), "--gguf-file", "a.gguf")
    assert code == 0, err
    assert (tmp_path / "ours" / "model.safetensors").is_file()


def test_convert_names_a_tensor_type_transformers_cannot_dequantize(tmp_path, capsys):
    path = tmp_path / "q8_1.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    block_bytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_1][1]
    writer.add_tensor("token_embd.weight", np.zeros((4, 2 * block_bytes), dtype=np.uint8),
                      raw_dtype=gguf.GGMLQuantizationType.Q8_1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    code, _, err = cli(capsys, "convert", str(path), str(tmp_path / "ours"))
    assert code == 2 and err.count("\n") == 1
    assert "token_embd.weight is stored as Q8_1" in err and "cannot de-quantize" in err
    assert not (tmp_path / "ours").exists()


def test_convert_refuses_an_architecture_we_do_not_take(tmp_path, capsys):
    path = tmp_path / "bert.gguf"
    writer = gguf.GGUFWriter(str(path), "bert")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    code, _, err = cli(capsys, "convert", str(path), str(tmp_path / "ours"))
    assert code == 2 and "'bert' model" in err and "llama, qwen2, gpt2" in err


# ------------------------------------------------------------------------------------------------------- CLI: GGUF


def test_export_gguf_command_writes_the_file(tokenizer, tmp_path, capsys):
    folder, model = checkpoint(tmp_path, "llama", tokenizer)
    code, out, err = cli(capsys, "export", str(folder), str(tmp_path / "out"), "--format", "gguf")
    assert code == 0, err
    path = tmp_path / "out" / "tiny-llama-f16.gguf"
    assert path.is_file() and f"wrote {path}" in out and "chat template" in out
    assert gguf_summary(path)["name"] == "tiny-llama"
    code, _, err = cli(capsys, "export", str(folder), str(tmp_path / "out"), "--format", "gguf")
    assert code == 2 and "--overwrite" in err
    code, _, err = cli(capsys, "export", str(folder), str(tmp_path / "out"), "--format", "gguf", "--outtype", "q8_0",
                       "--overwrite")
    assert code == 0, err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["tiny-llama-q8_0.gguf"]


# ------------------------------------------------------------------------------------------------------------ ONNX


@pytest.mark.parametrize("style", ["llama", "gpt2"])
def test_onnx_export_runs_in_onnxruntime_with_our_logits_and_greedy_tokens(style, tokenizer, tmp_path, capsys):
    folder, model = checkpoint(tmp_path, style, tokenizer)
    code, out, err = cli(capsys, "export", str(folder), str(tmp_path / "onnx"), "--format", "onnx")
    assert code == 0, err
    assert "onnxruntime agrees" in out
    assert {"model.onnx", "config.json", "tokenizer.json", "chat_template.jinja"} <= {
        p.name for p in (tmp_path / "onnx").iterdir()}
    sess = session(tmp_path / "onnx" / "model.onnx", threads=1)
    layers = model.config.num_hidden_layers
    assert [i.name for i in sess.get_inputs()] == input_names(layers)
    assert [o.name for o in sess.get_outputs()] == output_names(layers)

    # prefill of a left-padded batch: positions count real tokens only, as generate() does
    tokens = ids(3, 12)
    mask = torch.ones_like(tokens)
    mask[0, :5] = 0
    mask[2, :2] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    heads, dim = model.config.num_key_value_heads or 4, 16
    empty = {name: np.zeros((3, heads, 0, dim), dtype=np.float32) for name in input_names(layers)[3:]}
    got = sess.run(None, {"input_ids": tokens.numpy(), "attention_mask": mask.numpy(),
                          "position_ids": positions.numpy(), **empty})
    with torch.no_grad():
        reference = model(tokens, attention_mask=mask, position_ids=positions, use_cache=True)
    real = mask.bool().numpy()
    assert np.abs(got[0] - reference.logits.numpy())[real].max() <= ATOL
    assert got[1].shape == (3, heads, 12, dim)

    prompt = ids(2, 5, seed=3)
    with torch.no_grad():
        expected = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=32, do_sample=False,
                                  eos_token_id=0, pad_token_id=1)
    got = greedy_generate(sess, prompt.numpy(), 32, eos_token_id=0, pad_token_id=1)
    assert got.shape == expected.shape == (2, 5 + 32) and np.array_equal(got, expected.numpy())


# ------------------------------------------------------------------------------------------- CLI: what is refused


def test_non_decoder_checkpoints_are_refused_before_loading(tmp_path, capsys):
    from scratchformers import ScratchBertConfig, ScratchBertForMaskedLM

    bert = ScratchBertForMaskedLM(ScratchBertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=64))
    bert.save_pretrained(tmp_path / "bert")
    (tmp_path / "bert" / "model.safetensors").write_bytes(b"not weights")  # proves nothing is loaded
    for fmt in ("gguf", "onnx"):
        code, out, err = cli(capsys, "export", str(tmp_path / "bert"), str(tmp_path / "out"), "--format", fmt)
        assert code == 2 and out == "" and err.count("\n") == 1
        assert "ScratchBertForMaskedLM" in err and "none yet" in err
        assert "ScratchGPTForCausalLM: gguf, onnx, executorch" in err
    assert not (tmp_path / "out").exists()


def test_missing_packages_and_unfit_options_are_one_error_line(tokenizer, tmp_path, capsys, monkeypatch):
    folder, _ = checkpoint(tmp_path, "llama", tokenizer, sliding_window=4)
    code, _, err = cli(capsys, "export", str(folder), str(tmp_path / "o"), "--format", "onnx")
    assert code == 2 and "sliding_window" in err
    code, _, err = cli(capsys, "export", str(folder), str(tmp_path / "o"), "--format", "onnx", "--outtype", "f16")
    assert code == 2 and "(f32) only" in err and err.count("\n") == 1
    code, _, err = cli(capsys, "export", str(folder), str(tmp_path / "o"), "--format", "gguf", "--max-cache-len", "8")
    assert code == 2 and "--format executorch only" in err

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("gguf", "onnxruntime", "executorch") else real(name, *a))
    for fmt, package, extra in (("gguf", "gguf", "export"), ("onnx", "onnxruntime", "export"),
                                ("executorch", "executorch", "executorch")):
        code, _, err = cli(capsys, "export", str(folder), str(tmp_path / "o"), "--format", fmt)
        assert code == 2 and package in err and f'pip install "scratchformers[{extra}]"' in err
    assert not (tmp_path / "o").exists()


def test_gguf_export_needs_the_tokenizer(tmp_path, capsys):
    tiny("llama").save_pretrained(tmp_path / "bare")
    (tmp_path / "bare" / "model.safetensors").write_bytes(b"not weights")  # refused before the weights load
    code, _, err = cli(capsys, "export", str(tmp_path / "bare"), str(tmp_path / "o"), "--format", "gguf")
    assert code == 2 and "no tokenizer files" in err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("style", ["llama", "gpt2"])
def test_executorch_program_gives_our_greedy_tokens(style, tokenizer, tmp_path, capsys):
    """`--format executorch`: torch.export with a static cache (transformers' recipe), XNNPACK, ExecuTorch's runtime
    one token per call: the greedy tokens of our generate(). Skipped without executorch (not in [dev])."""
    pytest.importorskip("executorch")
    from scratchformers.export_executorch import greedy_generate as pte_greedy
    from scratchformers.export_executorch import load_method

    folder, model = checkpoint(tmp_path, style, tokenizer)
    code, out, err = cli(capsys, "export", str(folder), str(tmp_path / "pte"), "--format", "executorch",
                         "--max-cache-len", "64")
    assert code == 0, err
    assert "the same greedy tokens" in out and (tmp_path / "pte" / "tokenizer.json").is_file()
    prompt = ids(1, 6, seed=5)
    with torch.no_grad():
        expected = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=24,
                                  min_new_tokens=24, do_sample=False, eos_token_id=None, pad_token_id=1)
    got = pte_greedy(load_method(tmp_path / "pte" / "model.pte"), prompt[0].tolist(), 24)
    assert got == expected[0].tolist()


# ----------------------------------------------------------------------------------- the real SmolLM2 (when cached)

SMOLLM2 = Path(os.environ.get("SF_SMOLLM2_GGUF",
                              Path.home() / ".cache" / "scratchformers" / "SmolLM2-135M-Instruct.Q4_1.gguf"))


@pytest.mark.slow
@pytest.mark.skipif(not SMOLLM2.is_file(), reason=f"{SMOLLM2} is not cached: python scripts/fetch_smollm2_gguf.py "
                    "(or set SF_SMOLLM2_GGUF)")
def test_real_smollm2_gguf_converts_answers_and_exports_back(tmp_path, capsys):
    """SmolLM2-135M-Instruct (Q4_1, llama.cpp's file): ours from it has transformers' logits and greedy chat answer;
    ours exported again as f16 is read by transformers with the same answer and ≥ 99 % top-1 agreement."""
    code, _, err = cli(capsys, "convert", str(SMOLLM2), str(tmp_path / "smollm2"))
    assert code == 0, err
    ours = AutoModelForCausalLM.from_pretrained(tmp_path / "smollm2").eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / "smollm2")
    theirs = transformers_from_gguf(SMOLLM2)
    chat = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                   add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    text = tok((ROOT / "data" / "prose" / "validation.txt").read_text()[:1500], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = ours(text).logits
        assert (logits - theirs(text).logits).abs().max().item() <= ATOL
        answer = ours.generate(chat, max_new_tokens=12, do_sample=False)
        assert torch.equal(answer, theirs.generate(chat, max_new_tokens=12, do_sample=False))
    assert "Paris" in tok.decode(answer[0, chat.shape[1]:])
    del theirs

    decoder = json.loads(tok.backend_tokenizer.to_str()).get("decoder") or {}
    if decoder.get("type") != "ByteLevel":  # older transformers (5.13) rebuild SmolLM2's tokenizer with another decoder
        with pytest.raises(ValueError, match="byte-level BPE"):
            write_gguf(ours, tok, tmp_path / "again" / "smollm2-f16.gguf", "f16")
        pytest.skip(f"this transformers rebuilds the GGUF tokenizer with a {decoder.get('type')} decoder, which GGUF "
                    "export refuses (asserted); the export half runs where the rebuild is byte-level (5.25)")
    path = write_gguf(ours, tok, tmp_path / "again" / "smollm2-f16.gguf", "f16")
    assert gguf_summary(path)["pre"] == gguf_summary(SMOLLM2)["pre"] == "smollm"
    again = transformers_from_gguf(path)
    with torch.no_grad():
        assert (again(text).logits.argmax(-1) == logits.argmax(-1)).float().mean().item() >= 0.99
        assert torch.equal(again.generate(chat, max_new_tokens=12, do_sample=False), answer)
