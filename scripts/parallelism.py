#!/usr/bin/env python
"""The parallelism claim, measured: training tokens/s against sequence length for an LSTM seq2seq, LSTM + Bahdanau
and the Transformer encoder-decoder at equal parameter counts, on 1 and 2 CPU threads.

"The Transformer allows for significantly more parallelization" (Vaswani et al. 2017, §1): a recurrent layer needs
one sequential step per position, a self-attention layer a constant number (§4, Table 1). Per training sequence
(teacher forcing, source length S, target length T) that gives, as the dependency chain of one forward pass:

    RNN encoder-decoder:  L_enc · S + L_dec · T    (each layer runs its positions one after another; the two
                                                    directions of a bidirectional encoder are independent)
    Transformer:          N_enc + N_dec            (each layer handles all positions at once, whatever the length)

The script reads those counts off each model's modules (its recurrent layers and Transformer layers) and checks them
against the formulas; it counts, with a hook, how often each decoder's recurrent module is called per forward (once
for the plain LSTM, whose nn.LSTM loops over time in C++; T times for Bahdanau, which loops in Python because each
step's attention needs the previous state). The timed unit is one training step: forward + backward + AdamW step on
a batch of random token ids (throughput does not depend on which ids), B sequences of S = T = length tokens, no
padding. tokens/s counts source + target tokens. Repeats are interleaved (every model, length and thread count once
per round, in turn), so a slow moment of a shared machine hits all of them; the JSON keeps every repeat and reports
the median and the spread (min, max, interquartile range).

The models are sized as scripts/compare_architectures.py sizes them (`transformer_config` and
`rnn_config_for_budget` of `scratchformers.architecture_comparison`, imported, not copied): the RNNs' hidden size is the one whose parameter count is nearest the
Transformer's, within ±20 %.

    python scripts/parallelism.py            # the full run (about a minute on a quiet 2-core machine)
    python scripts/parallelism.py --replot   # redraw the plot and print the tables from the saved JSON
    python scripts/parallelism.py --quick --out-dir /tmp/par   # seconds: tiny models, short lengths (the CI smoke test)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Tokenizer, models  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

from scratchformers import ScratchRNNForConditionalGeneration, ScratchTransformerForConditionalGeneration  # noqa: E402
from scratchformers.architecture_comparison import (  # noqa: E402
    RNN_KINDS,
    count_parameters,
    rnn_config_for_budget,
    rnn_layers,
    transformer_config,
)
from scratchformers.layers import TransformerLayer  # noqa: E402
from scratchformers.parallelism import (  # noqa: E402, F401  (MODELS: gpu_benchmark.py reads it from here)
    FORMULAS,
    KEYS,
    MODELS,
    TRANSFORMER,
    layer_counts,
    markdown_table,
    ratios_table,
    sequential_steps,
)

ROOT = Path(__file__).resolve().parents[1]
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; --quick shrinks models, lengths and repeats to finish in seconds."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "rnn")
    p.add_argument("--quick", action="store_true", help="tiny models, lengths 4 and 8, 2 repeats (a smoke test)")
    p.add_argument("--lengths", type=int, nargs="+", help="source = target lengths (default 16 32 64 128 256)")
    p.add_argument("--threads", type=int, nargs="+", help="torch thread counts (default 1 2)")
    p.add_argument("--batch-size", type=int, help="sequences per training step (default 16)")
    p.add_argument("--repeats", type=int, help="timed rounds (default 7)")
    p.add_argument("--warmup", type=int, help="untimed rounds first (default 1)")
    p.add_argument("--d-model", type=int, help="Transformer width; the RNNs are sized to its parameter count")
    p.add_argument("--layers", type=int, help="Transformer encoder = decoder layers; RNN layers = 1 if < 3 else 2")
    p.add_argument("--vocab-size", type=int, help="vocabulary (output layer) size")
    p.add_argument("--device", default="cpu")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--replot", action="store_true",
                   help="measure nothing: redraw parallelism.png and print the tables from --out-dir/parallelism.json")
    args = p.parse_args(argv)
    quick = dict(lengths=[4, 8], threads=[1, 2], batch_size=2, repeats=2, warmup=1, d_model=32, layers=2,
                 vocab_size=200)
    full = dict(lengths=[16, 32, 64, 128, 256], threads=[1, 2], batch_size=16, repeats=7, warmup=1, d_model=96,
                layers=2, vocab_size=2000)
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for name in ("lengths", "threads"):
        bad = [v for v in getattr(args, name) if v < 1]
        if bad:
            p.error(f"--{name} must be positive integers, got {bad}")
    for name in ("batch_size", "repeats", "d_model", "layers", "vocab_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.warmup < 0:
        p.error(f"--warmup must be 0 or more, got {args.warmup}")
    if args.vocab_size < 8:
        p.error(f"--vocab-size must be at least 8 (4 special tokens + words), got {args.vocab_size}")
    return args


def stand_in_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """A word-level tokenizer with `vocab_size` entries (<pad>, <s>, </s>, <unk>, w4 …): what the sizing functions
    read from a tokenizer (its length and special ids). The timed batches are random ids, so only the size matters."""
    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    vocab = {token: i for i, token in enumerate(specials + [f"w{i}" for i in range(len(specials), vocab_size)])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")


def build_models(args: argparse.Namespace, max_length: int) -> dict[str, torch.nn.Module]:
    """The Transformer of compare_architectures.py and the RNNs sized to its parameter count (±20 %).

    `max_length` sets the Transformer's position limit (sinusoidal positions, so it changes no weights).
    """
    tokenizer = stand_in_tokenizer(args.vocab_size)
    torch.manual_seed(args.seed)
    reference = ScratchTransformerForConditionalGeneration(
        transformer_config(args.d_model, args.layers, max_length, tokenizer))
    budget = count_parameters(reference)
    built = {}
    for name in args.models:
        torch.manual_seed(args.seed)
        if name == TRANSFORMER:
            built[name] = reference
        else:
            built[name] = ScratchRNNForConditionalGeneration(
                rnn_config_for_budget(RNN_KINDS[name], budget, rnn_layers(args.layers), tokenizer))
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


def training_step(model: torch.nn.Module, batch: dict):
    """One closure = forward + backward + AdamW step (the unit that is timed)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        model(**batch, use_cache=False).loss.backward()
        optimizer.step()

    return step


def synchronize(device: torch.device) -> None:
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
                    "step": training_step(model, batch), "seconds": [],
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


def plot(rows: list[dict], path: Path, title: str) -> None:
    """tokens/s against length (log-log), one line per model and thread count, min–max as error bars."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = {name: f"C{i}" for i, name in enumerate(MODELS)}
    for (name, n_threads) in sorted({(r["model"], r["threads"]) for r in rows}, key=lambda k: (MODELS.index(k[0]), k[1])):
        mine = sorted((r for r in rows if r["model"] == name and r["threads"] == n_threads), key=lambda r: r["length"])
        xs = [r["length"] for r in mine]
        med = [r["tokens_per_second"]["median"] for r in mine]
        err = [[m - r["tokens_per_second"]["min"] for m, r in zip(med, mine)],
               [r["tokens_per_second"]["max"] - m for m, r in zip(med, mine)]]
        ax.errorbar(xs, med, yerr=err, marker="o", markersize=3, capsize=2, color=colours[name],
                    linestyle="-" if n_threads == 1 else "--", label=f"{name}, {n_threads} thread{'s' * (n_threads > 1)}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length S = T (tokens)")
    ax.set_ylabel("training tokens/s (source + target), median")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_title(settings: dict) -> str:
    return (f"training step (forward + backward + AdamW), batch {settings['batch_size']}, {settings['device']}\n"
            f"Transformer d={settings['d_model']}, {settings['layers']}+{settings['layers']} layers; RNNs at equal "
            "parameters ±20 %; bars: min–max of the repeats")


def main(argv: list[str] | None = None) -> dict:
    """Measure, write parallelism.json and parallelism.png into --out-dir, print the table; returns the JSON dict."""
    args = parse_args(argv)
    if args.replot:
        result = json.loads((args.out_dir / "parallelism.json").read_text())
        plot(result["rows"], args.out_dir / "parallelism.png", plot_title(result["settings"]))
        print(markdown_table(result), ratios_table(result), sep="\n\n")
        return result
    device = torch.device(args.device)
    models = {name: m.to(device) for name, m in build_models(args, max(args.lengths)).items()}
    load_before = os.getloadavg()
    rows = measure(models, args.lengths, args.threads, args.batch_size, args.repeats, args.warmup, args.vocab_size,
                   device, args.seed, progress=not args.quick)
    command = "python scripts/parallelism.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {
        "command": command.strip(),
        "keys": KEYS,
        "environment": {
            "date": datetime.date.today().isoformat(), "torch": torch.__version__,
            "transformers": transformers.__version__, "processor": platform.processor() or platform.machine(),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "logical_cpus": os.cpu_count(), "load_average_before": load_before, "load_average_after": os.getloadavg(),
        },
        "settings": {"batch_size": args.batch_size, "lengths": args.lengths, "threads": args.threads,
                     "repeats": args.repeats, "warmup": args.warmup, "d_model": args.d_model, "layers": args.layers,
                     "vocab_size": args.vocab_size, "device": str(device), "dtype": "float32", "seed": args.seed},
        "formulas": {name: FORMULAS[name] for name in models},
        "models": {name: {"parameters": count_parameters(m), "hidden_size": m.config.hidden_size,
                          "layers": layer_counts(m)} for name, m in models.items()},
        "rows": rows,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "parallelism.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(rows, args.out_dir / "parallelism.png", plot_title(result["settings"]))
    print(markdown_table(result), ratios_table(result), sep="\n\n")
    print(f"wrote {args.out_dir}/parallelism.json and parallelism.png")
    return result


if __name__ == "__main__":
    main()
