"""The Transformer: an encoder of self-attention layers and a decoder of masked self-attention + cross-attention
layers over the encoder's output (Vaswani et al. 2017, §3.1, Figure 1).

"The encoder maps an input sequence of symbol representations (x₁, …, xₙ) to a sequence of continuous
representations z = (z₁, …, zₙ). Given z, the decoder then generates an output sequence (y₁, …, yₘ) of symbols one
element at a time." Both stacks are the shared `layers.TransformerStack`; this file adds only what is new here: one
embedding shared by source, target and output layer, the teacher-forcing shift, and the seq2seq outputs.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutput

from .compat import cache_field, output_cache
from .configuration_scratch_transformer import ScratchTransformerConfig
from .embeddings import Embeddings, TokenEmbedding
from .layers import TransformerStack
from .pretrained import add_to_name_tables
from .pretrained_stack import ScratchPreTrainedModel
from .seq2seq import ScratchSeq2SeqLM, ScratchSeq2SeqModel


class ScratchTransformerPreTrainedModel(ScratchPreTrainedModel):
    """Base class of the encoder-decoder family: config class, weight init, checkpoint conventions."""

    config_class = ScratchTransformerConfig
    main_input_name = "input_ids"

    def _init_weights(self, module: nn.Module) -> None:
        """The shared init, except token embeddings ~ N(0, d_model^−0.5): scaled by √d_model they have unit variance,
        the scale of the sinusoidal positions they are added to (the fairseq / tensor2tensor practice). The optional
        `final_logits_bias` buffer starts at zero."""
        if isinstance(module, ScratchTransformerForConditionalGeneration) and module.final_logits_bias is not None:
            init.zeros_(module.final_logits_bias)
        if isinstance(module, TokenEmbedding):
            self._init_embedding(module, self.config.hidden_size**-0.5)
        else:
            super()._init_weights(module)

    def _resize_token_embeddings(self, new_num_tokens, pad_to_multiple_of=None, mean_resizing=True) -> nn.Embedding:
        """transformers' resize (encoder embedding, output layer, re-tying), plus what it cannot know about: the
        decoder's own token matrix when embeddings are untied, BART's `final_logits_bias` (cut, or grown with zeros as
        `BartForConditionalGeneration._resize_final_logits_bias` does), and — with `mean_resizing=False` — added
        token rows drawn from this family's N(0, d_model^−0.5) rather than the generic N(0, 0.02)."""
        body = self.base_model
        old_num_tokens = body.encoder.embeddings.embed_tokens.weight.shape[0]
        embeddings = super()._resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        new_num_tokens = embeddings.weight.shape[0]
        decoder_tokens = body.decoder.embeddings.embed_tokens
        if decoder_tokens.weight is not embeddings.weight:  # untied: the decoder keeps its own matrix
            self._get_resized_embeddings(decoder_tokens, new_num_tokens, mean_resizing=mean_resizing)  # in place
        if new_num_tokens > old_num_tokens and not mean_resizing:
            with torch.no_grad():
                for tokens in {embeddings, decoder_tokens}:
                    tokens.weight[old_num_tokens:].normal_(0.0, self.config.hidden_size**-0.5)
        bias = getattr(self, "final_logits_bias", None)
        if bias is not None:  # (1, V_old) -> (1, V_new)
            grown = bias.new_zeros(1, max(0, new_num_tokens - bias.shape[-1]))
            self.final_logits_bias = torch.cat([bias[:, :new_num_tokens], grown], dim=1)
        return embeddings


class ScratchTransformerEncoder(TransformerStack):
    """The encoder: N non-causal self-attention layers over the source; padded source tokens are never attended to.

    The shared stack with the call convention `generate()` uses for an encoder (`return_dict`, extra kwargs ignored).
    """

    def __init__(self, config: ScratchTransformerConfig, embeddings: Embeddings):
        super().__init__(config, config.encoder_layers, causal=False, embeddings=embeddings)

    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                **kwargs) -> BaseModelOutput | tuple:
        out = super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            output_attentions=bool(output_attentions),
            output_hidden_states=bool(output_hidden_states),
        )
        out = BaseModelOutput(
            last_hidden_state=out.last_hidden_state, hidden_states=out.hidden_states, attentions=out.attentions
        )
        return out if return_dict is None or return_dict else out.to_tuple()


class ScratchTransformerModel(ScratchTransformerPreTrainedModel, ScratchSeq2SeqModel):
    """The body: encoder(source) → memory z; decoder(target prefix, z) → hidden states. Source and target share one
    token matrix: "we share the same weight matrix between the two embedding layers and the pre-softmax linear
    transformation" (§3.4). Sinusoidal positions hold no parameters, so the token matrix is all there is to share.

    With `tie_word_embeddings=False` the encoder, decoder and output layer each keep their own matrix.
    """

    _tied_weights_keys = {"decoder.embeddings.embed_tokens.weight": "encoder.embeddings.embed_tokens.weight"}

    def __init__(self, config: ScratchTransformerConfig):
        super().__init__(config)
        self.encoder = ScratchTransformerEncoder(config, Embeddings(config))
        self.decoder = TransformerStack(
            config, config.decoder_layers, causal=True, cross_attention=True, embeddings=Embeddings(config)
        )
        self.post_init()  # ties decoder.embeddings.embed_tokens.weight to the encoder's when config.tie_word_embeddings

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.embeddings.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.encoder.embeddings.embed_tokens = value
        if self.config.tie_word_embeddings:
            self.decoder.embeddings.embed_tokens = value

    def decode(self, encoded, attention_mask, decoder_input_ids, decoder_attention_mask, decoder_inputs_embeds,
               cache, use_cache, output_attentions, output_hidden_states) -> dict:
        """The decoder stack over the target prefix, cross-attending to z = `encoded.last_hidden_state` (B, S, C)."""
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            raise ValueError(
                "Pass `decoder_input_ids` (or `labels`, which are shifted into them, to the ForConditionalGeneration "
                "model) so the decoder has a target prefix to read."
            )
        out = self.decoder(
            input_ids=decoder_input_ids, attention_mask=decoder_attention_mask, inputs_embeds=decoder_inputs_embeds,
            memory=encoded.last_hidden_state,  # z: (B, S, C)
            memory_mask=attention_mask,  # cross-attention sees only real source tokens
            cache=cache, use_cache=use_cache, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        return dict(last_hidden_state=out.last_hidden_state, **cache_field(output_cache(out)),
                    decoder_hidden_states=out.hidden_states, decoder_attentions=out.attentions,
                    cross_attentions=out.cross_attentions)


class ScratchTransformerForConditionalGeneration(ScratchTransformerPreTrainedModel, ScratchSeq2SeqLM):
    """The Transformer with its output layer: p(yₜ | y<t, x) = softmax(h_t Eᵀ) with E the shared embedding (tied).

    Translates with `generate()` (greedy, sampling, beam search) using a self- and cross-attention cache; the forward
    (labels, teacher forcing, loss) is the shared `seq2seq.ScratchSeq2SeqLM`'s.
    """

    _tied_weights_keys = {"lm_head.weight": "model.encoder.embeddings.embed_tokens.weight"}

    def __init__(self, config: ScratchTransformerConfig):
        super().__init__(config)
        self.model = ScratchTransformerModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        # BART/Marian's output bias: a (1, V) buffer (saved, not trained), present only with config.final_logits_bias
        bias = torch.zeros(1, config.vocab_size) if config.final_logits_bias else None
        self.register_buffer("final_logits_bias", bias)
        self.post_init()

    def output_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Decoder states (…, C) → vocabulary logits (…, V): h Eᵀ (+ BART's final_logits_bias)."""
        logits = self.lm_head(hidden_states)
        return logits if self.final_logits_bias is None else logits + self.final_logits_bias.to(logits.dtype)[0]


#: Our classes by the Auto class that loads each: the package registers them (`scratchformers.__init__`), and
#: `add_to_name_tables` puts them in transformers' own name tables, also in a remote-code process.
AUTO_CLASSES = {
    "AutoModel": ScratchTransformerModel,
    "AutoModelForSeq2SeqLM": ScratchTransformerForConditionalGeneration,
}
add_to_name_tables(ScratchTransformerConfig.model_type, AUTO_CLASSES)
