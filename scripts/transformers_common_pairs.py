"""transformers' common model tests (`ModelTesterMixin`) on our GPT, BERT and Transformer classes, each beside the
transformers model it corresponds to (GPT-2, BERT, BART; our GPT with the modern options beside Llama), built with
the same sizes.

Not a test module of this repository: `scripts/transformers_common_tests.py` copies it, as `test_pairs.py`, into a
package beside transformers' own `test_modeling_common.py` and runs it there (its relative imports need that package).
"""

from __future__ import annotations

import unittest

from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    BartModel,
    BertConfig,
    BertForMaskedLM,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    GPT2Config,
    GPT2ForSequenceClassification,
    GPT2LMHeadModel,
    GPT2Model,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    LlamaModel,
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
    ScratchTransformerConfig,
    ScratchTransformerForConditionalGeneration,
    ScratchTransformerModel,
)

from .generation.test_utils import GenerationTesterMixin
from .test_modeling_common import ModelTesterMixin, ids_tensor, random_attention_mask

# One set of sizes for every model (transformers' own testers use about these). Source and target have one length S = T,
# as in transformers' BART tester: `test_eager_matches_sdpa_inference` passes the source's padding mask as the
# `decoder_attention_mask` too (BART cuts a longer one to the decoder length; ours refuses it with a ValueError).
B, T, V, C, LAYERS, HEADS, FFN, POSITIONS = 2, 7, 99, 32, 2, 4, 37, 64
S = T
SPECIAL = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)


class Tester:
    """What `ModelTesterMixin` reads from its `model_tester`: the sizes, and a config with inputs."""

    def __init__(self, parent, make_config, kind: str):
        self.parent = parent
        self.make_config = make_config
        self.kind = kind  # "decoder" | "encoder" | "seq2seq"
        self.batch_size, self.vocab_size, self.hidden_size = B, V, C
        self.num_hidden_layers, self.num_attention_heads, self.is_training = LAYERS, HEADS, True
        self.seq_length = self.decoder_seq_length = T
        self.encoder_seq_length = S if kind == "seq2seq" else T

    def get_config(self):
        return self.make_config()

    def prepare_config_and_inputs_for_common(self):
        # ids from 3 on: no padding, bos or eos inside the inputs (BART's classification head counts eos tokens)
        inputs = {"input_ids": ids_tensor([B, self.encoder_seq_length], V - 3) + 3,
                  "attention_mask": random_attention_mask([B, self.encoder_seq_length])}
        if self.kind == "seq2seq":
            inputs["decoder_input_ids"] = ids_tensor([B, T], V - 3) + 3
            inputs["decoder_attention_mask"] = random_attention_mask([B, T])
        return self.get_config(), inputs


def gpt2_config():
    return GPT2Config(vocab_size=V, n_embd=C, n_layer=LAYERS, n_head=HEADS, n_inner=FFN, n_positions=POSITIONS,
                      **SPECIAL)


def scratch_gpt_config():
    return ScratchGPTConfig(vocab_size=V, hidden_size=C, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                            intermediate_size=FFN, max_position_embeddings=POSITIONS, **SPECIAL)


def llama_config():
    return LlamaConfig(vocab_size=V, hidden_size=C, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                       num_key_value_heads=2, intermediate_size=FFN, max_position_embeddings=POSITIONS, **SPECIAL)


def scratch_llama_config():
    """Our GPT as a Llama: rotary positions, RMSNorm, SwiGLU, grouped-query attention, no biases."""
    return ScratchGPTConfig(vocab_size=V, hidden_size=C, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                            num_key_value_heads=2, intermediate_size=FFN, max_position_embeddings=POSITIONS,
                            position_embedding_type="rotary", norm_type="rmsnorm", ffn_type="gated", activation="silu",
                            attention_bias=False, ffn_bias=False, layer_norm_eps=1e-6, tie_word_embeddings=False,
                            **SPECIAL)


def bert_config():
    return BertConfig(vocab_size=V, hidden_size=C, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                      intermediate_size=FFN, max_position_embeddings=POSITIONS, **SPECIAL)


def scratch_bert_config():
    return ScratchBertConfig(vocab_size=V, hidden_size=C, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                             intermediate_size=FFN, max_position_embeddings=POSITIONS, **SPECIAL)


def bart_config():
    return BartConfig(vocab_size=V, d_model=C, encoder_layers=LAYERS, decoder_layers=LAYERS,
                      encoder_attention_heads=HEADS, decoder_attention_heads=HEADS, encoder_ffn_dim=FFN,
                      decoder_ffn_dim=FFN, max_position_embeddings=POSITIONS, decoder_start_token_id=2,
                      **SPECIAL)


def scratch_transformer_config():
    return ScratchTransformerConfig(vocab_size=V, hidden_size=C, encoder_layers=LAYERS, decoder_layers=LAYERS,
                                    num_attention_heads=HEADS, intermediate_size=FFN,
                                    max_position_embeddings=POSITIONS, decoder_start_token_id=2,
                                    **SPECIAL)


class CommonTests(ModelTesterMixin):
    make_config = None
    kind = "decoder"

    def setUp(self):
        self.model_tester = Tester(self, type(self).make_config, self.kind)


# Each pair: ours first, transformers' twin second; the runner compares them test by test (its PAIRS).
class TestScratchGPT(CommonTests, GenerationTesterMixin, unittest.TestCase):
    all_model_classes = (ScratchGPTModel, ScratchGPTForCausalLM, ScratchGPTForSequenceClassification)
    make_config = staticmethod(scratch_gpt_config)


class TestGPT2(CommonTests, GenerationTesterMixin, unittest.TestCase):
    all_model_classes = (GPT2Model, GPT2LMHeadModel, GPT2ForSequenceClassification)
    make_config = staticmethod(gpt2_config)


class TestScratchGPTRotary(CommonTests, GenerationTesterMixin, unittest.TestCase):
    all_model_classes = (ScratchGPTModel, ScratchGPTForCausalLM, ScratchGPTForSequenceClassification)
    make_config = staticmethod(scratch_llama_config)


class TestLlama(CommonTests, GenerationTesterMixin, unittest.TestCase):
    all_model_classes = (LlamaModel, LlamaForCausalLM, LlamaForSequenceClassification)
    make_config = staticmethod(llama_config)


class TestScratchBert(CommonTests, unittest.TestCase):
    all_model_classes = (ScratchBertModel, ScratchBertForMaskedLM, ScratchBertForSequenceClassification,
                         ScratchBertForTokenClassification, ScratchBertForQuestionAnswering)
    make_config = staticmethod(scratch_bert_config)
    kind = "encoder"


class TestBert(CommonTests, unittest.TestCase):
    all_model_classes = (BertModel, BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification,
                         BertForQuestionAnswering)
    make_config = staticmethod(bert_config)
    kind = "encoder"


class TestScratchTransformer(CommonTests, GenerationTesterMixin, unittest.TestCase):
    all_model_classes = (ScratchTransformerModel, ScratchTransformerForConditionalGeneration)
    make_config = staticmethod(scratch_transformer_config)
    kind = "seq2seq"
    is_encoder_decoder = True


class TestBart(CommonTests, GenerationTesterMixin, unittest.TestCase):
    all_model_classes = (BartModel, BartForConditionalGeneration)
    make_config = staticmethod(bart_config)
    kind = "seq2seq"
    is_encoder_decoder = True
