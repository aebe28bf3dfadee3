"""The one table of our four families for the tests, and the tiny configs every test builds its models from.

`FAMILIES[name]` (gpt, bert, transformer, rnn) holds the config class, the body, the language-model head and the Auto
class that loads it, the other heads, and the family's tiny options; `family.config(**overrides)` makes a tiny config.
A test file that needs another shape of table derives it from this one."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForQuestionAnswering,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

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
    ScratchRNNConfig,
    ScratchRNNForConditionalGeneration,
    ScratchRNNModel,
    ScratchTransformerConfig,
    ScratchTransformerForConditionalGeneration,
    ScratchTransformerModel,
)

#: A tiny Transformer-family config (dropout off, so forward passes are deterministic).
TINY = dict(
    vocab_size=64,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=64,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)
#: What Llama is in scratch_gpt's options: rotary positions, RMSNorm, the SwiGLU feed-forward, no biases.
LLAMA_OPTIONS = dict(norm_type="rmsnorm", ffn_type="gated", activation="silu", position_embedding_type="rotary",
                     attention_bias=False, ffn_bias=False, layer_norm_eps=1e-6)
#: A tiny recurrent config (an LSTM with Bahdanau attention; dropout off).
RNN_TINY = dict(vocab_size=64, hidden_size=16, num_hidden_layers=2, cell="lstm", attention="bahdanau", dropout=0.0,
                pad_token_id=0, bos_token_id=1, eos_token_id=2)


@dataclass(frozen=True)
class Family:
    """One family: its config class, body, language-model head (and the Auto class that loads it), other heads."""

    name: str
    config_class: type
    body: type
    lm: type
    auto_lm: type
    heads: dict[type, type] = field(default_factory=dict)  # other head class -> its Auto class
    tiny: dict = field(default_factory=lambda: dict(TINY))

    def config(self, **overrides):
        """A tiny config of this family, with `overrides`."""
        return self.config_class(**{**self.tiny, **overrides})

    @property
    def classes(self) -> list[type]:
        """Every model class of the family: the LM head, the body, the other heads."""
        return [self.lm, self.body, *self.heads]


FAMILIES = {
    "gpt": Family("gpt", ScratchGPTConfig, ScratchGPTModel, ScratchGPTForCausalLM, AutoModelForCausalLM,
                  {ScratchGPTForSequenceClassification: AutoModelForSequenceClassification}),
    "bert": Family("bert", ScratchBertConfig, ScratchBertModel, ScratchBertForMaskedLM, AutoModelForMaskedLM,
                   {ScratchBertForSequenceClassification: AutoModelForSequenceClassification,
                    ScratchBertForTokenClassification: AutoModelForTokenClassification,
                    ScratchBertForQuestionAnswering: AutoModelForQuestionAnswering}),
    "transformer": Family("transformer", ScratchTransformerConfig, ScratchTransformerModel,
                          ScratchTransformerForConditionalGeneration, AutoModelForSeq2SeqLM),
    "rnn": Family("rnn", ScratchRNNConfig, ScratchRNNModel, ScratchRNNForConditionalGeneration, AutoModelForSeq2SeqLM,
                  tiny=dict(RNN_TINY)),
}


def family_of(model_class: type) -> Family:
    """The family whose classes include `model_class`."""
    return next(family for family in FAMILIES.values() if model_class in family.classes)
