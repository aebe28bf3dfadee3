"""The local BLEU and chrF modules load without the network and agree with sacrebleu."""

import socket

import pytest
import sacrebleu

from scratchformers.data import load_translation
from scratchformers.metrics import compute_translation_metrics, load_metric


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Hub access switched off, and any attempt to open a connection fails the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)


@pytest.fixture(scope="module")
def german():
    """Real references and imperfect predictions: every third sentence loses its last word."""
    references = [row["de"] for row in load_translation("en-de")["test"].select(range(60))["translation"]]
    predictions = [" ".join(r.split()[:-1]) if i % 3 == 0 else r for i, r in enumerate(references)]
    return predictions, references


@pytest.mark.parametrize("name", ["bleu", "chrf"])
def test_identical_predictions_score_100(name):
    texts = ["Datei konnte nicht geöffnet werden", "unbekannte Option", "Größe des Mauszeigers"]
    assert load_metric(name).compute(predictions=texts, references=texts)["score"] == pytest.approx(100.0)


def test_bleu_matches_sacrebleu(german):
    predictions, references = german
    ours = load_metric("bleu").compute(predictions=predictions, references=references)
    theirs = sacrebleu.corpus_bleu(predictions, [references])
    assert 0 < ours["score"] < 100
    assert ours["score"] == pytest.approx(theirs.score, abs=1e-6)
    assert ours["counts"] == theirs.counts and ours["bp"] == pytest.approx(theirs.bp, abs=1e-6)
    assert ours["precisions"] == pytest.approx(theirs.precisions, abs=1e-6)


def test_bleu_with_two_references_each_matches_sacrebleu(german):
    predictions, references = german
    second = [r.lower() for r in references]
    ours = load_metric("bleu").compute(predictions=predictions, references=[[a, b] for a, b in zip(references, second)])
    assert ours["score"] == pytest.approx(sacrebleu.corpus_bleu(predictions, [references, second]).score, abs=1e-6)


def test_chrf_matches_sacrebleu(german):
    predictions, references = german
    ours = load_metric("chrf").compute(predictions=predictions, references=references)["score"]
    assert 0 < ours < 100
    assert ours == pytest.approx(sacrebleu.corpus_chrf(predictions, [references]).score, abs=1e-6)
    chrf_pp = load_metric("chrf").compute(predictions=predictions, references=references, word_order=2)["score"]
    assert chrf_pp == pytest.approx(
        sacrebleu.CHRF(word_order=2).corpus_score(predictions, [references]).score, abs=1e-6
    )


def test_compute_translation_metrics_reports_both_scores(german):
    predictions, references = german
    scores = compute_translation_metrics(predictions, references)
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(predictions, [references]).score, abs=1e-6)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(predictions, [references]).score, abs=1e-6)
    with pytest.raises(ValueError, match="predictions"):
        compute_translation_metrics(predictions, references[:-1])


def test_unknown_metric_names_the_allowed_ones():
    with pytest.raises(ValueError, match="bleu"):
        load_metric("rouge")
