"""GPT: auto-regressive language modelling — predict the next token from the ones before it (Radford et al. 2018).

A GPT is one stack of causal (masked) self-attention layers over token + position embeddings, with an output layer
tied to the token embedding. Everything below the heads lives in the shared blocks (`layers.TransformerStack`).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import GenerationMixin
from transformers.cache_utils import Cache
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
)

from .checks import check_labels
from .compat import takes_old_cache_name
from .configuration_scratch_gpt import ScratchGPTConfig
from .layers import TransformerStack
from .losses import logits_and_labelled_loss, next_token_labels, sequence_classification_loss
from .pretrained import add_to_name_tables, carry_output
from .pretrained_stack import ScratchPreTrainedModel


class ScratchGPTPreTrainedModel(ScratchPreTrainedModel):
    """Base class of the GPT family: config class, weight init, checkpoint conventions."""

    config_class = ScratchGPTConfig


class ScratchGPTModel(ScratchGPTPreTrainedModel):
    """The GPT body: embeddings, N causal self-attention layers, final LayerNorm (pre-LN). Returns hidden states."""

    token_stack = "decoder"

    def __init__(self, config: ScratchGPTConfig):
        super().__init__(config)
        # keywords only: an inference server may wrap the decoder class (`get_decoder()`'s) in a compile decorator
        # whose __init__ takes keyword arguments only (vLLM's `support_torch_compile`)
        self.decoder = TransformerStack(config=config, num_layers=config.num_hidden_layers, causal=True)
        self.post_init()

    @takes_old_cache_name
    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.LongTensor | None = None, cache: Cache | None = None,
                inputs_embeds: torch.Tensor | None = None, use_cache: bool | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs) -> BaseModelOutputWithPast | tuple:
        """`kwargs`: transformers' pass-through arguments. With continuous batching's paged `cache` (its batcher's
        `read_index`, `write_index`, `cu_seq_lens_k`, … and ready-made masks) or an inference server's attention
        (vLLM's `attention_instances`) they go on down to every attention call (`_attention_backend_kwargs`)."""
        out = self._run_stack(self.decoder, dict(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, cache=cache,
            inputs_embeds=inputs_embeds, use_cache=use_cache, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=return_dict, kwargs=kwargs))
        return self._output(carry_output(BaseModelOutputWithPast, out), return_dict)


class ScratchGPTForCausalLM(ScratchGPTPreTrainedModel, GenerationMixin):
    """GPT with a language-modelling head: logits = h Eᵀ (tied), loss = next-token cross-entropy. Generates text."""

    _tied_weights_keys = {"lm_head.weight": "model.decoder.embeddings.embed_tokens.weight"}
    # transformers' continuous batching (`generate_batch`, `transformers serve --continuous-batching`): the paged KV
    # cache is read and written through the `paged|eager` / `sdpa` / flash attention functions (attention.py)
    _supports_continuous_batching = True

    def __init__(self, config: ScratchGPTConfig):
        super().__init__(config)
        self.model = ScratchGPTModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @takes_old_cache_name
    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.LongTensor | None = None, cache: Cache | None = None,
                inputs_embeds: torch.Tensor | None = None, labels: torch.LongTensor | None = None,
                use_cache: bool | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                logits_to_keep: int | torch.Tensor = 0, **kwargs) -> CausalLMOutputWithPast | tuple:
        """`labels` (B, T) are the tokens themselves: position t is scored against labels[t+1]. `shift_labels=` (B, T)
        are targets already shifted (position t against shift_labels[t], −100 ignored), as the Trainer passes them
        under context parallelism (each rank holds a slice of the sequence, so the shift cannot happen here) and
        padding-free collators may; when given they are used instead of `labels`, as in transformers' causal-LM
        loss. Like GPT-2, it is taken from `**kwargs`, not named: the Trainer reads every forward parameter whose
        name contains "label" as a label column and computes no evaluation loss for batches without all of them.

        `logits_to_keep`: an int n keeps the last n positions (0: all; generate() asks for 1), a 1-D tensor the
        positions it lists (continuous batching's `logits_indices`: each request's last token in the packed row);
        the LM head runs only there. Other `kwargs` go on to the body (`ScratchGPTModel.forward`)."""
        shift_labels = kwargs.pop("shift_labels", None)
        out = self._run_body(dict(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, cache=cache,
            inputs_embeds=inputs_embeds, labels=labels, use_cache=use_cache, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=return_dict, logits_to_keep=logits_to_keep,
            kwargs=kwargs), **kwargs)
        hidden = keep_positions(out.last_hidden_state, logits_to_keep)  # (B, T', C)
        targets = None
        if shift_labels is not None:  # already position t's target
            check_labels(shift_labels, tuple(hidden.shape[:2]), self.config.vocab_size, name="shift_labels")
            targets = shift_labels
        elif labels is not None:  # position t is scored against token t+1
            check_labels(labels, tuple(hidden.shape[:2]), self.config.vocab_size)
            targets = next_token_labels(labels)
        logits, loss = logits_and_labelled_loss(  # (B, T, V); backward through the LM head only at scored positions
            self.lm_head, hidden, targets, self.config.vocab_size, kwargs.get("num_items_in_batch"),
            skip_logits=kwargs.get("skip_logits"), training=self.training,  # no logits: a chunked loss (losses.py)
        )
        return self._output(carry_output(CausalLMOutputWithPast, out, loss=loss, logits=logits), return_dict)


def keep_positions(hidden: torch.Tensor, logits_to_keep: int | torch.Tensor) -> torch.Tensor:
    """The positions of (B, T, C) hidden states the LM head needs: the last n for an int n (0: all), the listed ones
    for a 1-D index tensor (B, n, C) — transformers' `logits_to_keep` (`modeling_utils.slice_logits_to_keep`)."""
    if isinstance(logits_to_keep, torch.Tensor):
        if logits_to_keep.dim() != 1:
            raise ValueError(f"`logits_to_keep` as a tensor must list positions (1-D), got shape "
                             f"{tuple(logits_to_keep.shape)}.")
        return hidden.index_select(1, logits_to_keep.to(device=hidden.device, dtype=torch.long))
    return hidden[:, -logits_to_keep:] if logits_to_keep else hidden


def last_token_index(input_ids, attention_mask, pad_token_id) -> torch.Tensor:
    """Index of each row's last real token: from the attention mask, else the last non-pad id, else T−1. (B,)."""
    if attention_mask is not None:
        T = attention_mask.shape[-1]
        return (attention_mask.long() * torch.arange(T, device=attention_mask.device)).argmax(-1)
    if input_ids is not None and pad_token_id is not None:
        T = input_ids.shape[-1]
        return ((input_ids != pad_token_id).long() * torch.arange(T, device=input_ids.device)).argmax(-1)
    reference = input_ids if input_ids is not None else attention_mask
    return torch.full((reference.shape[0],), reference.shape[1] - 1, device=reference.device)


class ScratchGPTForSequenceClassification(ScratchGPTPreTrainedModel):
    """GPT with a classification head read at the last real token (the only one that has seen the whole text)."""

    accepts_loss_kwargs = False  # the loss is a per-example mean: the Trainer divides by accumulation steps

    def __init__(self, config: ScratchGPTConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = ScratchGPTModel(config)
        self.score = nn.Linear(config.hidden_size, config.num_labels, bias=False)
        self.post_init()

    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.LongTensor | None = None, inputs_embeds: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                **kwargs) -> SequenceClassifierOutputWithPast | tuple:
        out = self._run_body(dict(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, inputs_embeds=inputs_embeds,
            labels=labels, output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            return_dict=return_dict, kwargs=kwargs), use_cache=False)
        logits = self.score(out.last_hidden_state)  # (B, T, num_labels)
        last = last_token_index(input_ids if input_ids is not None else inputs_embeds[..., 0], attention_mask,
                                self.config.pad_token_id if input_ids is not None else None)
        pooled = logits[torch.arange(logits.shape[0], device=logits.device), last]  # (B, num_labels)
        loss = sequence_classification_loss(pooled, labels, self.config) if labels is not None else None
        return self._output(carry_output(SequenceClassifierOutputWithPast, out, loss=loss, logits=pooled), return_dict)


#: Our classes by the Auto class that loads each: the package registers them (`scratchformers.__init__`), and
#: `add_to_name_tables` puts them in transformers' own name tables, also in a remote-code process.
AUTO_CLASSES = {
    "AutoModel": ScratchGPTModel,
    "AutoModelForCausalLM": ScratchGPTForCausalLM,
    "AutoModelForSequenceClassification": ScratchGPTForSequenceClassification,
}
add_to_name_tables(ScratchGPTConfig.model_type, AUTO_CLASSES)
