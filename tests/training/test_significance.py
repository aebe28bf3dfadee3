"""scratchformers.metrics.significance: sacrebleu's bootstrap intervals and paired tests, checked against references."""

from __future__ import annotations

import random

import pytest

from scratchformers.metrics import compute_translation_metrics
from scratchformers.metrics.significance import paired_bootstrap_test, scores_with_confidence

WORDS = "the a cat dog sat ran on under mat table red blue quickly slowly house garden".split()


def corpus(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 10))) for _ in range(n)]


def corrupt(sentences: list[str], rate: float, seed: int) -> list[str]:
    """Each word replaced by a random one with probability `rate`."""
    rng = random.Random(seed)
    return [" ".join(w if rng.random() > rate else rng.choice(WORDS) for w in s.split()) for s in sentences]


REFS = corpus(120, 0)
GOOD = corrupt(REFS, 0.1, 1)
BAD = corrupt(REFS, 0.6, 2)


def test_point_scores_match_the_evaluate_metrics():
    scores = scores_with_confidence(GOOD, REFS, n_samples=200)
    expected = compute_translation_metrics(GOOD, [[r] for r in REFS])
    assert scores["bleu"]["score"] == pytest.approx(expected["bleu"])
    assert scores["chrf"]["score"] == pytest.approx(expected["chrf"])


def test_interval_is_sacrebleu_mean_plus_minus_ci_and_holds_the_score():
    for m in scores_with_confidence(GOOD, REFS, n_samples=200).values():
        assert m["low"] == pytest.approx(m["mean"] - m["ci"]) and m["high"] == pytest.approx(m["mean"] + m["ci"])
        assert 0 < m["ci"] and m["low"] <= m["score"] <= m["high"]


def test_interval_stays_inside_the_metric_range():
    # a near-zero BLEU: sacrebleu's mean − ci is negative; the recorded bound is clipped at 0
    poor = [g if i % 20 == 0 else "x" for i, g in enumerate(GOOD)]  # BLEU ≈ 0.5
    bleu = scores_with_confidence(poor, REFS, n_samples=200)["bleu"]
    assert bleu["mean"] - bleu["ci"] < 0.0 and bleu["low"] == 0.0 and bleu["high"] == bleu["mean"] + bleu["ci"]


def test_interval_narrows_with_more_sentences():
    small = scores_with_confidence(GOOD[:20], REFS[:20], n_samples=300)["bleu"]
    large = scores_with_confidence(GOOD, REFS, n_samples=300)["bleu"]
    assert large["ci"] < small["ci"]


def test_clearly_better_system_is_significant():
    test = paired_bootstrap_test(BAD, GOOD, REFS, n_samples=300)
    for m in test.values():
        assert m["delta"] > 10 and m["p_value"] < 0.05 and m["significant"] is True


def test_identical_systems_are_not_significantly_different():
    # sacrebleu's formula alone gives p = 1/(n+1) for a zero difference; a tie must not read as significant
    test = paired_bootstrap_test(GOOD, list(GOOD), REFS, n_samples=100)
    for m in test.values():
        assert m["delta"] == 0.0 and m["p_value"] == 1.0 and m["significant"] is False


def test_tiny_difference_is_not_significant():
    one_changed = list(GOOD)
    one_changed[0] = BAD[0]
    test = paired_bootstrap_test(GOOD, one_changed, REFS, n_samples=300)
    assert test["bleu"]["p_value"] > 0.05 and test["bleu"]["significant"] is False


@pytest.mark.parametrize("call, message", [
    (lambda: scores_with_confidence(GOOD, REFS[:5]), "120 hypotheses but 5 references"),
    (lambda: scores_with_confidence([], []), "empty"),
    (lambda: scores_with_confidence(GOOD, REFS, n_samples=1), "n_samples"),
    (lambda: paired_bootstrap_test(GOOD[:5], GOOD, REFS), "5 hypotheses but 120"),
])
def test_bad_arguments_are_value_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_mean_interval_is_the_bootstrap_percentile_range_of_resampled_means():
    """Reference: the resampled means computed with the same seeded generator, and the 2.5/97.5 percentiles (sacrebleu
    takes the (n//40)-th order statistics, which numpy's 'lower'/'higher' percentile methods pick for n = 1000)."""
    import numpy as np

    from scratchformers.metrics.significance import mean_with_confidence

    values = [1.0] * 70 + [0.0] * 30
    result = mean_with_confidence(values, n_samples=1000)
    assert result["score"] == pytest.approx(0.7)
    means = np.asarray(values)[np.random.default_rng(12345).choice(100, size=(1000, 100))].mean(axis=1)
    low, high = np.sort(means)[25], np.sort(means)[974]
    assert result["ci"] == pytest.approx((high - low) / 2) and result["mean"] == pytest.approx(means.mean())
    assert result["low"] < 0.7 < result["high"]
    assert 0.07 < result["ci"] < 0.11  # ≈ 1.96·√(0.7·0.3/100) = 0.09, the normal approximation
    with pytest.raises(ValueError, match="no values"):
        mean_with_confidence([])


def test_exact_match_is_the_share_of_equal_answers_with_sacrebleus_interval_and_test():
    gold = ["German", "French", "Dutch", "Italian"] * 30
    half = [g if i % 2 == 0 else "Spanish" for i, g in enumerate(gold)]  # 60 of 120 equal
    scores = scores_with_confidence([f" {h}\n" for h in half], gold, n_samples=300, metrics=["exact_match"])
    em = scores["exact_match"]  # (surrounding whitespace is stripped, as generate_answers does)
    assert list(scores) == ["exact_match"] and em["score"] == 50.0 and em["low"] < 50.0 < em["high"]
    # the bootstrap of a proportion: its 95 % half-width ≈ 1.96·√(p(1−p)/n) = 8.9 points for p = ½, n = 120
    assert em["ci"] == pytest.approx(1.96 * (0.25 / 120) ** 0.5 * 100, abs=2.0)  # (300 resamples: ± 2 points)
    test = paired_bootstrap_test(half, gold, gold, n_samples=300, metrics=["exact_match"])["exact_match"]
    assert test["delta"] == 50.0 and test["significant"] is True
    with pytest.raises(ValueError, match="metrics must be a non-empty list of bleu, chrf, exact_match"):
        scores_with_confidence(half, gold, metrics=["accuracy"])
