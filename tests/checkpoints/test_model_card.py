"""Model cards: Hub metadata (library, tags, datasets, measured metrics) and the body a reader needs."""

from __future__ import annotations

import math

import pytest
from huggingface_hub import ModelCard
from journey_helpers import tiny_checkpoint

from scratchformers.model_card import write_model_card


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("card"))


def test_card_metadata_parses_with_huggingface_hub(checkpoint):
    metrics = {"eval_loss": 4.25, "perplexity": math.exp(4.25), "eval_runtime": 1.5}
    path = write_model_card(checkpoint, metrics, ["scratchformers-prose"], "configs/gpt-tiny.json")
    card = ModelCard.load(path)
    assert card.data.library_name == "transformers"
    assert card.data.tags[:3] == ["scratchformers", "scratch_gpt", "custom_code"]
    assert card.data.datasets == ["scratchformers-prose"]
    assert card.data.pipeline_tag == "text-generation"
    assert card.data.base_config == "configs/gpt-tiny.json"
    values = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert values == {"loss": 4.25, "perplexity": round(math.exp(4.25), 4)}  # runtimes are not metrics
    assert all(r.dataset_name == "scratchformers-prose" for r in card.data.eval_results)


def test_card_body_documents_architecture_loading_and_limits(checkpoint):
    path = write_model_card(checkpoint, {"perplexity": 123.0}, ["my-corpus"], "configs/gpt-tiny.json")
    text = path.read_text()
    for needle in ("num_hidden_layers=2", "hidden_size=32", "trust_remote_code=True", "AutoModelForCausalLM",
                   "import scratchformers", "`my-corpus`", "| perplexity | 123 |", "configs/gpt-tiny.json",
                   "limitations"):
        assert needle in text, needle


def test_classification_card_uses_the_classification_pipeline(checkpoint):
    path = write_model_card(checkpoint, {"eval_accuracy": 0.875}, ["langid"], None, task="text-classification",
                            language=None)
    card = ModelCard.load(path)
    assert card.data.pipeline_tag == "text-classification"
    assert [(r.metric_type, r.metric_value) for r in card.data.eval_results] == [("accuracy", 0.875)]
    assert "AutoModelForSequenceClassification" in card.text


def test_non_finite_metrics_are_left_out(checkpoint):
    path = write_model_card(checkpoint, {"perplexity": float("inf"), "eval_loss": 3.0}, ["d"], None)
    assert [r.metric_type for r in ModelCard.load(path).data.eval_results] == ["loss"]


def test_bad_arguments_are_rejected(checkpoint, tmp_path):
    with pytest.raises(ValueError, match="unknown task 'summarize'"):
        write_model_card(checkpoint, {}, ["d"], None, task="summarize")
    with pytest.raises(ValueError, match="datasets must be a non-empty list"):
        write_model_card(checkpoint, {}, "prose", None)
    with pytest.raises(FileNotFoundError, match="save the model"):
        write_model_card(tmp_path, {}, ["d"], None)
