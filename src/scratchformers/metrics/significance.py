"""Confidence intervals and paired significance tests for BLEU and chrF, with sacrebleu's own implementation.

sacrebleu 2.x exposes both through `sacrebleu.significance.PairedTest`, the class behind its CLI flag `--paired-bs`
(multi-system evaluation, which also prints each system's "μ ± 95 % CI"; the single-system `--confidence` computes
the same interval through `Metric.corpus_score(n_bootstrap=...)`); see sacrebleu's README and `significance.py`:

- **95 % confidence interval** (bootstrap, Koehn 2004): the test set is resampled with replacement 1,000 times, the
  corpus score recomputed from the resampled sentence statistics; sacrebleu reports the mean of those scores μ and
  half the width of their 2.5–97.5 percentile range, "μ ± ci". We record ``low = μ − ci`` and ``high = μ + ci``,
  clipped to the metric's range [0, 100] (a near-zero BLEU would otherwise get a negative lower bound).
- **Paired bootstrap resampling test** (Koehn 2004; Moses' `bootstrap-hypothesis-difference-significance.pl`): both
  systems are scored on the same resamples; p is the share of resampled |differences| (centred on their mean) that
  exceed the observed |difference|, with sacrebleu's +1 correction, p = (c + 1) / (n + 1).

``mean_with_confidence`` gives any per-item score (a 0/1 "was this pair ranked right", a per-item difference of two
systems) the same kind of interval: items resampled with replacement, sacrebleu's ``estimate_ci`` on the resampled
means.

Exact match (the share of hypotheses equal to their reference, 0–100) goes through the same machinery as a sacrebleu
`Metric` of its own (`ExactMatch`: each sentence's statistics are [equal, 1], summed and divided), so its interval and
paired test are sacrebleu's too — the bootstrap of a proportion.

The resampling seed is sacrebleu's (`SACREBLEU_SEED`, default 12345), so results are reproducible.
One correction: for two systems with the *same* score sacrebleu's formula gives p = 1/(n+1) (no resampled
difference is larger than zero — a "significant" tie); a difference of zero is recorded as p = 1.0 instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.metrics.base import Metric, Score, Signature
from sacrebleu.significance import PairedTest, estimate_ci


class ExactMatch(Metric):
    """Exact match as a sacrebleu metric: 100 · (hypotheses equal to a reference, surrounding whitespace stripped) /
    (hypotheses). Per-sentence statistics ``[equal, 1]``, so sacrebleu's bootstrap resamples them like BLEU's."""

    def _preprocess_segment(self, sent: str) -> str:
        return sent.strip()

    def _extract_reference_info(self, refs: Sequence[str]) -> dict:
        return {"refs": list(refs)}

    def _compute_segment_statistics(self, hypothesis: str, ref_kwargs: dict) -> list[int]:
        return [int(hypothesis in ref_kwargs["refs"]), 1]

    def _compute_score_from_stats(self, stats: Sequence[float]) -> Score:
        return Score("ExactMatch", 100.0 * float(stats[0]) / float(stats[1]))

    def _aggregate_and_compute(self, stats: list[list[int]]) -> Score:
        return self._compute_score_from_stats(np.asarray(stats).sum(0))

    def get_signature(self) -> Signature:
        return Signature(self.__dict__)


SIGNIFICANCE_LEVEL = 0.05
DEFAULT_SAMPLES = 1000
# our key → sacrebleu metric class (default settings: BLEU 13a, chrF2)
METRICS = {"bleu": BLEU, "chrf": CHRF, "exact_match": ExactMatch}
TRANSLATION_METRICS = ("bleu", "chrf")  # what the functions below score unless told


def _check(hypotheses: Sequence[str], references: Sequence[str], n_samples: int,
           metrics: Sequence[str] = TRANSLATION_METRICS) -> None:
    """The shared argument checks: same length, at least one sentence, at least 2 resamples, known metric names."""
    if isinstance(metrics, str) or not metrics or set(metrics) - set(METRICS):
        raise ValueError(f"metrics must be a non-empty list of {', '.join(METRICS)}, got {metrics!r}")
    if len(hypotheses) != len(references):
        raise ValueError(f"got {len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        raise ValueError("cannot score an empty test set")
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2 bootstrap resamples, got {n_samples}")


def _paired_test(systems: list[tuple[str, Sequence[str]]], references: Sequence[str], n_samples: int,
                 metrics: Sequence[str] = TRANSLATION_METRICS) -> dict:
    """sacrebleu's PairedTest (paired bootstrap) over `systems`, the first being the baseline: {key: [Result, …]}."""
    metrics = {key: METRICS[key]() for key in metrics}
    _, scores = PairedTest(list(systems), metrics, [list(references)], test_type="bs", n_samples=n_samples)()
    # sacrebleu names its columns after each metric ("BLEU", "chrF2"), in the order of `metrics`, after "System"
    columns = [results for name, results in scores.items() if name != "System"]
    return dict(zip(metrics, columns, strict=True))


def _interval(result) -> dict[str, float]:
    """A sacrebleu `Result` as {score, mean, ci, low, high}: low/high = mean ∓ the 95 % half-width, kept in [0, 100]."""
    mean, ci = float(result.mean), float(result.ci)
    return {"score": float(result.score), "mean": mean, "ci": ci,
            "low": max(0.0, mean - ci), "high": min(100.0, mean + ci)}


def scores_with_confidence(
    hypotheses: Sequence[str], references: Sequence[str], n_samples: int = DEFAULT_SAMPLES,
    metrics: Sequence[str] = TRANSLATION_METRICS,
) -> dict[str, dict[str, float]]:
    """Corpus BLEU and chrF (0–100; or the ``metrics`` named, keys of ``METRICS``) with sacrebleu's 95 % bootstrap
    interval, one reference per sentence.

    Returns ``{"bleu": {"score", "mean", "ci", "low", "high"}, "chrf": {...}}``: ``score`` is the corpus score,
    ``mean ± ci`` sacrebleu's bootstrap estimate (`sacrebleu --confidence`). Raises ValueError for mismatched
    lengths, an empty test set, fewer than 2 resamples or an unknown metric.
    """
    _check(hypotheses, references, n_samples, metrics)
    columns = _paired_test([("system", hypotheses)], references, n_samples, metrics)
    return {key: _interval(results[0]) for key, results in columns.items()}


def paired_bootstrap_test(
    baseline: Sequence[str], system: Sequence[str], references: Sequence[str], n_samples: int = DEFAULT_SAMPLES,
    metrics: Sequence[str] = TRANSLATION_METRICS,
) -> dict[str, dict[str, float | bool]]:
    """sacrebleu's paired bootstrap test (`sacrebleu --paired-bs`) of `system` against `baseline`, per metric.

    Returns ``{"bleu": {"baseline", "system", "delta", "p_value", "significant"}, "chrf": {...}}``: corpus scores,
    system − baseline, the p-value (in (0, 1]; 1.0 when the scores are equal) and ``p_value < 0.05``; for the
    ``metrics`` named (keys of ``METRICS``). Raises ValueError for mismatched lengths, an empty test set or an
    unknown metric.
    """
    _check(system, references, n_samples, metrics)
    _check(baseline, references, n_samples, metrics)
    columns = _paired_test([("baseline", baseline), ("system", system)], references, n_samples, metrics)
    out = {}
    for key, (base, sys) in columns.items():
        delta = float(sys.score - base.score)
        p_value = 1.0 if delta == 0.0 else float(sys.p_value)
        out[key] = {"baseline": float(base.score), "system": float(sys.score), "delta": delta,
                    "p_value": p_value, "significant": p_value < SIGNIFICANCE_LEVEL}
    return out


def mean_with_confidence(values: Sequence[float], n_samples: int = DEFAULT_SAMPLES) -> dict[str, float]:
    """The mean of per-item ``values`` (e.g. 1.0/0.0 for right/wrong: an accuracy) with a 95 % bootstrap interval.

    The items are resampled with replacement ``n_samples`` times (numpy's generator seeded as sacrebleu seeds its
    own, ``$SACREBLEU_SEED``, default 12345) and sacrebleu's ``estimate_ci`` (Koehn 2004) gives the mean μ of the
    resampled means and the half-width ci of their 2.5–97.5 percentile range. Returns ``{"score", "mean", "ci",
    "low", "high"}`` like ``scores_with_confidence`` (``score`` = the plain mean; low/high = μ ∓ ci, clipped to the
    range of ``values``, which no resampled mean leaves: an accuracy near 1 gets no bound above 1).
    Raises ValueError for no values or fewer than 2 resamples.
    """
    if len(values) == 0:
        raise ValueError("cannot compute a mean of no values")
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2 bootstrap resamples, got {n_samples}")
    seed = os.environ.get("SACREBLEU_SEED", "12345")
    rng = np.random.default_rng(None if seed.lower() == "none" else int(seed))
    array = np.asarray(values, dtype=np.float64)
    means = array[rng.choice(len(array), size=(n_samples, len(array)), replace=True)].mean(axis=1)
    mean, ci = estimate_ci(means)
    return {"score": float(array.mean()), "mean": float(mean), "ci": float(ci),
            "low": float(max(array.min(), mean - ci)), "high": float(min(array.max(), mean + ci))}
