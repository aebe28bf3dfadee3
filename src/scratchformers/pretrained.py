"""What every family's `XPreTrainedModel` shares: outputs, checkpoints, prompt checks, weight initialisation."""

from __future__ import annotations

import inspect
import json
import math
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.generation.utils import GENERATION_MODES_MAPPING, GenerationMixin
from transformers.masking_utils import create_causal_mask
from transformers.utils.generic import TransformersKwargs

from .attention import is_external_attention
from .cache import use_growing_layers
from .checks import check_input_ids
from .compat import (
    PAGED_ATTENTION_KWARGS,
    PagedAttentionCache,
    is_paged_cache,
    output_cache,
    paged_sliding_window_is_exact,
)
from .layers import RMSNorm


def _generation_mode_arguments() -> frozenset[str]:
    """Names `generate()` hands to its decoding methods that are not model inputs, derived from transformers itself.

    `generate()` takes out a few arguments that steer decoding rather than the model — `tokenizer` (stop strings,
    token healing), `assistant_model`/`assistant_tokenizer` (assisted decoding), `streamer`, `synced_gpus` — and calls
    the chosen mode's method (`_sample`, `_beam_search`, `_assisted_decoding`) with them as keywords. A method that
    does not name one collects it in `**model_kwargs`, which go on to `forward()`: e.g. `tokenizer=` for stop strings
    reaches forward in greedy, sampling and beam search. So the set is every named parameter of those methods beyond
    the ones each gets anyway (prompt, processors, criteria, config): what one method names, another passes on.
    """
    always_given = {"self", "input_ids", "logits_processor", "stopping_criteria", "generation_config"}
    names: set[str] = set()
    for method in set(GENERATION_MODES_MAPPING.values()):
        function = getattr(GenerationMixin, method, None)  # deprecated modes name a Hub repo ("org/name") instead
        if function is None:
            continue
        names |= {
            name
            for name, parameter in inspect.signature(function).parameters.items()
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
        }
    return frozenset(names - always_given)


# The one list of keyword arguments a forward() accepts beyond its named ones: what transformers itself sends.
# - `TransformersKwargs`: its shared forward kwargs — the Trainer's loss kwarg `num_items_in_batch`, the attention
#   backends' kwargs (flash-attention `cu_seq_lens_*`/`max_length_*`, `is_causal`, …), `output_*` flags;
# - generate()'s generation-mode arguments (`tokenizer`, `assistant_tokenizer`, `assistant_model`, `streamer`, …),
#   which reach forward() through the decoding methods' `**model_kwargs` (see `_generation_mode_arguments`);
# - `cache_position`;
# - `skip_logits`: the LM heads' switch for a loss without logits (`losses.wants_chunked_loss`); the Trainer sends it
#   (True) for loss-only evaluation with `use_liger_kernel`.
# A forward takes what it needs from these and ignores the rest; any other name is a misspelling (TypeError).
# (`past_key_values`, generate()'s name for `cache` up to transformers 5.23, is renamed to `cache` before the body of
# each forward that takes a cache: `compat.takes_old_cache_name`; a forward without a cache refuses it.)
PASS_THROUGH_KWARGS = frozenset(
    TransformersKwargs.__optional_keys__
    | TransformersKwargs.__required_keys__
    | _generation_mode_arguments()
    | {"cache_position", "skip_logits"}
)

# Of those, the ones the model itself uses up (the loss, generate()'s decoding arguments, the cache): they never go on
# down to an attention function.
MODEL_LEVEL_KWARGS = _generation_mode_arguments() | {"num_items_in_batch", "shift_labels", "cache_position",
                                                     "skip_logits"}


#: Weights whose checkpoint name changed: {old name pattern: new name} (regular expressions, as transformers'
#: `from_pretrained(key_mapping=...)` takes them). The token embedding of the Transformer families,
#: `…embeddings.tokens`, is `…embeddings.embed_tokens`: the name HF's decoders give it and the one peft recognises
#: the embedding by (its `EMBEDDING_LAYER_NAMES`: `modules_to_save=["embed_tokens"]` with `ensure_weight_tying`).
RENAMED_WEIGHTS = {r"\.embeddings\.tokens\.": ".embeddings.embed_tokens."}


def current_weight_name(name: str) -> str:
    """A checkpoint's tensor name under today's names (`RENAMED_WEIGHTS`), e.g. "model.decoder.embeddings.tokens.weight"
    → "model.decoder.embeddings.embed_tokens.weight"."""
    for old, new in RENAMED_WEIGHTS.items():
        name = re.sub(old, new, name)
    return name


def untied_targets(model: PreTrainedModel) -> set[str]:
    """The targets of `model.all_tied_weights_keys` ({target: source} parameter names) that are no longer the same
    tensor as their source: e.g. the output layer after peft's `merge_and_unload` replaced the input embedding with
    a trained copy. A name the model does not have (any more) counts as still tied."""
    tied = getattr(model, "all_tied_weights_keys", None) or {}
    params = dict(model.named_parameters(remove_duplicate=False))
    return {target for target, source in tied.items()
            if target in params and source in params and params[target] is not params[source]}


class ScratchPreTrainedBase(PreTrainedModel):
    """Base of every family (recurrent too): HF-style outputs, checkpoints that name the family's Auto classes."""

    base_model_prefix = "model"
    # peft's `PeftModel.from_pretrained` reads this as its `key_mapping`: adapters saved before a rename (e.g. the
    # trainable tokens of `train sft --lora_r` on `…embeddings.tokens`) load. transformers 5 no longer reads it.
    _checkpoint_conversion_mapping = RENAMED_WEIGHTS

    def __init_subclass__(cls, **kwargs):
        """Freeze each `forward`'s signature once: transformers' generate() calls `inspect.signature(model.forward)`
        at every decoding step for models registered as custom code (ours), ≈ 60 µs a step without this."""
        super().__init_subclass__(**kwargs)
        forward = cls.__dict__.get("forward")
        if forward is not None and "__signature__" not in vars(forward):
            forward.__signature__ = inspect.signature(forward)

    def _output(self, output, return_dict: bool | None):
        """The `ModelOutput`, or its tuple when `return_dict=False` (or `config.return_dict` is False), as HF does."""
        return output if (return_dict if return_dict is not None else self.config.return_dict) else output.to_tuple()

    def _check_kwargs(self, kwargs: dict, cache=None) -> None:
        """A misspelt argument (`attention_masks=`) must not vanish into `**kwargs`: raise TypeError naming it.

        Also allowed: with continuous batching's paged `cache`, the arguments its batcher passes (`read_index`,
        `write_index`, `block_table`, `logits_indices`, …: `compat.PAGED_ATTENTION_KWARGS`); with an inference
        server's own attention (`attention.is_external_attention`: vLLM, SGLang), any — they are that backend's."""
        if is_external_attention(self.config._attn_implementation):
            return
        allowed = PASS_THROUGH_KWARGS | (PAGED_ATTENTION_KWARGS if is_paged_cache(cache) else frozenset())
        unknown = sorted(set(kwargs) - allowed)
        if unknown:
            named = [name for name in inspect.signature(self.forward).parameters if name != "kwargs"]
            raise TypeError(
                f"{type(self).__name__}.forward() got unexpected keyword argument(s) {unknown}; its arguments are "
                f"{named} (plus transformers' {sorted(allowed)})."
            )

    def _attention_backend_kwargs(self, kwargs: dict, cache=None) -> dict:
        """The keyword arguments that go on down, unchanged, to every self-attention function call: all but the
        model's own (`MODEL_LEVEL_KWARGS`) when continuous batching's paged `cache` or an inference server's attention
        is in use — they are what that backend reads (transformers' Llama passes its `**kwargs` down the same way);
        none otherwise, where our stack derives what eager, sdpa and flash need from the inputs themselves."""
        if not (is_paged_cache(cache) or is_external_attention(self.config._attn_implementation)):
            return {}
        return {name: value for name, value in kwargs.items() if name not in MODEL_LEVEL_KWARGS}

    # Continuous batching (transformers' `ContinuousMixin`: `generate_batch`, `init_continuous_batching`,
    # `continuous_batching_context_manager`, `generate(cache_implementation="paged")`, `transformers serve
    # --continuous-batching`) packs the new tokens of many requests into one row over a paged KV cache. Only a
    # decoder-only language model reads it (ScratchGPTForCausalLM sets this True); every other class is refused up
    # front, with one error, instead of each request ending FAILED in a log.
    _supports_continuous_batching: bool = False

    def _continuous_batching_refusal(self) -> str | None:
        """Why this model cannot run continuous batching (and what to do instead), or None when it can."""
        instead = ("Continuous batching runs on decoder-only language models: ScratchGPTForCausalLM (scratch_gpt). "
                   "Use generate() on a padded batch instead.")
        if type(self)._supports_continuous_batching:
            if PagedAttentionCache is None or not hasattr(GenerationMixin, "init_continuous_batching"):
                return "the installed transformers has no continuous batching (no PagedAttentionCache)."
            window = getattr(self.config, "sliding_window", None)
            if window is not None and not paged_sliding_window_is_exact():
                return (f"with `sliding_window`={window}, the installed transformers' paged cache does not keep each "
                        "request's last W − 1 keys (compat.paged_sliding_window_is_exact), so decoding would differ "
                        "from generate() (transformers' own MistralForCausalLM too). Upgrade transformers, or use "
                        "generate().")
            return None
        because = getattr(type(self), "_continuous_batching_unsupported_because", None)
        if because is not None:
            return f"{because}. {instead}"
        if self.config.is_encoder_decoder:
            return ("it is an encoder-decoder: its decoder also attends to an encoded source, which a paged "
                    f"self-attention cache does not hold. {instead}")
        if not self.can_generate():
            return f"it has no language-model head to generate with. {instead}"
        return f"it does not decode through a key/value cache of self-attention. {instead}"

    def _refuse_continuous_batching(self) -> None:
        """Raise NotImplementedError, before any work, when continuous batching cannot drive this model."""
        reason = self._continuous_batching_refusal()
        if reason is not None:
            raise NotImplementedError(
                f"{type(self).__name__} ({self.config.model_type}) cannot run continuous batching (generate_batch, "
                f"init_continuous_batching, generate(cache_implementation='paged'), transformers serve "
                f"--continuous-batching): {reason}"
            )

    def init_continuous_batching(self, *args, **kwargs):
        """transformers' `init_continuous_batching`, on the models that support it (else NotImplementedError)."""
        self._refuse_continuous_batching()
        return super().init_continuous_batching(*args, **kwargs)

    def continuous_batching_context_manager(self, *args, **kwargs):
        """transformers' `continuous_batching_context_manager`, on the models that support it (else
        NotImplementedError when called, before the manager starts)."""
        self._refuse_continuous_batching()
        return super().continuous_batching_context_manager(*args, **kwargs)

    def generate_batch(self, inputs, *args, **kwargs):
        """transformers' `generate_batch` (continuous batching), on the models that support it: a request that cannot
        be served is refused here, with one error, before any work — not returned FAILED with an error in the log."""
        self._refuse_continuous_batching()
        self._check_batch_position_room(inputs, kwargs.get("max_new_tokens"), kwargs.get("generation_config",
                                                                                         args[0] if args else None))
        return super().generate_batch(inputs, *args, **kwargs)

    def _check_batch_position_room(self, inputs, max_new_tokens: int | None, generation_config) -> None:
        """A learned position table bounds each request: prompt P tokens + N new ones feed positions 0 … P + N − 2."""
        limit = getattr(self.config, "max_position_embeddings", None)
        if getattr(self.config, "position_embedding_type", None) != "learned" or not inputs or limit is None:
            return
        config = generation_config if generation_config is not None else self.generation_config
        new_tokens = max_new_tokens if max_new_tokens is not None else getattr(config, "max_new_tokens", None)
        longest = max(len(prompt) for prompt in inputs)
        needed = longest + (new_tokens or 1) - 1
        if needed > limit:
            room = limit - longest + 1
            raise ValueError(
                f"A prompt of {longest} tokens with `max_new_tokens`={new_tokens} would feed {needed} positions, but "
                f"this model's learned position table has `max_position_embeddings`={limit}. Ask for at most "
                f"{max(room, 0)} new tokens, or shorten the prompt to at most {limit - (new_tokens or 1) + 1} tokens."
            )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """transformers' `from_pretrained`, except that a truncated or corrupt safetensors weights file (which the
        safetensors parser reports as e.g. "incomplete metadata, file not fully covered", naming no file) raises an
        OSError naming the file(s) and what to do, and that checkpoints saved under an older name of a weight
        (`RENAMED_WEIGHTS`) load through transformers' `key_mapping` (a `key_mapping` of the caller's is added to
        it). This method lives in the model code, so it also applies when the checkpoint is loaded as remote code
        (`trust_remote_code=True`)."""
        kwargs["key_mapping"] = {**RENAMED_WEIGHTS, **(kwargs.get("key_mapping") or {})}
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        except SafetensorError as error:
            bad = unreadable_safetensors_files(pretrained_model_name_or_path, kwargs)
            where = ", ".join(f"{path} ({reason})" for path, reason in bad) if bad else (
                f"a safetensors weights file of {pretrained_model_name_or_path!r} ({error})")
            raise OSError(
                f"Cannot load {cls.__name__} from {pretrained_model_name_or_path!r}: truncated or corrupt weights "
                f"file: {where}. Download it again (`from_pretrained(..., force_download=True)` for a Hub model) or "
                "save the model again."
            ) from error

    def post_init(self):
        """transformers' `post_init`; then the targets of tied weights (`lm_head.weight` when the output layer is the
        token embedding) count as keys not saved, which they are not: the checkpoint holds only the source tensor.
        The Trainer resuming a run (`_load_from_checkpoint`) re-ties a checkpoint's missing keys quietly only when
        they are exactly `_keys_to_ignore_on_save`; otherwise it warns "There were missing keys in the checkpoint
        model loaded: ['lm_head.weight']" though nothing is missing. Untied models add nothing."""
        super().post_init()
        tied = getattr(self, "all_tied_weights_keys", None) or {}
        self._keys_to_ignore_on_save = set(self._keys_to_ignore_on_save or ()) | set(tied)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save as transformers does, with `auto_map` naming every Auto class of the family (not only this one's),
        so a Hub user can load the checkpoint with any of them through `trust_remote_code=True`. A tied target that
        is no longer the same tensor as its source (peft's `merge_and_unload` after training the embedding alone:
        it then sets `tie_word_embeddings=False`) is saved, not left out as `post_init` decided."""
        family = getattr(type(self.config), "family_auto_map", None)
        if family:
            self.config.auto_map = {**family, **(getattr(self.config, "auto_map", None) or {})}
        self._keys_to_ignore_on_save = set(self._keys_to_ignore_on_save or ()) - untied_targets(self)
        return super().save_pretrained(save_directory, *args, **kwargs)

    def _prepare_model_inputs(self, inputs: torch.Tensor | None = None, bos_token_id=None, model_kwargs=None):
        """`generate()` hook: validate the prompt before transformers indexes it (an empty prompt would otherwise
        fail with an IndexError inside generate). Only reached on classes that also inherit GenerationMixin.

        An encoder-decoder given `encoder_outputs` never encodes its `input_ids`: without them transformers fills a
        placeholder of −100s (the source's shape), which is no prompt and is not checked (BART accepts it too; so does
        assisted generation, which hands the assistant its own `encoder_outputs` that way)."""
        inputs_tensor, input_name, model_kwargs = super()._prepare_model_inputs(inputs, bos_token_id, model_kwargs)
        encoded = self.config.is_encoder_decoder and model_kwargs.get("encoder_outputs") is not None
        if input_name == "input_ids" and not encoded:
            vocab_size = getattr(self.config, "vocab_size", None) or 2**62
            check_input_ids(inputs_tensor, vocab_size)
        return inputs_tensor, input_name, model_kwargs

    @staticmethod
    def _init_embedding(module: nn.Embedding, std: float) -> None:
        """E ~ N(0, std²), with the padding row (if any) at zero so padding adds nothing."""
        init.normal_(module.weight, mean=0.0, std=std)
        if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
            module.weight.data[module.padding_idx].zero_()


class ScratchPreTrainedModel(ScratchPreTrainedBase):
    """Base of the Transformer families: N(0, 0.02) init, residual projections scaled by 1/√(2·layers) (GPT-2),
    LayerNorm = identity; sdpa/flash kernels through the attention interface."""

    supports_gradient_checkpointing = True
    _no_split_modules = ["TransformerLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True  # dispatched through the attention interface with a 2-D padding mask (GPU only)
    _supports_attention_backend = True
    # A forward (and a cached decoding step with a static cache) traces to one graph: no data-dependent branch runs
    # under torch.compile (tests/test_compile_fullgraph.py). transformers' own compile and static-cache tests read this.
    _can_compile_fullgraph = True

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


def unreadable_safetensors_files(name_or_path, kwargs: dict) -> list[tuple[str, str]]:
    """The safetensors weights files of a checkpoint (a local folder, or a Hub model already in the local cache)
    whose header safetensors cannot read, each with the parser's message: [(path, reason), …]."""
    name_or_path = str(name_or_path)
    subfolder = kwargs.get("subfolder") or ""
    folder = Path(name_or_path, subfolder)
    if folder.is_dir():
        candidates = sorted(folder.glob("*.safetensors"))
    else:  # a Hub id: look only in the local cache (no download while reporting an error)
        from huggingface_hub import try_to_load_from_cache

        candidates = []
        for filename in ("model.safetensors", "model.safetensors.index.json"):
            cached = try_to_load_from_cache(name_or_path, os.path.join(subfolder, filename) if subfolder else filename,
                                            cache_dir=kwargs.get("cache_dir"), revision=kwargs.get("revision"))
            if isinstance(cached, str) and cached.endswith(".safetensors"):
                candidates.append(Path(cached))
            elif isinstance(cached, str):  # the index of a sharded checkpoint: its shards sit beside it
                try:
                    shards = set(json.loads(Path(cached).read_text())["weight_map"].values())
                except (OSError, ValueError, KeyError, TypeError):
                    shards = set()
                candidates += [Path(cached).parent / shard for shard in sorted(shards)]
    bad = []
    for path in candidates:
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except (SafetensorError, OSError) as error:
            bad.append((str(path), str(error)))
    return bad
