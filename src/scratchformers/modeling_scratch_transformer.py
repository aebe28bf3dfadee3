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
from transformers import GenerationMixin
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput, Seq2SeqModelOutput

from .compat import cache_field, output_cache, takes_old_cache_name
from .configuration_scratch_transformer import ScratchTransformerConfig
from .embeddings import Embeddings, TokenEmbedding
from .hf_tables import ALIGNED_TOKEN_LOSS, add_to_name_tables
from .layers import TransformerStack
from .losses import logits_and_labelled_loss
from .pretrained import ScratchPreTrainedModel
from .seq2seq import TeacherForcingMixin


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

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutput | tuple:
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


class ScratchTransformerModel(ScratchTransformerPreTrainedModel):
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

    def get_encoder(self, modality: str | None = None) -> ScratchTransformerEncoder:
        return self.encoder

    @takes_old_cache_name
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> Seq2SeqModelOutput | tuple:
        self._check_kwargs(kwargs)
        use_cache = self.config.use_cache and not self.training if use_cache is None else use_cache
        output_attentions = bool(output_attentions if output_attentions is not None else self.config.output_attentions)
        output_hidden_states = bool(
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                inputs_embeds=inputs_embeds,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
                return_dict=True,
            )
        elif not isinstance(encoder_outputs, BaseModelOutput):  # a tuple from return_dict=False
            encoder_outputs = BaseModelOutput(*encoder_outputs)
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            raise ValueError(
                "Pass `decoder_input_ids` (or `labels`, which are shifted into them, to the ForConditionalGeneration "
                "model) so the decoder has a target prefix to read."
            )
        decoder_out = self.decoder(
            input_ids=decoder_input_ids,
            attention_mask=decoder_attention_mask,
            inputs_embeds=decoder_inputs_embeds,
            memory=encoder_outputs.last_hidden_state,  # z: (B, S, C)
            memory_mask=attention_mask,  # cross-attention sees only real source tokens
            cache=cache,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        out = Seq2SeqModelOutput(
            last_hidden_state=decoder_out.last_hidden_state,
            **cache_field(output_cache(decoder_out)),
            decoder_hidden_states=decoder_out.hidden_states,
            decoder_attentions=decoder_out.attentions,
            cross_attentions=decoder_out.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
        )
        return self._output(out, return_dict)


class ScratchTransformerForConditionalGeneration(ScratchTransformerPreTrainedModel, TeacherForcingMixin, GenerationMixin):
    """The Transformer with its output layer: p(yₜ | y<t, x) = softmax(h_t Eᵀ) with E the shared embedding (tied).

    `labels` (B, T) give the loss (−100 ignored) and, shifted right behind `decoder_start_token_id`, the decoder
    inputs. Translates with `generate()` (greedy, sampling, beam search) using a self- and cross-attention cache.
    """

    _tied_weights_keys = {"lm_head.weight": "model.encoder.embeddings.embed_tokens.weight"}

    def __init__(self, config: ScratchTransformerConfig):
        super().__init__(config)
        self.loss_type = ALIGNED_TOKEN_LOSS  # labels line up with the logits: no shift when counting targets
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

    @takes_old_cache_name
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> Seq2SeqLMOutput | tuple:
        self._check_kwargs(kwargs)
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=cache,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits, loss = logits_and_labelled_loss(  # (B, T, V); backward through the output layer only at labels
            self.output_logits, out.last_hidden_state, labels, self.config.vocab_size, kwargs.get("num_items_in_batch"),
            skip_logits=kwargs.get("skip_logits"), training=self.training,  # no logits: a chunked loss (losses.py)
        )
        result = Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            **cache_field(output_cache(out)),
            decoder_hidden_states=out.decoder_hidden_states,
            decoder_attentions=out.decoder_attentions,
            cross_attentions=out.cross_attentions,
            encoder_last_hidden_state=out.encoder_last_hidden_state,
            encoder_hidden_states=out.encoder_hidden_states,
            encoder_attentions=out.encoder_attentions,
        )
        return self._output(result, return_dict)


#: Our classes by the Auto class that loads each: the package registers them (`scratchformers.__init__`), and
#: `add_to_name_tables` puts them in transformers' own name tables, also in a remote-code process.
AUTO_CLASSES = {
    "AutoModel": ScratchTransformerModel,
    "AutoModelForSeq2SeqLM": ScratchTransformerForConditionalGeneration,
}
add_to_name_tables(ScratchTransformerConfig.model_type, AUTO_CLASSES)
