"""The fair comparison of docs/rnn.md (scripts/compare_architectures.py; scripts/parallelism.py sizes its models the
same way): the architectures compared, how each is sized to the Transformer's parameter count (±20 %), the learning-rate
schedule they all share, and the source-length buckets BLEU is broken down by. Library code the scripts and their
tests share."""

from __future__ import annotations

import math

import torch
from transformers import PreTrainedTokenizerBase

from scratchformers.configuration_scratch_rnn import ScratchRNNConfig
from scratchformers.configuration_scratch_transformer import ScratchTransformerConfig
from scratchformers.modeling_scratch_rnn import ScratchRNNForConditionalGeneration

TRANSFORMER = "Transformer"
#: name → ScratchRNNConfig options; the Transformer is the reference the RNNs are sized against
RNN_KINDS = {
    "LSTM seq2seq": dict(cell="lstm", attention=None),
    "LSTM + Bahdanau": dict(cell="lstm", attention="bahdanau"),
    "GRU + Luong": dict(cell="gru", attention="luong", luong_score="general"),
}
ARCHITECTURES = ("LSTM seq2seq", "LSTM + Bahdanau", "GRU + Luong", TRANSFORMER)
#: the story's steps (Sutskever → Bahdanau → Vaswani) plus the two side-by-sides a reader asks about
NEIGHBOURS = (("LSTM seq2seq", "LSTM + Bahdanau"), ("LSTM + Bahdanau", "GRU + Luong"),
              ("LSTM + Bahdanau", TRANSFORMER), ("LSTM seq2seq", TRANSFORMER))
PARAM_TOLERANCE = 0.20
LENGTH_BUCKETS = 4


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct trainable parameters (a tied embedding/output matrix counts once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def special_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """pad/bos/eos ids and the decoder start token (the tokenizer's <s>)."""
    return dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.bos_token_id)


def transformer_config(d_model: int, layers: int, max_length: int,
                       tokenizer: PreTrainedTokenizerBase) -> ScratchTransformerConfig:
    """The reference model: the paper's layout at a small width (post-LN, sinusoidal, shared scaled embedding), with
    `layers` encoder and `layers` decoder layers of width `d_model`, 4 heads, a 4·d_model feed-forward, and positions
    for `max_length` + 8 tokens."""
    return ScratchTransformerConfig(
        vocab_size=len(tokenizer), hidden_size=d_model, num_hidden_layers=layers,
        num_attention_heads=4, intermediate_size=4 * d_model, hidden_dropout_prob=0.1,
        max_position_embeddings=max_length + 8, **special_ids(tokenizer),
    )


def rnn_layers(transformer_layers: int) -> int:
    """The RNNs' layer count for a Transformer of `transformer_layers` encoder (= decoder) layers: 1 below 3, else 2."""
    return 1 if transformer_layers < 3 else 2


def rnn_config_for_budget(options: dict, budget: int, layers: int,
                          tokenizer: PreTrainedTokenizerBase) -> ScratchRNNConfig:
    """The RNN config (`options` of `RNN_KINDS`, `layers` layers, bidirectional encoder) whose parameter count is
    closest to `budget`, searching the hidden size in steps of 8.

    Raises ValueError when no hidden size lands within ±20 % of `budget`.
    """
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


def inverse_sqrt_factor(step: int, warmup: int) -> float:
    """lr(step)/peak: linear warm-up, then √(warmup/step) (Vaswani et al. 2017, eq. 3; independent of the budget)."""
    step = step + 1
    return min(step / warmup, math.sqrt(warmup / step))


def length_buckets(lengths: list[int], n: int = LENGTH_BUCKETS) -> list[dict[str, int]]:
    """`n` contiguous [low, high] source-length ranges with as equal counts as ties allow (quantile edges), each as
    {low, high, count}.

    Raises ValueError if the lengths allow fewer than `n` non-empty buckets.
    """
    ordered = sorted(lengths)
    # bucket k ends at the value below which k/n of the sentences lie; tied lengths stay in one bucket
    highs = sorted({ordered[math.ceil(k * len(ordered) / n) - 1] for k in range(1, n)} | {ordered[-1]})
    lows = [ordered[0], *[high + 1 for high in highs[:-1]]]
    buckets = [dict(low=low, high=high) for low, high in zip(lows, highs)]
    for b in buckets:
        b["count"] = sum(b["low"] <= x <= b["high"] for x in lengths)
    buckets = [b for b in buckets if b["count"]]
    if len(buckets) < n:
        raise ValueError(f"source lengths {sorted(set(lengths))} give only {len(buckets)} buckets, need {n}")
    return buckets
