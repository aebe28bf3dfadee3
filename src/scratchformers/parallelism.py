"""The parallelism claim (issue 14, docs/rnn.md, measured by scripts/parallelism.py): a recurrent encoder-decoder's
forward pass is a chain of L_enc·S + L_dec·T sequential steps, the Transformer's of N_enc + N_dec whatever the
length. The models it compares (built at equal parameters: `build_models`), each one's formula and its evaluation on
a model's layers, the interleaved timing of their training steps (`measure`), the keys of the record the script
writes, and the tables docs/rnn.md carries. Library code the script, scripts/gpu_benchmark.py and the tests share."""

from __future__ import annotations

import statistics
import sys
import time

import torch
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

from scratchformers.architecture_comparison import (
    RNN_KINDS,
    TRANSFORMER,
    count_parameters,
    rnn_config_for_budget,
    rnn_layers,
    transformer_config,
)
from scratchformers.layers import TransformerLayer
from scratchformers.measure import train_step_fn
from scratchformers.modeling_scratch_rnn import ScratchRNNForConditionalGeneration
from scratchformers.modeling_scratch_transformer import ScratchTransformerForConditionalGeneration

MODELS = ("LSTM seq2seq", "LSTM + Bahdanau", TRANSFORMER)
#: scripts/parallelism.py's defaults (and scripts/gpu_benchmark.py's): --quick, and the full run.
QUICK_SETTINGS = dict(lengths=[4, 8], threads=[1, 2], batch_size=2, repeats=2, warmup=1, d_model=32, layers=2,
                      vocab_size=200)
FULL_SETTINGS = dict(lengths=[16, 32, 64, 128, 256], threads=[1, 2], batch_size=16, repeats=7, warmup=1, d_model=96,
                     layers=2, vocab_size=2000)
FORMULAS = {
    "LSTM seq2seq": "L_enc * S + L_dec * T",
    "LSTM + Bahdanau": "L_enc * S + L_dec * T",
    TRANSFORMER: "N_enc + N_dec",
}
# What each key of the JSON means (written into the JSON itself under "keys").
KEYS = {
    "command": "the command line that produced this file",
    "environment": "torch/transformers versions, CPU, logical CPU count, load average before and after the run",
    "settings": "batch size, lengths (S = T), thread counts, repeats, warm-up rounds, Transformer width and layers, "
                "vocabulary size, device",
    "formulas": "sequential steps per training sequence (forward dependency chain) for each model, in terms of "
                "L_enc/L_dec (recurrent layers), N_enc/N_dec (Transformer layers), S/T (source/target length)",
    "models": "per model: parameters, hidden size, encoder/decoder layer counts read off its modules",
    "rows[]": "one per (model, threads, length)",
    "rows[].model, rows[].threads, rows[].length, rows[].batch_size": "what was timed: the model, torch threads, "
                                                                       "S = T = length, and B",
    "rows[].tokens_per_step": "B * (S + T): source and target tokens in one training step",
    "rows[].sequential_steps": "the formula evaluated with this model's layer counts and this length",
    "rows[].decoder_rnn_calls": "calls of the decoder's recurrent module in one forward, counted by a hook (null for "
                                "the Transformer): 1 = the whole target in one nn.LSTM call, T = a Python loop",
    "rows[].transformer_layer_calls": "TransformerLayer forwards in one forward pass, counted by a hook (0 for RNNs)",
    "rows[].seconds": "every repeat's wall-clock seconds for one training step, in order",
    "rows[].tokens_per_second": "median, min, max, q1, q3 of tokens_per_step / seconds over the repeats",
}


def layer_counts(model: torch.nn.Module) -> dict[str, int]:
    """Encoder and decoder layer counts read off the modules: nn.LSTM/nn.GRU `num_layers` for the recurrent family,
    the number of TransformerLayer modules in each stack for the Transformer."""
    if isinstance(model, ScratchRNNForConditionalGeneration):
        return {"encoder": model.model.encoder.rnn.num_layers, "decoder": model.model.decoder.rnn.num_layers}
    return {part: sum(isinstance(m, TransformerLayer) for m in getattr(model.model, part).modules())
            for part in ("encoder", "decoder")}


def sequential_steps(model: torch.nn.Module, source_length: int, target_length: int) -> int:
    """Length of the forward pass's sequential chain (see the module docstring): L_enc·S + L_dec·T for a recurrent
    encoder-decoder, N_enc + N_dec for the Transformer."""
    layers = layer_counts(model)
    if isinstance(model, ScratchRNNForConditionalGeneration):
        return layers["encoder"] * source_length + layers["decoder"] * target_length
    return layers["encoder"] + layers["decoder"]


def markdown_table(result: dict) -> str:
    """The JSON's rows as a Markdown table: one row per length, median tokens/s (min–max) per model and thread
    count, then each model's sequential steps. docs/rnn.md carries this table and `ratios_table` (a test compares)."""
    rows = result["rows"]
    models = [m for m in MODELS if any(r["model"] == m for r in rows)]
    threads = sorted({r["threads"] for r in rows})
    lengths = sorted({r["length"] for r in rows})
    by = {(r["model"], r["threads"], r["length"]): r for r in rows}
    head = ["S = T"] + [f"{m}, {t} thr tok/s" for m in models for t in threads] + [f"{m} seq. steps" for m in models]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for length in lengths:
        cells = [str(length)]
        for m in models:
            for t in threads:
                s = by[(m, t, length)]["tokens_per_second"]
                cells.append(f"{s['median']:,.0f} ({s['min']:,.0f}–{s['max']:,.0f})")
        cells += [str(by[(m, threads[0], length)]["sequential_steps"]) for m in models]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_ratios(numerator: dict, denominator: dict) -> list[float]:
    """tokens/s of `numerator` over `denominator` (two rows), round by round: both ran in the same interleaved round,
    seconds apart, so a busy moment of the machine slows both and cancels out of the ratio."""
    return [(numerator["tokens_per_step"] / a) / (denominator["tokens_per_step"] / b)
            for a, b in zip(numerator["seconds"], denominator["seconds"])]


def ratios_table(result: dict) -> str:
    """Paired ratios, median (min–max) over the rounds: the Transformer's throughput over each RNN's per thread
    count, and each model's speed-up from the first to the last thread count (e.g. 2 threads over 1)."""
    rows = result["rows"]
    models = [m for m in MODELS if any(r["model"] == m for r in rows)]
    rnns = [m for m in models if m != TRANSFORMER]
    threads = sorted({r["threads"] for r in rows})
    lengths = sorted({r["length"] for r in rows})
    by = {(r["model"], r["threads"], r["length"]): r for r in rows}

    def cell(ratios: list[float]) -> str:
        return f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"

    head = ["S = T"]
    if TRANSFORMER in models:
        head += [f"Transformer ÷ {m}, {t} thr" for m in rnns for t in threads]
    if len(threads) > 1:
        head += [f"{m}: {threads[-1]} thr ÷ {threads[0]} thr" for m in models]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for n in lengths:
        cells = [str(n)]
        if TRANSFORMER in models:
            cells += [cell(paired_ratios(by[(TRANSFORMER, t, n)], by[(m, t, n)])) for m in rnns for t in threads]
        if len(threads) > 1:
            cells += [cell(paired_ratios(by[(m, threads[-1], n)], by[(m, threads[0], n)])) for m in models]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def stand_in_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """A word-level tokenizer with `vocab_size` entries (<pad>, <s>, </s>, <unk>, w4 …): what the sizing functions
    read from a tokenizer (its length and special ids). The timed batches are random ids, so only the size matters."""
    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    vocab = {token: i for i, token in enumerate(specials + [f"w{i}" for i in range(len(specials), vocab_size)])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")


def build_models(names: list[str] | tuple[str, ...], d_model: int, layers: int, vocab_size: int, max_length: int,
                 seed: int = 0) -> dict[str, torch.nn.Module]:
    """The models `names` (of MODELS): the Transformer of compare_architectures.py (`d_model` wide, `layers` encoder =
    decoder layers, a `vocab_size` vocabulary) and the RNNs sized to its parameter count (±20 %), each seeded with
    `seed`. `max_length` sets the Transformer's position limit (sinusoidal positions, so it changes no weights)."""
    tokenizer = stand_in_tokenizer(vocab_size)
    torch.manual_seed(seed)
    reference = ScratchTransformerForConditionalGeneration(transformer_config(d_model, layers, max_length, tokenizer))
    budget = count_parameters(reference)
    built = {}
    for name in names:
        torch.manual_seed(seed)
        if name == TRANSFORMER:
            built[name] = reference
        else:
            built[name] = ScratchRNNForConditionalGeneration(
                rnn_config_for_budget(RNN_KINDS[name], budget, rnn_layers(layers), tokenizer))
    return built


def count_calls(model: torch.nn.Module, batch: dict) -> dict[str, int | None]:
    """Forward once (no grad) with hooks counting decoder recurrent-module calls and TransformerLayer calls."""
    counts = {"decoder_rnn_calls": 0, "transformer_layer_calls": 0}
    hooks = []

    def counter(key):
        def hook(*_):
            counts[key] += 1
        return hook

    if isinstance(model, ScratchRNNForConditionalGeneration):
        hooks.append(model.model.decoder.rnn.register_forward_hook(counter("decoder_rnn_calls")))
    else:
        counts["decoder_rnn_calls"] = None
    for module in model.modules():
        if isinstance(module, TransformerLayer):
            hooks.append(module.register_forward_hook(counter("transformer_layer_calls")))
    try:
        with torch.no_grad():
            model(**batch, use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    return counts


def random_batch(vocab_size: int, batch_size: int, length: int, device: torch.device, seed: int) -> dict:
    """B source and target sequences of `length` random non-special ids, no padding."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, vocab_size, (2, batch_size, length), generator=g)
    return {"input_ids": ids[0].to(device), "attention_mask": torch.ones_like(ids[0]).to(device),
            "labels": ids[1].to(device)}


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on a CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def spread(values: list[float]) -> dict[str, float]:
    """median, min, max and quartiles (statistics.quantiles, 'inclusive' method) of `values`."""
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else (values[0],) * 3
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "q1": q1, "q3": q3}


def measure(models: dict, lengths: list[int], threads: list[int], batch_size: int, repeats: int, warmup: int,
            vocab_size: int, device: torch.device, seed: int = 0, progress: bool = False) -> list[dict]:
    """Interleaved timing: every round runs each (threads, length, model) once; returns one row per combination.

    On CUDA the thread count only affects the host side; the device is synchronised around each step.
    """
    cases = []
    for n_threads in threads:
        for length in lengths:
            batch = random_batch(vocab_size, batch_size, length, device, seed + length)
            for name, model in models.items():
                calls = count_calls(model, batch)
                cases.append({
                    "model": name, "threads": n_threads, "length": length, "batch_size": batch_size,
                    "tokens_per_step": batch_size * 2 * length,
                    "sequential_steps": sequential_steps(model, length, length), **calls,
                    "step": train_step_fn(model, {**batch, "use_cache": False}, fused=False), "seconds": [],
                })
    previous = torch.get_num_threads()
    try:
        for round_ in range(warmup + repeats):
            for case in cases:
                torch.set_num_threads(case["threads"])
                synchronize(device)
                start = time.perf_counter()
                case["step"]()
                synchronize(device)
                if round_ >= warmup:
                    case["seconds"].append(time.perf_counter() - start)
            if progress:
                print(f"round {round_ + 1}/{warmup + repeats} done ({'warm-up' if round_ < warmup else 'timed'})",
                      file=sys.stderr, flush=True)
    finally:
        torch.set_num_threads(previous)
    rows = []
    for case in cases:
        del case["step"]
        case["tokens_per_second"] = spread([case["tokens_per_step"] / s for s in case["seconds"]])
        rows.append(case)
    return rows
