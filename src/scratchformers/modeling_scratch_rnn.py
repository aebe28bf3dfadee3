"""Recurrent seq2seq: an LSTM/GRU encoder reads the source, an LSTM/GRU decoder writes the target (Sutskever 2014),
optionally looking back at every source state through attention (Bahdanau 2015, Luong 2015).

What is new in this family lives in `recurrent.py` (scores, context, encoder/decoder); this file wraps it in the
Hugging Face conventions: config class, `ModelOutput`s, and a `Cache` that carries the decoder's recurrent state
through `generate()`, so each new token costs one decoder step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import GenerationMixin
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.modeling_outputs import Seq2SeqLMOutput, Seq2SeqModelOutput
from transformers.utils import ModelOutput

from .checks import check_attention_mask, check_input_ids, check_inputs_embeds
from .compat import cache_field, output_cache, takes_old_cache_name
from .configuration_scratch_rnn import ScratchRNNConfig
from .hf_tables import ALIGNED_TOKEN_LOSS, add_to_name_tables
from .losses import logits_and_labelled_loss
from .pretrained import ScratchPreTrainedBase
from .recurrent import RNNDecoder, RNNEncoder
from .seq2seq import TeacherForcingMixin


@dataclass
class RNNEncoderOutput(ModelOutput):
    """Encoder result: every hⱼ (B, S, C) and the final state, batch-first (B, L, C) so `generate()` can expand it.

    `final_cell` is the LSTM's memory cell (None for a GRU).
    """

    last_hidden_state: torch.Tensor | None = None
    final_hidden: torch.Tensor | None = None
    final_cell: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class RecurrentState(Cache):
    """The decoder's recurrent state sᵢ (and the LSTM cell) as `generate()`'s cache: all a step needs of the past.

    hidden / cell are batch-first (B, L, C); `seen_tokens` counts decoder tokens consumed. Beam search reorders it in
    place; it cannot be cropped (a recurrent state cannot forget tokens) nor compiled.
    """

    def __init__(self, hidden: torch.Tensor, cell: torch.Tensor | None = None, seen_tokens: int = 0):
        super().__init__(layers=[])
        self.hidden = hidden
        self.cell = cell
        self.seen_tokens = seen_tokens

    def __repr__(self) -> str:
        return f"RecurrentState(hidden={tuple(self.hidden.shape)}, cell={self.cell is not None}, seen={self.seen_tokens})"

    def update_state(self, hidden: torch.Tensor, cell: torch.Tensor | None, num_new_tokens: int) -> None:
        """Replace the state by the one after `num_new_tokens` more decoder steps."""
        self.hidden, self.cell = hidden, cell
        self.seen_tokens += num_new_tokens

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Number of decoder tokens already folded into the state."""
        return self.seen_tokens

    def get_mask_sizes(self, *args, **kwargs):
        raise NotImplementedError("RecurrentState holds no keys/values; there is no attention mask over the past.")

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Beam search: keep, in place, the states of the beams in `beam_idx` (B·beams,)."""
        self.batch_select_indices(beam_idx)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep the rows `indices` of the state (in place)."""
        self.hidden = self.hidden.index_select(0, indices.to(self.hidden.device))
        if self.cell is not None:
            self.cell = self.cell.index_select(0, indices.to(self.cell.device))

    def batch_repeat_interleave(self, repeats: int) -> None:
        """Repeat each row `repeats` times (in place), as generate() does for its inputs."""
        self.hidden = self.hidden.repeat_interleave(repeats, dim=0)
        if self.cell is not None:
            self.cell = self.cell.repeat_interleave(repeats, dim=0)

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("A recurrent state cannot be cropped: it does not keep per-token entries.")

    def reset(self) -> None:
        self.hidden = torch.zeros_like(self.hidden)
        self.cell = torch.zeros_like(self.cell) if self.cell is not None else None
        self.seen_tokens = 0

    @property
    def is_compileable(self) -> bool:
        return False

    @property
    def is_croppable(self) -> bool:
        return False

    @property
    def is_linear(self) -> list[bool]:
        """[False]: the state counts the tokens it consumed, so a `generate()` continued from it with the whole
        sequence (and its mask) feeds only the unseen tokens, as for a key/value cache. transformers skips that slicing
        for caches whose layers are all "linear" (Mamba-like), and a cache without layers counts as all linear."""
        return [False]

    @property
    def batch_size(self) -> int:
        return self.hidden.shape[0]


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

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> RNNEncoderOutput | tuple:
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


class ScratchRNNModel(ScratchRNNPreTrainedModel):
    """The recurrent encoder-decoder body: returns the decoder outputs oᵢ (B, T, C) and the recurrent state."""

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

    def get_encoder(self, modality: str | None = None) -> ScratchRNNEncoder:
        return self.encoder

    @takes_old_cache_name
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: RNNEncoderOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> Seq2SeqModelOutput | tuple:
        """Encode (unless `encoder_outputs` are given), then run the decoder over `decoder_input_ids` from the state
        in `cache` (or, at the start, from the encoder's final state). `decoder_attention_mask` may mark right padding,
        which the causal recurrence never reads before a real token; padding before real tokens is a ValueError."""
        self._check_kwargs(kwargs)
        use_cache = self.config.use_cache and not self.training if use_cache is None else use_cache
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                output_hidden_states=output_hidden_states, return_dict=True,
            )
        elif not isinstance(encoder_outputs, RNNEncoderOutput):
            encoder_outputs = RNNEncoderOutput(*encoder_outputs)
        keys = encoder_outputs.last_hidden_state  # hⱼ: (B, S, C)
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
        if state is not None:
            hidden, cell = state.hidden, state.cell  # sᵢ₋₁ carried from the previous step
        else:
            hidden, cell = encoder_outputs.final_hidden, encoder_outputs.final_cell  # s₀ = the encoder's final state
        if hidden.shape[0] != decoder_inputs_embeds.shape[0]:
            raise ValueError(
                f"The decoder batch ({decoder_inputs_embeds.shape[0]}, from `decoder_input_ids` or the `labels` "
                f"shifted into them) does not match the encoder batch / state ({hidden.shape[0]})."
            )
        if decoder_attention_mask is not None:  # not needed for right padding, but a wrong one is the caller's bug
            B, T = decoder_inputs_embeds.shape[:2]
            past = state.get_seq_length() if state is not None else 0
            check_attention_mask(decoder_attention_mask, B, past + T, name="decoder_attention_mask")
            real = decoder_attention_mask.bool()
            if bool((real[:, 1:] & ~real[:, :-1]).any()):  # a real token after padding: the recurrence would read it
                raise ValueError(
                    "`decoder_attention_mask` has padding before real tokens; the recurrent decoder reads its inputs "
                    "in order and cannot skip them. Pad decoder inputs on the right (zeros after the real tokens)."
                )
        outputs, hidden, cell, alignment, *decoder_hidden_states = self.decoder(
            decoder_inputs_embeds, hidden, cell, keys, attention_mask, bool(output_hidden_states)
        )

        new_cache = None
        if use_cache:
            new_cache = state if state is not None else RecurrentState(hidden, cell)
            new_cache.update_state(hidden, cell, decoder_inputs_embeds.shape[1])
        out = Seq2SeqModelOutput(
            last_hidden_state=outputs,
            **cache_field(new_cache),
            decoder_hidden_states=decoder_hidden_states[0] if decoder_hidden_states else None,
            cross_attentions=(alignment[:, None],) if output_attentions and alignment is not None else None,
            encoder_last_hidden_state=keys,
            encoder_hidden_states=encoder_outputs.hidden_states,
        )
        return self._output(out, return_dict)


class ScratchRNNForConditionalGeneration(ScratchRNNPreTrainedModel, TeacherForcingMixin, GenerationMixin):
    """Recurrent seq2seq with an output layer tied to the embedding: p(yᵢ | y<i, x) = softmax(E oᵢ). Translates.

    `labels` (B, T) are shifted right into decoder inputs; loss = token cross-entropy. `output_attentions=True` returns
    the alignment αᵢⱼ (target × source) as `cross_attentions[0][:, 0]` (one layer, one "head").
    """

    _tied_weights_keys = {"lm_head.weight": "model.encoder.embed_tokens.weight"}

    def __init__(self, config: ScratchRNNConfig):
        super().__init__(config)
        self.loss_type = ALIGNED_TOKEN_LOSS  # labels line up with the logits: no shift when counting targets
        self.model = ScratchRNNModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @takes_old_cache_name
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: RNNEncoderOutput | tuple | None = None,
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
        if labels is not None and decoder_input_ids is None and decoder_inputs_embeds is None:
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
            self.lm_head, out.last_hidden_state, labels, self.config.vocab_size, kwargs.get("num_items_in_batch"),
            skip_logits=kwargs.get("skip_logits"), training=self.training,  # no logits: a chunked loss (losses.py)
        )
        result = Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            **cache_field(output_cache(out)),
            decoder_hidden_states=out.decoder_hidden_states,
            cross_attentions=out.cross_attentions,
            encoder_last_hidden_state=out.encoder_last_hidden_state,
            encoder_hidden_states=out.encoder_hidden_states,
        )
        return self._output(result, return_dict)


#: Our classes by the Auto class that loads each: the package registers them (`scratchformers.__init__`), and
#: `add_to_name_tables` puts them in transformers' own name tables, also in a remote-code process.
AUTO_CLASSES = {
    "AutoModel": ScratchRNNModel,
    "AutoModelForSeq2SeqLM": ScratchRNNForConditionalGeneration,
}
add_to_name_tables(ScratchRNNConfig.model_type, AUTO_CLASSES)
