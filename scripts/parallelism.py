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
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from scratchformers.architecture_comparison import (  # noqa: E402
    count_parameters,
)
from scratchformers.parallelism import (  # noqa: E402
    FORMULAS,
    FULL_SETTINGS,
    KEYS,
    MODELS,
    QUICK_SETTINGS,
    build_models,
    layer_counts,
    markdown_table,
    measure,
    ratios_table,
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
    for key, value in (QUICK_SETTINGS if args.quick else FULL_SETTINGS).items():
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
    built = build_models(args.models, args.d_model, args.layers, args.vocab_size, max(args.lengths), args.seed)
    models = {name: m.to(device) for name, m in built.items()}
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
