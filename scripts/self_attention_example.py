#!/usr/bin/env python
"""Self-attention, computed: one sentence through the first layer of a small trained GPT, step by step, with the
package's own functions — and the numbers written into docs/self-attention.md.

Every table of that page is rendered here from the checkpoint in docs/self-attention/checkpoint (a 2-layer GPT
trained on the shipped prose, < 1 MB, committed), so the page cannot drift from the code:
tests/scripts/test_self_attention_example.py re-renders it and compares, and recomputes the numbers from the formula
with plain tensor algebra.

    python scripts/self_attention_example.py            # re-render docs/self-attention.md from the checkpoint
    python scripts/self_attention_example.py --train    # retrain the checkpoint first (~8 min on one CPU thread)
    python scripts/self_attention_example.py --out /tmp/page.md   # render elsewhere (the test does this)
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import scratchformers  # noqa: F401  (registers the families with the Auto classes)
from scratchformers.attention_walkthrough import (
    EQUAL,
    FIRST_WORD_OTHER,
    OTHERS,
    SENTENCE,
    static_vs_contextual,
    walkthrough,
)

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "docs" / "self-attention"
CHECKPOINT = HERE / "checkpoint"
PAGE = ROOT / "docs" / "self-attention.md"
TRAIN_ARGS = [
    "--config", "docs/self-attention/gpt-example.json", "--output_dir", "docs/self-attention/checkpoint",
    "--overwrite_output_dir", "--vocab_size", "4096", "--block_size", "64", "--per_device_train_batch_size", "16",
    "--max_steps", "600", "--learning_rate", "2e-3", "--warmup_steps", "50", "--lr_scheduler_type", "cosine",
    "--seed", "0", "--logging_steps", "100", "--report_to", "none", "--save_strategy", "no", "--use_cpu",
]
TRAIN_COMMAND = "scratchformers train clm " + " ".join(TRAIN_ARGS)
DIMS = 6  # columns shown of each vector
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    p.add_argument("--out", type=Path, default=PAGE, help="where the page is written (default docs/self-attention.md)")
    p.add_argument("--head", type=int, default=0, help="the head shown step by step (default 0)")
    p.add_argument("--train", action="store_true", help=f"retrain the checkpoint first: {TRAIN_COMMAND}")
    args = p.parse_args(argv)
    if args.head < 0:
        p.error(f"--head must be 0 or more, got {args.head}")
    if not args.train and not (args.checkpoint / "config.json").is_file():
        p.error(f"--checkpoint {args.checkpoint} is not a checkpoint folder (no config.json); pass --train to make it")
    if args.train and args.checkpoint != CHECKPOINT:
        p.error(f"--train writes {CHECKPOINT.relative_to(ROOT)}; it cannot be combined with another --checkpoint")
    return args


def train_checkpoint() -> None:
    """Run the recorded training command (seeded; from the repository root, like the page says)."""
    from scratchformers.examples import run_clm

    if CHECKPOINT.exists():
        shutil.rmtree(CHECKPOINT)
    import os

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        torch.set_num_threads(1)  # 1 thread: the same float order on every machine
        run_clm.main(TRAIN_ARGS)
    finally:
        os.chdir(cwd)
    # Not needed to load the model here (this script imports scratchformers, which registers scratch_gpt), and kept
    # out of the committed folder: training_args.bin, and the copy of our modeling code that save_pretrained attaches
    # for remote code — a second copy of src/scratchformers that would go stale as the package changes.
    for extra in ("training_args.bin", *(p.name for p in CHECKPOINT.glob("*.py"))):
        (CHECKPOINT / extra).unlink(missing_ok=True)


def load(checkpoint: Path):
    """(model in eval mode, tokenizer) from a saved GPT checkpoint."""
    if not (checkpoint / "config.json").is_file():
        raise ValueError(f"{checkpoint} is not a checkpoint folder (no config.json); run with --train to make it")
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    return model, tokenizer


# ----------------------------------------------------------------------------------------------------------------------
# The page


def num(x: float, digits: int = 3) -> str:
    """A number as the page prints it (no negative zero)."""
    text = f"{x:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def shown(token: str) -> str:
    """A BPE piece for a table: byte-level BPE writes the space before a word as 'Ġ'; shown as '·'."""
    return "`" + token.replace("Ġ", "·") + "`"


def matrix_table(rows: list[list[float]], row_labels: list[str], col_labels: list[str], digits: int = 3,
                 masked: list[list[bool]] | None = None) -> str:
    """A Markdown table; cells where `masked` is False are struck through (the causal mask removes them)."""
    lines = ["| | " + " | ".join(col_labels) + " |", "|---|" + "---:|" * len(col_labels)]
    for i, (label, row) in enumerate(zip(row_labels, rows)):
        cells = [num(v, digits) if masked is None or masked[i][j] else f"~~{num(v, digits)}~~"
                 for j, v in enumerate(row)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def vectors_table(name: str, rows: list[list[float]], labels: list[str], dims: int = DIMS) -> str:
    return matrix_table([r[:dims] for r in rows], labels, [f"{name}[{d}]" for d in range(dims)] + ["…"][:0])


def render(ex: dict, contrast: dict, first_word: dict, meta: dict) -> str:
    """docs/self-attention.md from the walkthrough, the static/contextual comparison and the checkpoint's facts."""
    T, D, C, H, h, t = len(ex["ids"]), ex["head_dim"], ex["hidden_size"], ex["heads"], ex["head"], ex["token"]
    labels = [f"{i} {shown(tok)}" for i, tok in enumerate(ex["tokens"])]
    words = ex["sentence"].split()
    pieces = "; ".join(f"{shown(tok)} = id {i}" for tok, i in zip(ex["tokens"], ex["ids"]))
    split_words = [w for w in words if not any(tok.replace("Ġ", "") == w for tok in ex["tokens"])]
    split_note = (f"The tokenizer is byte-level BPE, so a word can be several pieces: here {len(words)} words became "
                  f"{T} tokens ({', '.join(repr(w) for w in split_words)} "
                  f"{'is' if len(split_words) == 1 else 'are'} split). Attention works on these pieces, not on words: "
                  "every table below has one row and one column per piece."
                  if split_words else
                  f"The tokenizer is byte-level BPE; each of the {len(words)} words is one token here (the corpus is "
                  "Python's documentation, so these words are frequent), but rarer words are split into pieces and "
                  "attention then works on the pieces.")
    checks = "\n".join(f"| {name} | {'yes' if diff < 1e-5 else 'NO'} (< 1e-5) |" for name, diff in ex["checks"].items())
    zt = ex["z"][t]
    def comparison(result: dict) -> str:
        others = result["sentences"][1:]
        head = f"| vector of {shown(result['token'])} | " + " | ".join(f"vs “{o}”" for o in others) + " |"
        lines = [head, "|---|" + "---:|" * len(others)]
        for name, cells in result["rows"].items():
            lines.append(f"| {name} | " + " | ".join(
                f"cos {num(c['cosine'], 4)}, " + ("equal" if c["max_abs_diff"] < EQUAL else
                                                  f"max diff {num(c['max_abs_diff'], 3)}") for c in cells) + " |")
        return "\n".join(lines)

    strongest = "; ".join(
        f"{shown(ex['tokens'][i])} → {shown(ex['tokens'][max(range(T), key=row.__getitem__)])} {num(max(row))}"
        for i, row in enumerate(ex["weights"]))
    starts, inner = [], {}  # word-internal piece i -> does its largest weight fall on its word's first piece?
    for i, tok in enumerate(ex["tokens"]):
        if i == 0 or tok.startswith("Ġ"):
            starts.append(i)
        else:
            inner[i] = max(range(T), key=ex["weights"][i].__getitem__) == starts[-1]
    wa = [sum(ex["weights"][t][j] * ex["V"][j][d] for j in range(T)) for d in range(DIMS)]
    return f"""# Self-attention, computed

<!-- Generated by scripts/self_attention_example.py from docs/self-attention/checkpoint; do not edit by hand:
     tests/scripts/test_self_attention_example.py re-renders this page and fails when it differs. -->

The lecture-notes picture of self-attention — every token looks at the others and takes a weighted average of what
it finds — computed for one sentence, **"{ex['sentence']}"**, in the first layer of a small trained GPT, with the
package's own functions (`scratchformers.attention.scaled_dot_product_attention`, `split_heads`,
`scratchformers.masks.causal_mask`). Every number below is written by `python scripts/self_attention_example.py`.

**The checkpoint** (`docs/self-attention/checkpoint`, weights {meta['weights_mb']:.1f} MB, committed): a GPT with
{meta['layers']} layers, C = {C}, H = {H} heads of D = {D}, pre-LN, learned positions, {meta['parameters']:,}
parameters, trained for {meta['steps']} steps on the shipped prose (`data/prose`: Python's documentation, so
"python", "programming" and "language" are in-domain), validation perplexity {meta['perplexity']:.1f} — a small
model on 300 KB of text that has learned the frequent patterns and not much more, which is all this page needs: the
arithmetic is the same in any trained model. Recreate it (seeded; `--train` runs exactly this, on one thread) with

    {TRAIN_COMMAND}

## 1. Tokens

{pieces}.

`·` marks the space before a word (the tokenizer writes it `Ġ`); the sentence's first word has no space before it,
so it is {shown(ex['tokens'][0])}.

{split_note}

## 2. X: embedding + position, then the first LayerNorm

The input of the first attention is X = LayerNorm₁(E[token] + P[position]): this GPT is **pre-LN** (GPT-2's order),
so the layer's first LayerNorm is applied *before* attention; in the 2017 post-LN Transformer X would be E + P
itself. X is (T, C) = ({T}, {C}); its first {DIMS} columns:

{vectors_table("X", ex["X"], labels)}

## 3. W_q, W_k, W_v and one head

The layer stores [W_q W_k W_v] as one fused matrix (`qkv_proj`); each is (C, C) = {tuple(ex['W_shapes']['W_q'])}, so
Q = X W_q + b_q is (T, C). Multi-head attention splits the C columns into H = {H} heads of D = {D}: head {h} uses
columns {h * D} … {h * D + D - 1}, i.e. a W_q of shape {tuple(ex['W_shapes']['W_q head'])} (likewise W_k, W_v). Head
{h}'s Q, K and V are ({T}, {D}); their first {DIMS} columns:

{vectors_table("Q", ex["Q"], labels)}

{vectors_table("K", ex["K"], labels)}

{vectors_table("V", ex["V"], labels)}

## 4. Scores QKᵀ/√d_k

Head {h} of {H} is shown (`--head` picks another; each head has its own W_q, W_k, W_v and its own pattern). Row i,
column j is how well token i's query matches token j's key, divided by √D = √{D} = {math.sqrt(D):.3f}.
GPT is causal: token i may only look at j ≤ i, so the mask adds −∞ to the struck-out cells before the softmax.

{matrix_table(ex["scores"], labels, [shown(tok) for tok in ex["tokens"]], masked=ex["allowed"])}

## 5. The attention weights softmax(QKᵀ/√d_k + M)

Each row sums to 1: where token i looks (head {h}). The first token can only look at itself.

{matrix_table(ex["weights"], labels, [shown(tok) for tok in ex["tokens"]])}

The largest weight of each row (token → the token it looks at most): {strongest}. Of the {len(inner)} pieces
inside a word (not the word's first piece), {sum(inner.values())} look most at the first piece of their own word
in this head.

## 6. The new vector z

z_i = Σⱼ αᵢⱼ vⱼ: token {t} ({shown(ex['tokens'][t])}) gets a weighted average of the value vectors it may see. The
first {DIMS} of its {D} dimensions (head {h}):

| | {" | ".join(f"z[{d}]" for d in range(DIMS))} |
|---|{"---:|" * DIMS}
| z = A V (the formula above) | {" | ".join(num(v) for v in zt[:DIMS])} |
| Σⱼ αᵢⱼ vⱼ written out | {" | ".join(num(v) for v in wa)} |

The layer concatenates the H heads' z into a C = {C} vector and multiplies by W_O; that plus the residual goes on
to the feed-forward network. The package's functions agree with the hand-written formulas:

| check | agrees |
|---|---|
{checks}

## 7. Static against contextual

An embedding table gives a word one vector whatever the sentence ("static", as word2vec does); after attention the
vector depends on the other tokens ("contextual"). Token {contrast['index']} is {shown(contrast['token'])} in
**"{contrast['sentences'][0]}"** and at the same position in two other sentences; its vectors there, compared with
the first sentence's (cosine similarity; "equal" when no coordinate differs by 10⁻⁵ or more, i.e. equal up to float32 rounding):

{comparison(contrast)}

Same token, same position: the embedding row and X are the same vector (cosine 1). After one self-attention they
differ, because the tokens before it differ — a little when one token of thirteen changes, more when all do. The
first layer's output adds the residual (the unchanged E + P) back, so it moves less than the attention output itself.

A causal model shows the limit of this: the first token sees only itself. {shown(first_word['token'])} opens both
**"{first_word['sentences'][0]}"** and **"{first_word['sentences'][1]}"**, and its vectors stay identical through the
layer, whatever follows:

{comparison(first_word)}

(A bidirectional encoder such as BERT would give the first token a contextual vector too.)
"""


def checkpoint_facts(checkpoint: Path, model) -> dict:
    """Size of the weights file, parameters, training steps and validation perplexity (from all_results.json)."""
    results = json.loads((checkpoint / "all_results.json").read_text())
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return {"weights_mb": (checkpoint / "model.safetensors").stat().st_size / 2**20,
            "parameters": sum(p.numel() for p in model.parameters()),
            "layers": model.config.num_hidden_layers, "steps": state["global_step"],
            "perplexity": results["perplexity"]}


def main(argv: list[str] | None = None) -> str:
    """Render the page (optionally retraining the checkpoint first); returns its text."""
    args = parse_args(argv)
    if args.train:
        train_checkpoint()
    model, tokenizer = load(args.checkpoint)
    example = walkthrough(model, tokenizer, SENTENCE, head=args.head)
    index = example["tokens"].index(next(t for t in example["tokens"] if t.endswith("language")))
    contrast = static_vs_contextual(model, tokenizer, SENTENCE, OTHERS, index)
    first = static_vs_contextual(model, tokenizer, SENTENCE, [FIRST_WORD_OTHER], 0)
    page = render(example, contrast, first, checkpoint_facts(args.checkpoint, model))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page)
    print(f"wrote {args.out}")
    return page


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
