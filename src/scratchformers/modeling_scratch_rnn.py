"""Recurrent seq2seq: an LSTM/GRU encoder reads the source, an LSTM/GRU decoder writes the target (Sutskever 2014),
optionally looking back at every source state through attention (Bahdanau 2015, Luong 2015).

What is new in this family lives in `recurrent.py` (scores, context, encoder/decoder); this file wraps it in the
Hugging Face conventions: config class, `ModelOutput`s, and a `Cache` that carries the decoder's recurrent state
through `generate()`, so each new token costs one decoder step.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import initialization as init

from .checks import check_attention_mask, check_input_ids, check_inputs_embeds, check_right_padded
from .compat import cache_field
from .configuration_scratch_rnn import ScratchRNNConfig
from .pretrained import ScratchPreTrainedBase, add_to_name_tables
from .recurrent import RecurrentState, RNNDecoder, RNNEncoder, RNNEncoderOutput
from .seq2seq import ScratchSeq2SeqLM, ScratchSeq2SeqModel


class ScratchRNNPreTrainedModel(ScratchPreTrainedBase):
    """Base class of the recurrent family: config class, weight init, flags transformers reads.

    Init: recurrent and linear weights ~ U(−r, r), r = `initializer_range` ("We initialized all of the LSTM's
    parameters with the uniform distribution between -0.08 and 0.08", Sutskever 2014); embeddings ~ N(0, σ),
    σ = `embedding_init_std`.
    """

    config_class = ScratchRNNConfig
    supports_gradient_checkpointing = False
    _is_stateful = True  # read by transformers before 5.25; the refusal below is ours and holds on every release
    _no_split_modules = ["ScratchRNNEncoder", "RNNDecoder"]  # exact class names: accelerate matches them
    # continuous batching (generate_batch) pages per-token keys/values; a recurrent decoder has none to page
    _continuous_batching_unsupported_because = (
        "its decoder carries one recurrent state per sequence, not per-token keys and values that a paged cache could "
        "hold (and it reads an encoded source)"
    )

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        """No key/value cache: the first forward creates a `RecurrentState` and returns it."""
        return False

    def _validate_generation_mode(self, generation_mode, generation_config, generation_mode_kwargs) -> None:
        """`generate()`'s own check of the decoding mode, plus ours, before any forward pass: assisted and
        prompt-lookup decoding (`assistant_model=`, `prompt_lookup_num_tokens=`; transformers' ASSISTED_GENERATION)
        verify draft tokens and then roll the cache back to drop the rejected ones. A recurrent state sᵢ folds every
        token into one vector and cannot be rolled back, so they are refused with a ValueError.

        transformers refused them for `_is_stateful` models itself up to 5.24; 5.25 removed that flag and fails only
        after the prefill ("Assisted decoding requires a cache"), so the refusal lives here for every release."""
        if str(getattr(generation_mode, "value", generation_mode)) == "assisted_generation":
            raise ValueError(
                f"assisted generation is not supported with stateful models, such as {type(self).__name__}: its "
                "recurrent state cannot be rolled back to drop rejected draft tokens. Decode without `assistant_model` "
                "and `prompt_lookup_num_tokens` (greedy, sampling and beam search all work)."
            )
        super()._validate_generation_mode(generation_mode, generation_config, generation_mode_kwargs)

    def _init_weights(self, module: nn.Module) -> None:
        r = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.LSTM, nn.GRU)):
            for name, param in module.named_parameters(recurse=False):
                if name.startswith("bias"):
                    init.zeros_(param)
                else:
                    init.uniform_(param, -r, r)
        elif isinstance(module, nn.Embedding):
            self._init_embedding(module, self.config.embedding_init_std)


class ScratchRNNEncoder(RNNEncoder):
    """The encoder with its token embedding and the call signature `generate()` uses (`get_encoder()`)."""

    def __init__(self, config: ScratchRNNConfig):
        super().__init__(
            config.hidden_size, config.cell, config.hidden_size, config.num_hidden_layers, config.dropout,
            config.bidirectional_encoder,
        )
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)

    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                **kwargs) -> RNNEncoderOutput | tuple:
        """Source ids (B, S) → hⱼ (B, S, C) and the final state (B, L, C)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` or `inputs_embeds` to the encoder.")
        if input_ids is not None:
            check_input_ids(input_ids, self.config.vocab_size)
            inputs_embeds = self.embed_tokens(input_ids)  # (B, S, C)
        else:
            check_inputs_embeds(inputs_embeds, self.config.hidden_size)
        if attention_mask is not None:
            check_attention_mask(attention_mask, inputs_embeds.shape[0], inputs_embeds.shape[1])
        outputs, hidden, cell, *hidden_states = super().forward(inputs_embeds, attention_mask,
                                                                 bool(output_hidden_states))
        out = RNNEncoderOutput(  # hidden_states: (embeddings, one per layer), as HF's encoders return them
            last_hidden_state=outputs, final_hidden=hidden, final_cell=cell,
            hidden_states=hidden_states[0] if hidden_states else None,
        )
        return out if return_dict is None or return_dict else out.to_tuple()


class ScratchRNNModel(ScratchRNNPreTrainedModel, ScratchSeq2SeqModel):
    """The recurrent encoder-decoder body: returns the decoder outputs oᵢ (B, T, C) and the recurrent state."""

    encoder_output_class = RNNEncoderOutput

    def __init__(self, config: ScratchRNNConfig):
        super().__init__(config)
        self.encoder = ScratchRNNEncoder(config)
        self.decoder = RNNDecoder(
            config.hidden_size, config.cell, config.hidden_size, config.num_hidden_layers, config.dropout,
            config.attention, config.luong_score,
        )
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.encoder.embed_tokens = value

    def decode(self, encoded, attention_mask, decoder_input_ids, decoder_attention_mask, decoder_inputs_embeds,
               cache, use_cache, output_attentions, output_hidden_states) -> dict:
        """Run the decoder over the target prefix from the state in `cache` (or, at the start, from the encoder's
        final state s₀). `decoder_attention_mask` may mark right padding, which the causal recurrence never reads
        before a real token; padding before real tokens is a ValueError."""
        keys = encoded.last_hidden_state  # hⱼ: (B, S, C)
        if attention_mask is not None:
            check_attention_mask(attention_mask, keys.shape[0], keys.shape[1])
        if (decoder_input_ids is None) == (decoder_inputs_embeds is None):
            raise ValueError("Pass exactly one of `decoder_input_ids` or `decoder_inputs_embeds` (or `labels`).")
        if decoder_input_ids is not None:
            check_input_ids(decoder_input_ids, self.config.vocab_size, "decoder_input_ids")
            decoder_inputs_embeds = self.encoder.embed_tokens(decoder_input_ids)  # (B, T, C)
        else:
            check_inputs_embeds(decoder_inputs_embeds, self.config.hidden_size, name="decoder_inputs_embeds")
        state = cache if isinstance(cache, RecurrentState) and cache.get_seq_length() > 0 else None
        hidden, cell = (state.hidden, state.cell) if state is not None else (encoded.final_hidden, encoded.final_cell)
        B, T = decoder_inputs_embeds.shape[:2]
        if hidden.shape[0] != B:
            raise ValueError(
                f"The decoder batch ({B}, from `decoder_input_ids` or the `labels` shifted into them) does not match "
                f"the encoder batch / state ({hidden.shape[0]})."
            )
        if decoder_attention_mask is not None:  # not needed for right padding, but a wrong one is the caller's bug
            past = state.get_seq_length() if state is not None else 0
            check_attention_mask(decoder_attention_mask, B, past + T, name="decoder_attention_mask")
            check_right_padded(decoder_attention_mask)
        outputs, hidden, cell, alignment, *decoder_hidden_states = self.decoder(
            decoder_inputs_embeds, hidden, cell, keys, attention_mask, output_hidden_states
        )
        new_cache = None
        if use_cache:  # sᵢ carried to the next step
            new_cache = state if state is not None else RecurrentState(hidden, cell)
            new_cache.update_state(hidden, cell, T)
        return dict(last_hidden_state=outputs, **cache_field(new_cache),
                    decoder_hidden_states=decoder_hidden_states[0] if decoder_hidden_states else None,
                    cross_attentions=(alignment[:, None],) if output_attentions and alignment is not None else None)


class ScratchRNNForConditionalGeneration(ScratchRNNPreTrainedModel, ScratchSeq2SeqLM):
    """Recurrent seq2seq with an output layer tied to the embedding: p(yᵢ | y<i, x) = softmax(E oᵢ). Translates.

    The forward (labels shifted into decoder inputs, token cross-entropy) is the shared `seq2seq.ScratchSeq2SeqLM`'s.
    `output_attentions=True` returns the alignment αᵢⱼ (target × source) as `cross_attentions[0][:, 0]` (one layer,
    one "head").
    """

    _tied_weights_keys = {"lm_head.weight": "model.encoder.embed_tokens.weight"}

    def __init__(self, config: ScratchRNNConfig):
        super().__init__(config)
        self.model = ScratchRNNModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()


#: Our classes by the Auto class that loads each: the package registers them (`scratchformers.__init__`), and
#: `add_to_name_tables` puts them in transformers' own name tables, also in a remote-code process.
AUTO_CLASSES = {
    "AutoModel": ScratchRNNModel,
    "AutoModelForSeq2SeqLM": ScratchRNNForConditionalGeneration,
}
add_to_name_tables(ScratchRNNConfig.model_type, AUTO_CLASSES)
