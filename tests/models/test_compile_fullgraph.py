"""`_can_compile_fullgraph` says what is true: every Transformer-family class traces to one graph with no graph break
(its forward with padding and labels; a cached decoding step with a static cache), so transformers' compile and
static-cache machinery may rely on it. The recurrent family packs padded sequences (lengths on the host): not claimed."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo
from transformers.cache_utils import EncoderDecoderCache, StaticCache

from scratchformers import (
    ScratchBertConfig,
    ScratchBertForMaskedLM,
    ScratchBertForQuestionAnswering,
    ScratchBertForSequenceClassification,
    ScratchBertForTokenClassification,
    ScratchBertModel,
    ScratchGPTConfig,
    ScratchGPTForCausalLM,
    ScratchGPTForSequenceClassification,
    ScratchGPTModel,
    ScratchRNNForConditionalGeneration,
    ScratchRNNModel,
    ScratchTransformerConfig,
    ScratchTransformerForConditionalGeneration,
    ScratchTransformerModel,
)

# the heads: each traces its family's body too (the bodies are checked for the flag only, tracing them again is slow)
HEADS = [
    (ScratchGPTConfig, ScratchGPTForCausalLM), (ScratchGPTConfig, ScratchGPTForSequenceClassification),
    (ScratchBertConfig, ScratchBertForMaskedLM), (ScratchBertConfig, ScratchBertForSequenceClassification),
    (ScratchBertConfig, ScratchBertForTokenClassification), (ScratchBertConfig, ScratchBertForQuestionAnswering),
    (ScratchTransformerConfig, ScratchTransformerForConditionalGeneration),
]
BODIES = [ScratchGPTModel, ScratchBertModel, ScratchTransformerModel]


def inputs_for(model_class, config) -> dict:
    """A right-padded batch (row 1 has 2 padding slots) with the labels/targets the class's loss takes."""
    x = torch.randint(3, config.vocab_size, (2, 6))
    mask = torch.ones_like(x)
    mask[1, -2:] = 0
    kwargs = dict(input_ids=x, attention_mask=mask)
    if config.is_encoder_decoder:
        kwargs["decoder_input_ids"] = torch.randint(3, config.vocab_size, (2, 4))
    name = model_class.__name__
    if name.endswith(("CausalLM", "MaskedLM", "TokenClassification")):
        kwargs["labels"] = torch.randint(0, config.num_labels if "Token" in name else config.vocab_size, (2, 6))
    elif name.endswith("SequenceClassification"):
        kwargs["labels"] = torch.tensor([0, 1])
    elif name.endswith("QuestionAnswering"):
        kwargs.update(start_positions=torch.tensor([1, 2]), end_positions=torch.tensor([2, 3]))
    elif name.endswith("ConditionalGeneration"):
        kwargs["labels"] = torch.randint(3, config.vocab_size, (2, 4))
    return kwargs


@pytest.mark.parametrize("model_class", BODIES, ids=lambda c: c.__name__)
def test_transformer_bodies_claim_fullgraph(model_class):
    assert model_class._can_compile_fullgraph is True


@pytest.mark.parametrize("config_class,model_class", HEADS, ids=lambda c: c.__name__)
def test_transformer_heads_claim_fullgraph_and_trace_without_graph_breaks(tiny, config_class, model_class):
    assert model_class._can_compile_fullgraph is True
    config = config_class(**{**tiny, "num_hidden_layers": 1})
    model = model_class(config).eval()
    kwargs = inputs_for(model_class, config)
    torch._dynamo.reset()
    with torch.no_grad():
        explained = torch._dynamo.explain(model)(**kwargs)
    assert explained.graph_break_count == 0, [b.reason for b in explained.break_reasons]
    assert explained.graph_count == 1


def test_seq2seq_cached_decoding_step_traces_without_graph_breaks(tiny):
    """The step generate() compiles: one new target token against a static self- and cross-attention cache."""
    config = ScratchTransformerConfig(**{**tiny, "num_hidden_layers": 1})
    model = ScratchTransformerForConditionalGeneration(config).eval()
    x = torch.randint(3, 64, (2, 7))
    cache = EncoderDecoderCache(StaticCache(config=config, max_cache_len=10), StaticCache(config=config, max_cache_len=7))
    with torch.no_grad():
        encoded = model.get_encoder()(input_ids=x)
        model(encoder_outputs=encoded, decoder_input_ids=torch.ones(2, 1, dtype=torch.long), cache=cache, use_cache=True)
        torch._dynamo.reset()
        explained = torch._dynamo.explain(model)(
            encoder_outputs=encoded, decoder_input_ids=torch.full((2, 1), 5), cache=cache, use_cache=True
        )
    assert explained.graph_break_count == 0, [b.reason for b in explained.break_reasons]


@pytest.mark.parametrize("model_class", [ScratchRNNModel, ScratchRNNForConditionalGeneration])
def test_recurrent_classes_do_not_claim_fullgraph(model_class):
    assert model_class._can_compile_fullgraph is False
