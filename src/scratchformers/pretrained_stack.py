"""The base of the families built on the shared blocks (`layers.TransformerStack`: GPT, BERT, the Transformer):
N(0, 0.02) init with GPT-2's scaled residual projections, the attention backends' flags, and the `generate()` hooks
for a static cache's mask, the appending cache and the learned position table's room. (The recurrent family's base is
`pretrained.ScratchPreTrainedBase`, which this extends; it needs none of the blocks.)"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import initialization as init
from transformers.masking_utils import create_causal_mask

from .cache import use_growing_layers
from .compat import output_cache
from .layers import RMSNorm
from .pretrained import ScratchPreTrainedBase

#: What a body hands its stack from its own arguments (the rest: flags resolved in `_run_stack`).
STACK_ARGUMENTS = ("input_ids", "attention_mask", "position_ids", "token_type_ids", "inputs_embeds", "cache")


class ScratchPreTrainedModel(ScratchPreTrainedBase):
    """Base of the Transformer families: N(0, 0.02) init, residual projections scaled by 1/√(2·layers) (GPT-2),
    LayerNorm = identity; sdpa/flash kernels through the attention interface."""

    supports_gradient_checkpointing = True
    _no_split_modules = ["TransformerLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True  # dispatched through the attention interface with a 2-D padding mask (GPU only)
    _supports_attention_backend = True
    # A forward (and a cached decoding step with a static cache) traces to one graph: no data-dependent branch runs
    # under torch.compile (tests/models/test_compile_fullgraph.py). transformers' own compile and static-cache tests
    # read this.
    _can_compile_fullgraph = True

    #: A body's stack (`layers.TransformerStack` attribute) whose token embedding is the input embedding: "decoder"
    #: (GPT), "encoder" (BERT); None for a head, which reaches its body's (`base_model`), as transformers does.
    token_stack: str | None = None

    def get_input_embeddings(self) -> nn.Embedding:
        if self.token_stack is None:
            return super().get_input_embeddings()
        return getattr(self, self.token_stack).embeddings.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        if self.token_stack is None:
            return super().set_input_embeddings(value)
        getattr(self, self.token_stack).embeddings.embed_tokens = value

    def _run_stack(self, stack: nn.Module, arguments: dict):
        """A body's forward on a shared stack (`layers.TransformerStack`), from the body's own arguments (a dict of them, by name):
        its `**kwargs` checked, the output flags (and `use_cache`, for a body that takes it) from the config where not
        given, the stack run on the arguments it names. A body that takes a cache also hands down the pass-through
        kwargs of continuous batching's paged cache or an inference server's attention (`_attention_backend_kwargs`)."""
        kwargs, cache = arguments.get("kwargs", {}), arguments.get("cache")
        self._check_kwargs(kwargs, cache)
        given = {name: arguments[name] for name in STACK_ARGUMENTS if name in arguments}
        given["output_attentions"], given["output_hidden_states"] = self._output_flags(
            arguments.get("output_attentions"), arguments.get("output_hidden_states"))
        if "use_cache" in arguments:
            given["use_cache"] = self._use_cache(arguments["use_cache"])
        backend_kwargs = self._attention_backend_kwargs(kwargs, cache) if "cache" in arguments else {}
        return stack(**given, **backend_kwargs)

    def create_masks_for_generate(self, config, attention_mask=None, **kwargs):
        """`generate()` hook, called with a static cache: the ready-made 4-D causal mask transformers builds (its
        `create_causal_mask`, what our stack also accepts). With a sliding window our stack builds the mask itself
        (`masks.attention_inputs`, from the cache's `get_mask_sizes`), so the 2-D padding mask is returned as it
        is. (transformers' own `create_masks_for_generate` reads `config.layer_types`, which we leave None when
        every layer is of one kind.)"""
        if getattr(config, "sliding_window", None) is not None:
            return attention_mask
        for unused in ("token_type_ids", "mm_token_type_ids", "is_first_iteration"):  # for other models' overrides
            kwargs.pop(unused, None)
        return create_causal_mask(config=config, attention_mask=attention_mask, **kwargs)

    def _prepare_cache_for_generation(self, generation_config, model_kwargs: dict, *args, **kwargs):
        """`generate()` hook: the dynamic cache it makes for us appends in place (`GrowingLayer`) instead of
        re-copying the whole past with torch.cat at every step. A cache the user passes is used as it is.
        A decoder-only model first checks its position room here, where the prompt's attention mask is known."""
        prompt = getattr(self, "_generation_prompt", None)
        if prompt is not None:  # decoder-only: (input_ids length, prompt length) from `_prepare_generated_length`
            self._generation_prompt = None
            input_length, positions = prompt
            mask = model_kwargs.get("attention_mask")
            if isinstance(mask, torch.Tensor) and mask.dim() == 2:
                positions = int(mask.sum(-1).max())  # positions skip left padding: the longest real row counts
            self._check_position_room(generation_config, input_length, positions)
        users_cache = output_cache(model_kwargs)
        super()._prepare_cache_for_generation(generation_config, model_kwargs, *args, **kwargs)
        if users_cache is None and output_cache(model_kwargs) is not None:
            use_growing_layers(output_cache(model_kwargs))

    def _prepare_generated_length(self, generation_config, has_default_max_length, has_default_min_length,
                                  model_input_name, input_ids_length, inputs_tensor):
        """`generate()` hook (same signature throughout transformers 5.x): once transformers has settled
        `max_length`, an encoder-decoder checks its decoder's position room (a decoder-only model does so in
        `_prepare_cache_for_generation`, where the prompt's attention mask is known)."""
        generation_config = super()._prepare_generated_length(
            generation_config=generation_config, has_default_max_length=has_default_max_length,
            has_default_min_length=has_default_min_length, model_input_name=model_input_name,
            input_ids_length=input_ids_length, inputs_tensor=inputs_tensor,
        )
        if self.config.is_encoder_decoder:
            self._check_position_room(generation_config, input_ids_length, input_ids_length)
        else:  # decoder-only from inputs_embeds: the embeddings are the prompt
            embeds = model_input_name == "inputs_embeds"
            self._generation_prompt = (input_ids_length, inputs_tensor.shape[1] if embeds else input_ids_length)
        return generation_config

    def _check_position_room(self, generation_config, input_length: int, prompt_positions: int) -> None:
        """Refuse, before any decoding, a request that would run past a learned position table (ValueError naming
        `max_new_tokens`/`max_length`, the prompt and `max_position_embeddings`).

        Generating N tokens after a prompt whose longest row holds P real tokens feeds positions 0 … P + N − 2 (the
        last token is not fed back): P + N − 1 must fit in `max_position_embeddings`. N = max_length − input_length,
        where input_length is the length of generate()'s input_ids (with left padding; 0 for an embeddings prompt).
        Sinusoidal and rotary positions are computed for any position: no limit."""
        if self.config.position_embedding_type != "learned" or generation_config.max_length is None:
            return
        limit = self.config.max_position_embeddings
        new_tokens = generation_config.max_length - input_length
        what = "decoder prompt" if self.config.is_encoder_decoder else "prompt"
        if prompt_positions > limit:
            raise ValueError(
                f"The {what} has {prompt_positions} positions, more than this model's learned position table "
                f"(`max_position_embeddings`={limit}); truncate it to at most {limit} tokens."
            )
        if new_tokens > 0 and prompt_positions + new_tokens - 1 > limit:
            asked = (f"`max_new_tokens`={generation_config.max_new_tokens}"
                     if generation_config.max_new_tokens is not None else f"`max_length`={generation_config.max_length}")
            room = limit - prompt_positions + 1
            raise ValueError(
                f"{asked} asks for {new_tokens} new tokens after a {what} of {prompt_positions} tokens: decoding would "
                f"feed {prompt_positions + new_tokens - 1} positions, but this model's learned position table has "
                f"`max_position_embeddings`={limit}. Ask for at most {room} new tokens "
                f"(`max_new_tokens`={room}, i.e. `max_length`={input_length + room})."
            )

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            if getattr(module, "is_residual_projection", False):
                # "scale the weights of residual layers at initialization by a factor of 1/√N" (GPT-2): 2 per layer
                std = std / math.sqrt(2 * self.config.num_hidden_layers)
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            self._init_embedding(module, std)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, RMSNorm):  # gain g = 1: starts as pure x / RMS(x)
            init.ones_(module.weight)
