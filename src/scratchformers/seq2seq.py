"""What every encoder-decoder family shares (the Transformer and the RNN seq2seq models): the body's forward
(encode, then the family's `decode`), the LM head's forward, and teacher forcing.

Teacher forcing: the decoder reads the target shifted one step to the right, starting from
`decoder_start_token_id`, and is trained to predict the unshifted target — so position t sees y₀…y_{t−1} and predicts yₜ.
Flat sibling module (torch only), so checkpoints that import it load with `trust_remote_code=True`.
"""

from __future__ import annotations

import torch
from transformers import GenerationMixin
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput, Seq2SeqModelOutput

from .checks import check_labels
from .compat import takes_old_cache_name
from .losses import IGNORE_INDEX, logits_and_labelled_loss
from .pretrained import ALIGNED_TOKEN_LOSS, ScratchPreTrainedBase, carry_output


def shift_tokens_right(
    labels: torch.Tensor, pad_token_id: int | None, decoder_start_token_id: int | None, vocab_size: int | None = None
) -> torch.Tensor:
    """Teacher-forcing decoder inputs from labels: [start, y₀, …, y_{T−2}], with −100 (ignored labels) → pad.

    `labels` (B, T) → `decoder_input_ids` (B, T), the same shift HF's seq2seq models (BART, T5, Marian) apply.
    With `vocab_size` the labels are checked first (ids in [0, vocab_size) or −100), so a bad label is reported as
    `labels`, not as the `decoder_input_ids` it would be shifted into.
    """
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"`labels` must be a torch.Tensor, got {type(labels).__name__}.")
    if labels.dim() != 2:
        raise ValueError(f"`labels` must be a (batch, target_length) tensor, got {tuple(labels.shape)}.")
    if vocab_size is not None:
        check_labels(labels, tuple(labels.shape), vocab_size)
    if decoder_start_token_id is None:
        raise ValueError(
            "`decoder_start_token_id` is None: set it in the config (e.g. the tokenizer's bos or pad id) so labels can "
            "be shifted into decoder inputs."
        )
    if pad_token_id is None:
        raise ValueError("`pad_token_id` is None: set it in the config so ignored labels (-100) can be replaced.")
    shifted = labels.new_empty(labels.shape)
    shifted[:, 1:] = labels[:, :-1]
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == IGNORE_INDEX, pad_token_id)


class TeacherForcingMixin:
    """For seq2seq heads: `labels` → decoder inputs, the way `DataCollatorForSeq2Seq(model=...)` and the loss expect."""

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Decoder inputs for `labels`: shifted right behind `decoder_start_token_id`, −100 replaced by padding."""
        return shift_tokens_right(
            labels, self.config.pad_token_id, self.config.decoder_start_token_id, self.config.vocab_size
        )


class ScratchSeq2SeqModel(ScratchPreTrainedBase):
    """An encoder-decoder body: z = encoder(source) (unless `encoder_outputs` are given), then the family's `decode`
    of the target prefix over z. A family sets `encoder_output_class` and writes `decode`."""

    encoder_output_class = BaseModelOutput

    def get_encoder(self, modality: str | None = None):
        return self.encoder

    def decode(self, encoded, attention_mask, decoder_input_ids, decoder_attention_mask, decoder_inputs_embeds,
               cache: Cache | None, use_cache: bool, output_attentions: bool, output_hidden_states: bool) -> dict:
        """The decoder's fields of a `Seq2SeqModelOutput` (last_hidden_state, the cache, decoder_hidden_states, …)."""
        raise NotImplementedError

    @takes_old_cache_name
    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                decoder_input_ids: torch.LongTensor | None = None, decoder_attention_mask: torch.Tensor | None = None,
                encoder_outputs: BaseModelOutput | tuple | None = None, cache: Cache | None = None,
                inputs_embeds: torch.Tensor | None = None, decoder_inputs_embeds: torch.Tensor | None = None,
                use_cache: bool | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                **kwargs) -> Seq2SeqModelOutput | tuple:
        """Source (B, S) → z (B, S, C); target prefix (B, T) → decoder states (B, T, C), with the cache `generate()`
        carries. A tuple `encoder_outputs` (from `return_dict=False`) is read as the encoder's output class."""
        self._check_kwargs(kwargs)
        use_cache = self._use_cache(use_cache)
        output_attentions, output_hidden_states = self._output_flags(output_attentions, output_hidden_states)
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
            )
        elif not isinstance(encoder_outputs, self.encoder_output_class):
            encoder_outputs = self.encoder_output_class(*encoder_outputs)
        decoded = self.decode(encoder_outputs, attention_mask, decoder_input_ids, decoder_attention_mask,
                              decoder_inputs_embeds, cache, use_cache, output_attentions, output_hidden_states)
        out = Seq2SeqModelOutput(
            **decoded,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
        )
        return self._output(out, return_dict)


class ScratchSeq2SeqLM(ScratchPreTrainedBase, TeacherForcingMixin, GenerationMixin):
    """An encoder-decoder with its output layer: p(yₜ | y<t, x) = softmax(`output_logits`(decoder state t)).

    `labels` (B, T) give the loss (−100 ignored) and, shifted right behind `decoder_start_token_id`, the decoder
    inputs; with labels no cache is returned (a training forward, as BART's: `use_cache` is turned off).
    """

    def __init__(self, config):
        super().__init__(config)
        self.loss_type = ALIGNED_TOKEN_LOSS  # labels line up with the logits: no shift when counting targets

    def output_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Decoder states (…, C) → vocabulary logits (…, V)."""
        return self.lm_head(hidden_states)

    def loss_head(self):
        """`output_logits` as the loss calls it: `lm_head` itself where nothing is added to it (no BART output bias),
        so that a plain Linear takes the chunked loss's written-out backward (`losses._LinearLossWithGradients`)."""
        return self.lm_head if getattr(self, "final_logits_bias", None) is None else self.output_logits

    @takes_old_cache_name
    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                decoder_input_ids: torch.LongTensor | None = None, decoder_attention_mask: torch.Tensor | None = None,
                encoder_outputs: BaseModelOutput | tuple | None = None, cache: Cache | None = None,
                inputs_embeds: torch.Tensor | None = None, decoder_inputs_embeds: torch.Tensor | None = None,
                labels: torch.LongTensor | None = None, use_cache: bool | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs) -> Seq2SeqLMOutput | tuple:
        if labels is not None:
            use_cache = False  # BART: "The `use_cache` argument is changed to `False` since `labels` is provided."
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        out = self._run_body(dict(
            input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask, encoder_outputs=encoder_outputs, cache=cache,
            inputs_embeds=inputs_embeds, decoder_inputs_embeds=decoder_inputs_embeds, labels=labels,
            use_cache=use_cache, output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            return_dict=return_dict, kwargs=kwargs))
        logits, loss = logits_and_labelled_loss(  # (B, T, V); backward through the output layer only at labels
            self.loss_head(), out.last_hidden_state, labels, self.config.vocab_size, kwargs.get("num_items_in_batch"),
            skip_logits=kwargs.get("skip_logits"), training=self.training,  # no logits: a chunked loss (losses.py)
        )
        return self._output(carry_output(Seq2SeqLMOutput, out, loss=loss, logits=logits), return_dict)


def noam_learning_rate(d_model: int, warmup_steps: int, factor: float = 1.0) -> float:
    """Peak learning rate of the paper's schedule: factor · d_model^−0.5 · warmup^−0.5 (§5.3, eq. 3).

    lrate = d_model^−0.5 · min(step^−0.5, step · warmup^−1.5) is exactly transformers' `inverse_sqrt` scheduler
    (linear warm-up to the peak, then peak · √(warmup/step)) with `learning_rate` set to this value and
    `warmup_steps` = warmup; the paper used warmup = 4000 with Adam(β₁=0.9, β₂=0.98, ε=1e−9).
    """
    if not isinstance(d_model, int) or d_model <= 0:
        raise ValueError(f"`d_model` must be a positive integer, got {d_model!r}.")
    if not isinstance(warmup_steps, int) or warmup_steps <= 0:
        raise ValueError(f"`warmup_steps` must be a positive integer, got {warmup_steps!r}.")
    return factor * d_model**-0.5 * warmup_steps**-0.5


def noam_schedule_factor(step: int, d_model: int, warmup_steps: int) -> float:
    """The paper's lrate at `step` (≥ 1): d_model^−0.5 · min(step^−0.5, step · warmup^−1.5) (§5.3, eq. 3)."""
    if step < 1:
        raise ValueError(f"`step` counts from 1, got {step!r}.")
    return d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)
