"""The parallelism claim (issue 14, docs/rnn.md, measured by scripts/parallelism.py): a recurrent encoder-decoder's
forward pass is a chain of L_enc·S + L_dec·T sequential steps, the Transformer's of N_enc + N_dec whatever the
length. The models it compares, each one's formula and its evaluation on a model's layers, the keys of the record the
script writes, and the tables docs/rnn.md carries. Library code the script, scripts/gpu_benchmark.py and the tests
share."""

from __future__ import annotations

import statistics

import torch

from scratchformers.architecture_comparison import TRANSFORMER
from scratchformers.layers import TransformerLayer
from scratchformers.modeling_scratch_rnn import ScratchRNNForConditionalGeneration

MODELS = ("LSTM seq2seq", "LSTM + Bahdanau", TRANSFORMER)
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
