"""Offline translation metrics: BLEU and chrF as local 🤗 ``evaluate`` modules computed with sacrebleu.

``evaluate.load("bleu")`` fetches its script from the Hub; ``load_metric("bleu")`` loads ours from this package's
folder instead, so it works with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import evaluate

METRICS_DIR = Path(__file__).resolve().parent
METRIC_NAMES = ("bleu", "chrf")


def metric_path(name: str) -> Path:
    """The folder of the local metric module ``name`` (it holds ``<name>.py``)."""
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; allowed: {', '.join(METRIC_NAMES)}")
    return METRICS_DIR / name


def load_metric(name: str) -> evaluate.EvaluationModule:
    """``evaluate.load`` of our local ``"bleu"`` or ``"chrf"`` module (sacrebleu underneath; no network)."""
    return evaluate.load(str(metric_path(name)))


@cache
def _cached_metric(name: str) -> evaluate.EvaluationModule:
    """One loaded module per name, reused across calls (loading copies the script into the evaluate cache)."""
    return load_metric(name)


def compute_translation_metrics(predictions: list[str], references: list[str] | list[list[str]]) -> dict[str, float]:
    """Corpus ``{"bleu": ..., "chrf": ...}`` (0-100) of decoded predictions against one or more references each."""
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions but {len(references)} references")
    return {
        name: _cached_metric(name).compute(predictions=predictions, references=references)["score"]
        for name in METRIC_NAMES
    }
