#!/usr/bin/env python
"""A fair comparison: LSTM seq2seq, LSTM + Bahdanau, GRU + Luong and the Transformer on one translation task.

Every architecture gets the same terms: the shipped en→de corpus and one shared BPE tokenizer, a parameter count
within ±20 % of the Transformer's (the RNN hidden size is searched to fit), AdamW with the same warm-up and
inverse-square-root decay (a schedule that does not depend on the total budget, so one run gives the model at every
budget), label smoothing 0.1, the same batches in the same order, and the same learning-rate grid. At each training
budget (in optimizer steps) the learning rate with the lowest validation loss is picked per architecture, and that
checkpoint translates the whole test split (greedy decoding, batched). BLEU and chrF come with sacrebleu's 95 %
bootstrap intervals and paired bootstrap tests between neighbouring systems (`scratchformers.metrics.significance`),
and BLEU is broken down by source length as in Bahdanau et al. (2015), Fig. 2.

    python scripts/compare_architectures.py --quick                  # smoke test, under a minute
    python scripts/compare_architectures.py --out-dir docs/rnn       # the full run (docs/rnn.md gives its time)
    python scripts/compare_architectures.py --from-json docs/rnn/results.json --out-dir docs/rnn   # re-render

Writes into --out-dir: results.json, table.md, learning_curves.png, bleu_by_budget.png, bleu_by_length.png,
alignment_bahdanau.png, cross_attention_transformer.png, the tokenizer, and predictions.json (each picked model's
test translations, {architecture: {steps: [one string per test pair]}}).

results.json keys
-----------------
command                 the command line
config                  every setting (args), the schedule, decoding, bootstrap samples, split sizes
environment             python/torch/transformers/sacrebleu versions, torch threads, CPU model and count,
                        load average (1 min) at start and end (the machine may be shared)
parameter_budget        the Transformer's parameter count; parameter_tolerance: 0.2
architectures           {name: {parameters, relative_to_budget (n/budget − 1), hidden_size, layers, options}}
runs                    one per (architecture, learning rate): learning_rate, diverged (bool), train_seconds,
                        tokens_per_second, curve [{step, seconds, val_loss}] (seconds = training clock, evaluation
                        not charged), val_loss_at_budget {str(steps): float | null (null after divergence)}
budgets                 one per training budget: steps, systems [{architecture, learning_rate (picked on validation
                        loss), val_loss, decode_seconds, bleu {score, mean, ci, low, high}, chrf {...}}], paired_tests
                        [{baseline, system, bleu {baseline, system, delta, p_value, significant}, chrf {...}}],
                        length_buckets {unit, buckets [{low, high, count}], bleu {architecture: [{score, mean, ci,
                        low, high}, …]}}  (BLEU per source-length bucket, sizes summing to the test size)
heatmaps                {source (the sentence), files {architecture: png name}}; an architecture that was not run has
                        null there and a reason in heatmaps.missing
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import matplotlib
import matplotlib.ticker

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # tokenizer threads would compete with training
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import sacrebleu  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from transformers import DataCollatorForSeq2Seq, PreTrainedModel  # noqa: E402

from scratchformers import ScratchRNNForConditionalGeneration, ScratchTransformerForConditionalGeneration  # noqa: E402
from scratchformers.architecture_comparison import (  # noqa: E402
    ARCHITECTURES,
    NEIGHBOURS,
    PARAM_TOLERANCE,
    RNN_KINDS,
    TRANSFORMER,
    count_parameters,
    inverse_sqrt_factor,
    length_buckets,
    rnn_config_for_budget,
    rnn_layers,
    transformer_config,
)
from scratchformers.data import load_translation, preprocess_translation, resolve_data_dir  # noqa: E402
from scratchformers.losses import token_cross_entropy  # noqa: E402
from scratchformers.metrics.significance import paired_bootstrap_test, scores_with_confidence  # noqa: E402
from scratchformers.tokenization import train_tokenizer  # noqa: E402

PRESETS = {
    "quick": dict(models=list(ARCHITECTURES), vocab_size=300, d_model=32, layers=2, max_train=2000, max_eval=32, max_test=48, max_length=16,
                  batch_size=16, lrs=[3e-4, 1e-3, 3e-3], budgets=[4, 8, 12], eval_every=4, warmup=4, bootstrap=100),
    # sized to finish in ≤ 40 min on 2 shared CPU cores (measured: at load ≈ 7 one step took 0.34 s for the LSTM,
    # 0.66 s for LSTM + Bahdanau, 0.84 s for GRU + Luong, 0.24 s for the Transformer); GRU + Luong is left out of
    # the full run to afford 500 steps, and can be added with --models
    "full": dict(vocab_size=2000, d_model=96, layers=2, max_train=None, max_eval=500, max_test=500, max_length=48,
                 batch_size=32, lrs=[3e-4, 1e-3, 3e-3], budgets=[125, 250, 500], eval_every=100, warmup=100,
                 bootstrap=1000, models=["LSTM seq2seq", "LSTM + Bahdanau", TRANSFORMER]),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; unset ones come from the --quick or full preset. A bad value exits with `error:`."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pair", default="en-de", choices=("en-de", "en-hi"))
    p.add_argument("--out-dir", default="outputs/compare_architectures")
    p.add_argument("--quick", action="store_true", help="tiny data, models and budgets: the CI smoke test")
    p.add_argument("--from-json", help="re-render table.md and the plots from a results.json (no training)")
    p.add_argument("--models", nargs="+", help=f"architectures, from {list(ARCHITECTURES)} (full run: all but GRU)")
    p.add_argument("--lrs", type=float, nargs="+", help="peak learning rates tried for every architecture")
    p.add_argument("--budgets", type=int, nargs="+", help="training budgets in optimizer steps, increasing")
    p.add_argument("--eval-every", type=int, help="validation-loss point every N steps (and at every budget)")
    p.add_argument("--warmup", type=int, help="linear warm-up steps, then lr·√(warmup/step)")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--vocab-size", type=int)
    p.add_argument("--d-model", type=int, help="Transformer width (the RNNs are sized to its parameter count)")
    p.add_argument("--layers", type=int, help="Transformer encoder = decoder layers; RNN layers = 1 if < 3 else 2")
    p.add_argument("--max-train", type=int, help="use the first N training pairs")
    p.add_argument("--max-eval", type=int, help="validation pairs (loss; picks the learning rate)")
    p.add_argument("--max-test", type=int, help="test pairs for BLEU/chrF")
    p.add_argument("--max-length", type=int, help="source/target truncation in tokens, and max new tokens")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--decode-batch-size", type=int, default=64)
    p.add_argument("--bootstrap", type=int, help="bootstrap resamples for intervals and paired tests")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 by default: on a shared 2-core machine 2 threads ran up to 50x slower)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for key, value in PRESETS["quick" if args.quick else "full"].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    unknown = [m for m in args.models if m not in ARCHITECTURES]
    if unknown:
        p.error(f"unknown model(s) {unknown}; allowed: {list(ARCHITECTURES)}")
    if len(args.lrs) < 1 or any(not (lr > 0 and math.isfinite(lr)) for lr in args.lrs):
        p.error(f"--lrs must be positive numbers, got {args.lrs}")
    if any(b <= 0 for b in args.budgets) or sorted(set(args.budgets)) != args.budgets:
        p.error(f"--budgets must be positive and strictly increasing, got {args.budgets}")
    for name in ("eval_every", "warmup", "vocab_size", "d_model", "layers", "max_length", "batch_size",
                 "decode_batch_size", "threads", "max_eval", "max_test"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.bootstrap < 2:
        p.error(f"--bootstrap must be >= 2, got {args.bootstrap}")
    if not 0.0 <= args.label_smoothing < 1.0:
        p.error(f"--label-smoothing must be in [0, 1), got {args.label_smoothing}")
    return args


# ---------------------------------------------------------------------------------------------------------- models


def build_model(name: str, args, tokenizer, seed: int) -> PreTrainedModel:
    """A freshly initialised `name` (same seed for every learning rate, so the grid differs only in the rate)."""
    torch.manual_seed(seed)
    reference = ScratchTransformerForConditionalGeneration(
        transformer_config(args.d_model, args.layers, args.max_length, tokenizer))
    if name == TRANSFORMER:
        return reference
    config = rnn_config_for_budget(RNN_KINDS[name], count_parameters(reference), rnn_layers(args.layers), tokenizer)
    torch.manual_seed(seed)
    return ScratchRNNForConditionalGeneration(config)


# -------------------------------------------------------------------------------------------------------- training


def make_loader(dataset, tokenizer, model, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    """Batches padded per batch by `DataCollatorForSeq2Seq` (labels −100, decoder inputs from the model's shift)."""
    collator = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collator, generator=generator)


@torch.no_grad()
def validation_loss(model: PreTrainedModel, loader: DataLoader) -> float:
    """Mean token cross-entropy (no label smoothing) over the validation pairs; every labelled token weighs the same."""
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        n = int((batch["labels"] != -100).sum())
        total += model(**batch, use_cache=False).loss.item() * n
        count += n
    model.train()
    return total / count


def train_one(model, learning_rate: float, train_loader, val_loader, args) -> tuple[dict, dict[int, dict]]:
    """Train for max(budgets) steps; returns (the run's record, {budget: state_dict snapshot}).

    AdamW(β = 0.9, 0.98), clipping at 1, label-smoothed loss; validation every `eval_every` steps and at each budget,
    not charged to the training clock. A non-finite loss stops the run (`diverged`); later budgets get null.
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: inverse_sqrt_factor(step, args.warmup))
    budgets, last = set(args.budgets), args.budgets[-1]
    run = dict(learning_rate=learning_rate, diverged=False, train_seconds=0.0, tokens_per_second=0.0,
               curve=[dict(step=0, seconds=0.0, val_loss=validation_loss(model, val_loader))],
               val_loss_at_budget={str(b): None for b in args.budgets})
    snapshots, step, clock, tokens = {}, 0, 0.0, 0
    model.train()
    while step < last and not run["diverged"]:
        for batch in train_loader:
            start = time.perf_counter()
            labels = batch.pop("labels")
            logits = model(**batch, use_cache=False).logits
            loss = token_cross_entropy(logits, labels, label_smoothing=args.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            clock += time.perf_counter() - start
            step += 1
            tokens += int(batch["attention_mask"].sum()) + int((labels != -100).sum())
            if not math.isfinite(loss.item()):
                run["diverged"] = True
                break
            if step % args.eval_every == 0 or step in budgets:
                loss_value = validation_loss(model, val_loader)
                run["curve"].append(dict(step=step, seconds=clock, val_loss=loss_value))
                if step in budgets and math.isfinite(loss_value):
                    run["val_loss_at_budget"][str(step)] = loss_value
                    snapshots[step] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if step >= last:
                break
    run["train_seconds"], run["tokens_per_second"] = clock, tokens / max(clock, 1e-9)
    return run, snapshots


# -------------------------------------------------------------------------------------------------------- decoding


@torch.no_grad()
def translate(model, tokenizer, sources: list[str], args) -> list[str]:
    """Greedy translations of `sources`, decoded in batches sorted by length (less padding), returned in order."""
    model.eval()
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    outputs = [""] * len(sources)
    for i in range(0, len(order), args.decode_batch_size):
        chunk = order[i : i + args.decode_batch_size]
        enc = tokenizer([sources[j] for j in chunk], max_length=args.max_length, truncation=True, padding=True,
                        return_tensors="pt")
        generated = model.generate(**enc, max_new_tokens=args.max_length, num_beams=1, do_sample=False)
        for j, text in zip(chunk, tokenizer.batch_decode(generated, skip_special_tokens=True)):
            outputs[j] = text.strip()
    return outputs


@torch.no_grad()
def attention_matrix(model, tokenizer, source: str, args) -> tuple[torch.Tensor, list[str], list[str]]:
    """(target × source) weights for the model's own greedy translation of `source`, with the token strings.

    RNN: the alignment αᵢⱼ. Transformer: cross-attention of the last decoder layer, averaged over heads.
    """
    model.eval()
    enc = tokenizer([source], return_tensors="pt")
    generated = model.generate(**enc, max_new_tokens=args.max_length, do_sample=False)
    out = model(**enc, decoder_input_ids=generated[:, :-1], output_attentions=True, use_cache=False)
    weights = out.cross_attentions[-1][0].mean(0)  # (H, T, S) -> (T, S)
    src_tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    tgt_tokens = tokenizer.convert_ids_to_tokens(generated[0, 1:])
    return weights, src_tokens, tgt_tokens


# ----------------------------------------------------------------------------------------------------------- plots

COLOURS = {"LSTM seq2seq": "tab:blue", "LSTM + Bahdanau": "tab:orange", "GRU + Luong": "tab:green",
           TRANSFORMER: "tab:red"}


def plot_heatmap(weights: torch.Tensor, src_tokens, tgt_tokens, title: str, path: Path) -> None:
    """Target rows × source columns, as in Bahdanau et al. (2015), Fig. 3."""
    fig, ax = plt.subplots(figsize=(0.45 * len(src_tokens) + 2, 0.4 * len(tgt_tokens) + 1.5))
    ax.imshow(weights.numpy(), cmap="gray_r", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(src_tokens)), src_tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(len(tgt_tokens)), tgt_tokens, fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("generated target")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_learning_curves(runs: list[dict], title: str, path: Path) -> None:
    """Validation loss against steps (left) and training seconds (right); colour = architecture, style = rate."""
    by_name: dict[str, list[dict]] = {}
    for run in runs:
        by_name.setdefault(run["architecture"], []).append(run)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), sharey=True)
    styles = ["-", "--", ":", "-."]
    for name, grid in by_name.items():
        for k, run in enumerate(grid):
            steps = [p["step"] for p in run["curve"]]
            seconds = [p["seconds"] for p in run["curve"]]
            losses = [p["val_loss"] for p in run["curve"]]
            label = f"{name}, lr {run['learning_rate']:g}"
            for ax, xs in zip(axes, (steps, seconds)):
                ax.plot(xs, losses, styles[k % len(styles)], color=COLOURS[name], marker="o", markersize=2,
                        label=label)
    axes[0].set_xlabel("optimizer steps")
    axes[1].set_xlabel("training wall-clock seconds (evaluation excluded)")
    axes[0].set_ylabel("validation loss (token cross-entropy)")
    top = max(p["val_loss"] for r in runs for p in r["curve"][1:] if math.isfinite(p["val_loss"]))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_ylim(top=top * 1.05)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=len(by_name), fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_bleu_by_budget(budgets: list[dict], path: Path) -> None:
    """BLEU with its 95 % interval at each budget (learning rate picked per budget)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    names = [s["architecture"] for s in budgets[0]["systems"]]
    for k, name in enumerate(names):
        xs = [b["steps"] * (1 + 0.03 * (k - 1.5)) for b in budgets]  # dodge the error bars
        rows = [next(s for s in b["systems"] if s["architecture"] == name)["bleu"] for b in budgets]
        ax.errorbar(xs, [r["score"] for r in rows], yerr=[[r["score"] - r["low"] for r in rows],
                                                          [r["high"] - r["score"] for r in rows]],
                    marker="o", capsize=3, color=COLOURS[name], label=name)
    ax.set_xscale("log")
    ax.set_xticks([b["steps"] for b in budgets], [str(b["steps"]) for b in budgets])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("training budget (optimizer steps)")
    ax.set_ylabel("test BLEU (95 % bootstrap interval)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_bleu_by_length(budget: dict, path: Path) -> None:
    """BLEU per source-length bucket (Bahdanau et al. 2015, Fig. 2), one line per architecture, with intervals."""
    lb = budget["length_buckets"]
    labels = [f"{b['low']}–{b['high']}\n(n={b['count']})" for b in lb["buckets"]]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for k, (name, rows) in enumerate(lb["bleu"].items()):
        xs = [i + 0.06 * (k - 1.5) for i in range(len(rows))]
        ax.errorbar(xs, [r["score"] for r in rows], yerr=[[max(0.0, r["score"] - r["low"]) for r in rows],
                                                          [max(0.0, r["high"] - r["score"]) for r in rows]],
                    marker="o", capsize=3, color=COLOURS[name], label=name)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel(f"source length ({lb['unit']})")
    ax.set_ylabel("BLEU (95 % bootstrap interval)")
    ax.set_title(f"after {budget['steps']} steps", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------------- table


def fmt_interval(m: dict) -> str:
    """'12.3 [10.9, 13.8]': the corpus score and sacrebleu's 95 % interval."""
    return f"{m['score']:.1f} [{m['low']:.1f}, {m['high']:.1f}]"


def markdown_tables(results: dict) -> str:
    """Per budget: the systems with intervals, then the paired tests; then BLEU by length at the last budget."""
    params = results["architectures"]
    lines = [f"`{results['command']}`", "",
             "BLEU/chrF on the whole test split, greedy decoding; [95 % bootstrap interval] (sacrebleu, "
             f"{results['config']['bootstrap']} resamples); learning rate picked per budget on validation loss.", ""]
    for b in results["budgets"]:
        lines += [f"### {b['steps']} steps", "",
                  "| model | parameters | picked lr | val loss | BLEU [95 % CI] | chrF [95 % CI] |",
                  "|---|---:|---:|---:|---:|---:|"]
        for s in b["systems"]:
            lines.append(f"| {s['architecture']} | {params[s['architecture']]['parameters']:,} | "
                         f"{s['learning_rate']:g} | {s['val_loss']:.3f} | {fmt_interval(s['bleu'])} | "
                         f"{fmt_interval(s['chrf'])} |")
        lines += ["", "| paired bootstrap test | ΔBLEU | p | ΔchrF | p |", "|---|---:|---:|---:|---:|"]
        for t in b["paired_tests"]:
            cells = []
            for key in ("bleu", "chrf"):
                mark = " (significant)" if t[key]["significant"] else ""
                cells += [f"{t[key]['delta']:+.1f}{mark}", f"{t[key]['p_value']:.3f}"]
            lines.append(f"| {t['baseline']} → {t['system']} | " + " | ".join(cells) + " |")
        lines.append("")
    last = results["budgets"][-1]["length_buckets"]
    header = " | ".join(f"{b['low']}–{b['high']} (n={b['count']})" for b in last["buckets"])
    lines += [f"### BLEU by source length ({last['unit']}), {results['budgets'][-1]['steps']} steps", "",
              f"| model | {header} |", "|---|" + "---:|" * len(last["buckets"])]
    for name, rows in last["bleu"].items():
        lines.append(f"| {name} | " + " | ".join(fmt_interval(r) for r in rows) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------------------ main


def write_report(results: dict, out: Path) -> None:
    """results.json, table.md and the three plots (not the heatmaps, which need the models) into `out`."""
    config = results["config"]
    title = (f"{config['pair']}, {config['threads']} torch thread(s), lr grid {config['lrs']}, "
             f"warm-up {config['warmup']}")
    plot_learning_curves(results["runs"], title, out / "learning_curves.png")
    plot_bleu_by_budget(results["budgets"], out / "bleu_by_budget.png")
    plot_bleu_by_length(results["budgets"][-1], out / "bleu_by_length.png")
    (out / "table.md").write_text(markdown_tables(results))
    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")


def environment(args) -> dict:
    """Where the numbers were measured (versions, threads, CPU); the load average shows whether it was shared."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return dict(python=platform.python_version(), torch=torch.__version__, transformers=transformers.__version__,
                sacrebleu=sacrebleu.__version__, torch_threads=torch.get_num_threads(), cpu=cpu,
                cpu_count=os.cpu_count(), platform=platform.platform(), load_average_start=os.getloadavg()[0])


def main(argv: list[str] | None = None) -> dict:
    """Run the comparison; returns the results dict (also written to --out-dir/results.json)."""
    args = parse_args(argv)
    if args.from_json:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        results = json.loads(Path(args.from_json).read_text())
        write_report(results, out)
        print(f"re-rendered {args.from_json} into {out}")
        return results
    torch.set_num_threads(args.threads)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wall_start = time.perf_counter()

    data = load_translation(args.pair)
    source_lang, target_lang = args.pair.split("-")
    train_file = resolve_data_dir() / "translation" / args.pair / "train.jsonl"
    tokenizer = train_tokenizer(train_file, kind="seq2seq_bpe", vocab_size=args.vocab_size, save_dir=out / "tokenizer")
    for split, limit in (("train", args.max_train), ("validation", args.max_eval), ("test", args.max_test)):
        if limit:
            data[split] = data[split].select(range(min(limit, len(data[split]))))
    tokenized = preprocess_translation(data, tokenizer, source_lang, target_lang, args.max_length, args.max_length)
    test_sources = [p[source_lang] for p in data["test"]["translation"]]
    test_references = [p[target_lang] for p in data["test"]["translation"]]
    source_lengths = [len(ids) - 1 for ids in tokenizer(test_sources)["input_ids"]]  # BPE tokens, without </s>
    buckets = length_buckets(source_lengths)
    bucket_of = [next(k for k, b in enumerate(buckets) if b["low"] <= n <= b["high"]) for n in source_lengths]
    heatmap_source = min(test_sources[:50], key=lambda s: abs(len(s.split()) - 8))  # a short, typical sentence

    budget = count_parameters(build_model(TRANSFORMER, args, tokenizer, args.seed))
    results = dict(
        command=("python scripts/compare_architectures.py " + " ".join(argv if argv is not None else sys.argv[1:]))
        .strip(),
        config=dict(vars(args), schedule="linear warm-up, then lr·√(warmup/step) (inverse square root)",
                    optimizer="AdamW(betas=(0.9, 0.98), eps=1e-9, weight_decay=0), gradient clipping at 1.0",
                    decoding=dict(strategy="greedy", num_beams=1, batch_size=args.decode_batch_size,
                                  max_new_tokens=args.max_length),
                    length_unit="source BPE tokens (shared tokenizer, without </s>)",
                    train_pairs=len(tokenized["train"]), validation_pairs=len(tokenized["validation"]),
                    test_pairs=len(test_sources), vocabulary=len(tokenizer)),
        environment=environment(args), parameter_budget=budget, parameter_tolerance=PARAM_TOLERANCE,
        architectures={}, runs=[], budgets=[dict(steps=b, systems=[], paired_tests=[]) for b in args.budgets],
    )
    print(f"{args.pair}: {len(tokenized['train'])} training pairs, vocabulary {len(tokenizer)}, parameter budget "
          f"{budget:,} (±20%), learning rates {args.lrs}, budgets {args.budgets} steps", flush=True)

    predictions, final_models = {}, {}
    for name in args.models:
        grid, snapshots = [], []
        for lr in args.lrs:
            model = build_model(name, args, tokenizer, args.seed)
            train_loader = make_loader(tokenized["train"], tokenizer, model, args.batch_size, True, args.seed)
            val_loader = make_loader(tokenized["validation"], tokenizer, model, 64, False, args.seed)
            run, snaps = train_one(model, lr, train_loader, val_loader, args)
            print(f"  {name:16s} lr {lr:<7g} {run['train_seconds']:7.1f} s  val loss "
                  + "  ".join(f"{k}:{v:.3f}" if v is not None else f"{k}:diverged"
                              for k, v in run["val_loss_at_budget"].items()), flush=True)
            grid.append(dict(architecture=name, **run))
            snapshots.append(snaps)
        n = count_parameters(model)
        results["architectures"][name] = dict(
            parameters=n, relative_to_budget=n / budget - 1, hidden_size=model.config.hidden_size,
            layers=model.config.num_hidden_layers, options=RNN_KINDS.get(name, dict(kind="transformer")))
        results["runs"] += grid
        for b, record in zip(args.budgets, results["budgets"]):
            candidates = [(r["val_loss_at_budget"][str(b)], k) for k, r in enumerate(grid)
                          if r["val_loss_at_budget"][str(b)] is not None]
            if not candidates:
                raise RuntimeError(f"{name}: every learning rate in {args.lrs} diverged before {b} steps")
            val, k = min(candidates)
            model.load_state_dict(snapshots[k][b])
            start = time.perf_counter()
            hyps = translate(model, tokenizer, test_sources, args)
            seconds = time.perf_counter() - start
            predictions[(name, b)] = hyps
            record["systems"].append(dict(architecture=name, learning_rate=args.lrs[k], val_loss=val,
                                          decode_seconds=seconds,
                                          **scores_with_confidence(hyps, test_references, args.bootstrap)))
            s = record["systems"][-1]
            print(f"    {b:5d} steps: lr {args.lrs[k]:g}  BLEU {fmt_interval(s['bleu'])}  "
                  f"chrF {fmt_interval(s['chrf'])}  (decoded in {seconds:.0f} s; "
                  f"{time.perf_counter() - wall_start:.0f} s so far)", flush=True)
        final_models[name] = model  # holds the last budget's pick

    unit = "source BPE tokens"
    for record in results["budgets"]:
        b = record["steps"]
        for base, system in NEIGHBOURS:
            if base in args.models and system in args.models:
                record["paired_tests"].append(dict(baseline=base, system=system, **paired_bootstrap_test(
                    predictions[(base, b)], predictions[(system, b)], test_references, args.bootstrap)))
        bleu_rows = {}
        for name in args.models:
            bleu_rows[name] = []
            for k in range(len(buckets)):
                idx = [i for i, kb in enumerate(bucket_of) if kb == k]
                scores = scores_with_confidence([predictions[(name, b)][i] for i in idx],
                                                [test_references[i] for i in idx], args.bootstrap)
                bleu_rows[name].append(scores["bleu"])
        record["length_buckets"] = dict(unit=unit, buckets=buckets, bleu=bleu_rows)

    heatmaps = dict(source=heatmap_source, files={}, missing={})
    for name, kind, filename in [("LSTM + Bahdanau", "Bahdanau alignment α", "alignment_bahdanau.png"),
                                 (TRANSFORMER, "Transformer cross-attention (last layer, mean of heads)",
                                  "cross_attention_transformer.png")]:
        if name in final_models:
            weights, src_tokens, tgt_tokens = attention_matrix(final_models[name], tokenizer, heatmap_source, args)
            plot_heatmap(weights, src_tokens, tgt_tokens, f"{kind}\n{heatmap_source}", out / filename)
            heatmaps["files"][name] = filename
        else:
            heatmaps["files"][name] = None
            heatmaps["missing"][name] = "architecture not in --models"
    results["heatmaps"] = heatmaps
    results["environment"]["load_average_end"] = os.getloadavg()[0]
    results["environment"]["total_wall_seconds"] = time.perf_counter() - wall_start

    write_report(results, out)
    (out / "predictions.json").write_text(json.dumps(
        {name: {str(b): predictions[(name, b)] for b in args.budgets} for name in args.models},
        indent=1, ensure_ascii=False) + "\n")
    print((out / "table.md").read_text())
    print(f"wrote {out}/results.json, table.md, predictions.json and the plots in {results['environment']['total_wall_seconds']:.0f} s")
    return results


if __name__ == "__main__":
    main()
