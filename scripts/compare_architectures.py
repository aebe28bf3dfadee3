#!/usr/bin/env python
"""Measure, not tell: LSTM seq2seq, GRU, LSTM + Bahdanau, GRU + Luong and the Transformer on one translation task.

Every model gets the same shipped corpus, the same tokenizer, a parameter count within ±20 % of the Transformer's and
the same wall-clock training budget. The script prints a table (parameters, train time per epoch, tokens/s,
validation loss, BLEU and chrF on the test split) and writes into --out-dir:
  results.json, table.md, val_loss_vs_time.png, alignment_bahdanau.png, cross_attention_transformer.png.

    python scripts/compare_architectures.py --quick            # a few minutes on 2 CPU cores
    python scripts/compare_architectures.py                    # the full run, ~10 min (see docs/rnn.md)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # tokenizer threads would compete with training
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from transformers import DataCollatorForSeq2Seq, PreTrainedModel, PreTrainedTokenizerBase  # noqa: E402

from scratchformers import (  # noqa: E402
    ScratchRNNConfig,
    ScratchRNNForConditionalGeneration,
    ScratchTransformerConfig,
    ScratchTransformerForConditionalGeneration,
)
from scratchformers.data import load_translation, preprocess_translation, resolve_data_dir  # noqa: E402
from scratchformers.metrics import compute_translation_metrics  # noqa: E402
from scratchformers.tokenization import train_tokenizer  # noqa: E402

# name → RNN options (the Transformer is the reference the RNNs are sized against)
RNN_KINDS = {
    "LSTM seq2seq": dict(cell="lstm", attention=None),
    "GRU seq2seq": dict(cell="gru", attention=None),
    "LSTM + Bahdanau": dict(cell="lstm", attention="bahdanau"),
    "GRU + Luong": dict(cell="gru", attention="luong", luong_score="general"),
}
TRANSFORMER = "Transformer"
PARAM_TOLERANCE = 0.20


@dataclass
class Result:
    """One model's measurements."""

    name: str
    parameters: int
    hidden_size: int
    learning_rate: float
    steps: int = 0
    epochs: float = 0.0
    train_seconds: float = 0.0
    seconds_per_epoch: float = 0.0
    tokens_per_second: float = 0.0
    val_loss: float = math.nan
    bleu: float = math.nan
    chrf: float = math.nan
    curve: list[tuple[float, float]] = field(default_factory=list)  # (train seconds, validation loss)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; --quick shrinks data, models and budget to finish in a few minutes on 2 cores."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pair", default="en-de", choices=("en-de", "en-hi"))
    p.add_argument("--out-dir", default="outputs/compare_architectures")
    p.add_argument("--quick", action="store_true", help="small data, small models, short budget")
    p.add_argument("--time-budget", type=float, help="training seconds per model (wall clock, evaluation excluded)")
    p.add_argument("--vocab-size", type=int)
    p.add_argument("--d-model", type=int, help="Transformer width (the RNNs are sized to its parameter count)")
    p.add_argument("--layers", type=int, help="Transformer encoder = decoder layers; RNN layers = 1 if < 3 else 2")
    p.add_argument("--max-train", type=int, help="use the first N training pairs")
    p.add_argument("--max-eval", type=int, help="validation pairs for the loss curve")
    p.add_argument("--max-test", type=int, help="test pairs for BLEU/chrF")
    p.add_argument("--max-length", type=int, default=48, help="source/target truncation in tokens")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--evals", type=int, default=8, help="validation-loss points per model")
    p.add_argument("--num-beams", type=int, default=1, help="decoding for BLEU/chrF (1 = greedy)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 by default: on a shared 2-core machine 2 threads ran up to 50x slower)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", nargs="+", default=[TRANSFORMER, *RNN_KINDS], help="subset to run")
    args = p.parse_args(argv)
    quick = dict(time_budget=25.0, vocab_size=1000, d_model=64, layers=2, max_train=3000, max_eval=100, max_test=60)
    full = dict(time_budget=80.0, vocab_size=2000, d_model=96, layers=2, max_train=None, max_eval=200, max_test=200)
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    unknown = [m for m in args.models if m != TRANSFORMER and m not in RNN_KINDS]
    if unknown:
        p.error(f"unknown model(s) {unknown}; allowed: {[TRANSFORMER, *RNN_KINDS]}")
    return args


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct trainable parameters (a tied embedding/output matrix counts once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def transformer_config(args, tokenizer: PreTrainedTokenizerBase) -> ScratchTransformerConfig:
    """The reference model: the paper's layout at a small width (post-LN, sinusoidal, shared scaled embedding)."""
    return ScratchTransformerConfig(
        vocab_size=len(tokenizer), hidden_size=args.d_model, num_hidden_layers=args.layers,
        num_attention_heads=4, intermediate_size=4 * args.d_model, hidden_dropout_prob=0.1,
        max_position_embeddings=args.max_length + 8, **special_ids(tokenizer),
    )


def special_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """pad/bos/eos ids and the decoder start token (the tokenizer's <s>)."""
    return dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.bos_token_id)


def rnn_config_for_budget(options: dict, budget: int, layers: int, tokenizer) -> ScratchRNNConfig:
    """The RNN config whose parameter count is closest to `budget`, searching the hidden size in steps of 8."""
    best = None
    for hidden in range(16, 2049, 8):
        config = ScratchRNNConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                                  dropout=0.1, bidirectional_encoder=True, **options, **special_ids(tokenizer))
        with torch.device("meta"):
            n = count_parameters(ScratchRNNForConditionalGeneration(config))
        if best is None or abs(n - budget) < abs(best[1] - budget):
            best = (config, n)
        if n > budget:
            break
    config, n = best
    if abs(n - budget) > PARAM_TOLERANCE * budget:
        raise ValueError(f"no hidden size puts {options} within ±20% of {budget:,} parameters (closest {n:,})")
    return config


def make_loader(dataset, tokenizer, model, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    """Batches padded per batch by `DataCollatorForSeq2Seq` (labels padded with −100)."""
    collator = DataCollatorForSeq2Seq(tokenizer, model=None, label_pad_token_id=-100)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collator, generator=generator)


@torch.no_grad()
def validation_loss(model: PreTrainedModel, loader: DataLoader) -> float:
    """Mean token cross-entropy over the validation pairs (every labelled token weighs the same)."""
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        n = int((batch["labels"] != -100).sum())
        total += model(**batch, use_cache=False).loss.item() * n
        count += n
    model.train()
    return total / count


def train_for_budget(model, result: Result, train_loader, val_loader, args) -> None:
    """AdamW + 100 warm-up steps + clipping at 1, stopped when the training clock reaches the budget.

    The clock counts training steps only; validation (`args.evals` points spread over the budget) is not charged.
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=result.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 100))
    model.train()
    steps, tokens, examples, clock = 0, 0, 0, 0.0
    next_eval = args.time_budget / args.evals
    result.curve.append((0.0, validation_loss(model, val_loader)))
    while clock < args.time_budget:
        for batch in train_loader:
            start = time.perf_counter()
            loss = model(**batch, use_cache=False).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            clock += time.perf_counter() - start
            steps += 1
            examples += batch["input_ids"].shape[0]
            tokens += int(batch["attention_mask"].sum()) + int((batch["labels"] != -100).sum())
            if clock >= next_eval or clock >= args.time_budget:
                result.curve.append((clock, validation_loss(model, val_loader)))
                next_eval += args.time_budget / args.evals
            if clock >= args.time_budget:
                break
    result.steps, result.train_seconds = steps, clock
    result.epochs = examples / len(train_loader.dataset)
    result.seconds_per_epoch = clock / result.epochs
    result.tokens_per_second = tokens / clock
    result.val_loss = result.curve[-1][1]


@torch.no_grad()
def translate_pairs(model, tokenizer, sources: list[str], args) -> list[str]:
    """Decoded translations of `sources` (greedy or beam, batch of 32)."""
    model.eval()
    outputs = []
    for i in range(0, len(sources), 32):
        enc = tokenizer(sources[i : i + 32], max_length=args.max_length, truncation=True, padding=True,
                        return_tensors="pt")
        generated = model.generate(**enc, max_new_tokens=args.max_length, num_beams=args.num_beams, do_sample=False)
        outputs += tokenizer.batch_decode(generated, skip_special_tokens=True)
    return [o.strip() for o in outputs]


@torch.no_grad()
def attention_matrix(model, tokenizer, source: str, args) -> tuple[torch.Tensor, list[str], list[str]]:
    """(target × source) weights for the model's own greedy translation of `source`, with the token strings.

    RNN: the alignment αᵢⱼ. Transformer: cross-attention of the last decoder layer, averaged over heads.
    """
    enc = tokenizer([source], return_tensors="pt")
    generated = model.generate(**enc, max_new_tokens=args.max_length, do_sample=False)
    out = model(**enc, decoder_input_ids=generated[:, :-1], output_attentions=True, use_cache=False)
    weights = out.cross_attentions[-1][0].mean(0)  # (H, T, S) -> (T, S)
    src_tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    tgt_tokens = tokenizer.convert_ids_to_tokens(generated[0, 1:])
    return weights, src_tokens, tgt_tokens


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


def plot_curves(results: list[Result], path: Path, title: str) -> None:
    """Validation loss against training wall-clock seconds, one line per model."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        xs, ys = zip(*r.curve)
        ax.plot(xs, ys, marker="o", markersize=3, label=f"{r.name} ({r.parameters / 1e6:.2f} M)")
    ax.set_xlabel("training wall-clock time (s)")
    ax.set_ylabel("validation loss (token cross-entropy)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown_table(results: list[Result]) -> str:
    """The comparison as a Markdown table."""
    lines = [
        "| model | parameters | hidden | train s/epoch | tokens/s | epochs | val loss | BLEU | chrF |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.parameters:,} | {r.hidden_size} | {r.seconds_per_epoch:.1f} | {r.tokens_per_second:,.0f} "
            f"| {r.epochs:.2f} | {r.val_loss:.3f} | {r.bleu:.2f} | {r.chrf:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[Result]:
    """Run the comparison; returns the results (also written to --out-dir)."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    data = load_translation(args.pair)
    source_lang, target_lang = args.pair.split("-")
    train_file = resolve_data_dir() / "translation" / args.pair / "train.jsonl"
    tokenizer = train_tokenizer(train_file, kind="seq2seq_bpe", vocab_size=args.vocab_size, save_dir=out / "tokenizer")
    if args.max_train:
        data["train"] = data["train"].select(range(min(args.max_train, len(data["train"]))))
    data["validation"] = data["validation"].select(range(min(args.max_eval, len(data["validation"]))))
    data["test"] = data["test"].select(range(min(args.max_test, len(data["test"]))))
    tokenized = preprocess_translation(data, tokenizer, source_lang, target_lang, args.max_length, args.max_length)
    test_sources = [p[source_lang] for p in data["test"]["translation"]]
    test_references = [p[target_lang] for p in data["test"]["translation"]]
    heatmap_source = min(test_sources[:50], key=lambda s: abs(len(s.split()) - 8))  # a short, typical sentence

    torch.manual_seed(args.seed)
    reference = ScratchTransformerForConditionalGeneration(transformer_config(args, tokenizer))
    budget = count_parameters(reference)
    rnn_layers = 1 if args.layers < 3 else 2
    print(f"{args.pair}: {len(tokenized['train'])} training pairs, vocabulary {len(tokenizer)}, "
          f"parameter budget {budget:,} (±20%), {args.time_budget:.0f} s of training per model", flush=True)

    results, models = [], {}
    for name in args.models:
        torch.manual_seed(args.seed)
        if name == TRANSFORMER:
            model, lr = reference, 5e-4  # post-LN collapses to a source-blind LM at 2e-3 (docs/translation.md)
        else:
            config = rnn_config_for_budget(RNN_KINDS[name], budget, rnn_layers, tokenizer)
            model, lr = ScratchRNNForConditionalGeneration(config), 3e-3
        result = Result(name, count_parameters(model), model.config.hidden_size, lr)
        train_loader = make_loader(tokenized["train"], tokenizer, model, args.batch_size, True, args.seed)
        val_loader = make_loader(tokenized["validation"], tokenizer, model, 64, False, args.seed)
        train_for_budget(model, result, train_loader, val_loader, args)
        predictions = translate_pairs(model, tokenizer, test_sources, args)
        scores = compute_translation_metrics(predictions, [[r] for r in test_references])
        result.bleu, result.chrf = scores["bleu"], scores["chrf"]
        print(f"  {name:16s} {result.parameters:>10,} params  {result.steps:5d} steps  {result.epochs:5.2f} epochs  "
              f"val loss {result.val_loss:.3f}  BLEU {result.bleu:5.2f}  chrF {result.chrf:5.2f}", flush=True)
        results.append(result)
        models[name] = model

    table = markdown_table(results)
    command = "python scripts/compare_architectures.py " + " ".join(argv if argv is not None else sys.argv[1:])
    title = f"{args.pair}, {args.time_budget:.0f} s/model, {args.threads} threads"
    plot_curves(results, out / "val_loss_vs_time.png", title)
    for name, kind, filename in [("LSTM + Bahdanau", "Bahdanau alignment α", "alignment_bahdanau.png"),
                                 (TRANSFORMER, "Transformer cross-attention (last layer, mean of heads)",
                                  "cross_attention_transformer.png")]:
        if name in models:
            weights, src_tokens, tgt_tokens = attention_matrix(models[name], tokenizer, heatmap_source, args)
            plot_heatmap(weights, src_tokens, tgt_tokens, f"{kind}\n{heatmap_source}", out / filename)
    (out / "table.md").write_text(f"`{command.strip()}`\n\n{table}\n")
    (out / "results.json").write_text(json.dumps(
        {"command": command.strip(), "args": vars(args), "parameter_budget": budget, "heatmap_source": heatmap_source,
         "results": [asdict(r) for r in results]}, indent=2))
    print(table)
    print(f"wrote {out}/table.md, results.json, val_loss_vs_time.png and the heatmaps")
    return results


if __name__ == "__main__":
    main()
