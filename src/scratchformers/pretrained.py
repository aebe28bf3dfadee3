"""What every family's `XPreTrainedModel` shares: outputs, checkpoints, prompt checks, weight initialisation, and
transformers' own tables of model classes told about ours (`add_to_name_tables`).

Transformers' name tables: parts of transformers choose what to do from static tables of its own classes instead
of asking the model:

- the Trainer, with `label_smoothing_factor`, shifts labels one step (next-token targets) only when
  `model._get_name()` is in `MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()` (`trainer.py`, `compute_loss`). A causal LM
  missing from that table is trained to predict the token it is given, silently;
- `Trainer.create_model_card` (and `push_to_hub`) picks the card's task from the `MODEL_FOR_*_MAPPING_NAMES` tables;
- `transformers serve` picks "LLM" from `MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()`.

`AutoModelForX.register(config, cls)` does not reach these tables: it fills the lazy `MODEL_FOR_X_MAPPING`'s
`_extra_content`, which only `pipelines.Pipeline.check_model_type` also consults. So each modeling module calls
`add_to_name_tables` at import with the classes it registers (its `AUTO_CLASSES`, the one list of them). It runs
again in a process that loads a checkpoint with `trust_remote_code=True` and cannot import scratchformers: this
module travels with every family's code. docs/compatibility.md lists every place.
"""

from __future__ import annotations

import inspect
import json
import os
import re
from pathlib import Path

import torch
import transformers
from safetensors import SafetensorError, safe_open
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.generation.utils import GENERATION_MODES_MAPPING, GenerationMixin
from transformers.utils import ModelOutput
from transformers.utils.generic import TransformersKwargs

from .checks import check_input_ids
from .compat import (
    PAGED_ATTENTION_KWARGS,
    PagedAttentionCache,
    is_paged_cache,
    paged_sliding_window_is_exact,
)
from .masks import is_external_attention


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
        if forward is not None:  # the names `_run_body` hands down to this class as a body
            cls._forward_names = frozenset(
                name for name, parameter in inspect.signature(forward).parameters.items()
                if name != "self" and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)
            )

    # The forward prologue and epilogue every class shares: defaults from the config, the body's call, the output.
    def _use_cache(self, use_cache: bool | None) -> bool:
        """`use_cache` as given, else the config's — off while training (the Trainer sets it False too)."""
        return self.config.use_cache and not self.training if use_cache is None else use_cache

    def _output_flags(self, output_attentions: bool | None, output_hidden_states: bool | None) -> tuple[bool, bool]:
        """(`output_attentions`, `output_hidden_states`) as given, else the config's, as transformers' models read them."""
        config = self.config
        return (bool(config.output_attentions if output_attentions is None else output_attentions),
                bool(config.output_hidden_states if output_hidden_states is None else output_hidden_states))

    def _run_body(self, arguments: dict, **overrides):
        """A head's body (`self.model`) run on the head's own forward arguments (a dict of them, by name: not
        `locals()`, which torch 2.10's dynamo cannot trace) that the body's forward names, with `overrides`, returning
        a `ModelOutput`; the head's `**kwargs` are checked first (`_check_kwargs`). Heads keep their explicit
        signatures (the Trainer and generate() read them); this is the one place their arguments are handed down."""
        self._check_kwargs(arguments.get("kwargs", {}), arguments.get("cache"))
        names = type(self.model)._forward_names
        given = {name: value for name, value in arguments.items() if name in names}
        return self.model(**{**given, **overrides, "return_dict": True})

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


def add_to_name_tables(model_type: str, classes: dict[str, type]) -> None:
    """Add `model_type → class name` to the name table each Auto class is built on (`AutoModelForCausalLM` →
    `MODEL_FOR_CAUSAL_LM_MAPPING_NAMES`, the `_model_mapping` of its lazy mapping).

    `classes` maps an Auto class's name to the class the family registers with it. Idempotent; an existing entry is
    never replaced (transformers' own model of the same type, or the first copy of ours when the package and a
    remote-code checkpoint are both imported); an Auto class the installed release does not have is skipped (all
    seven we use exist throughout 5.x).
    """
    for auto_name, cls in classes.items():
        auto_class = getattr(transformers, auto_name, None)
        if auto_class is not None:
            auto_class._model_mapping._model_mapping.setdefault(model_type, cls.__name__)


#: The `loss_type` of our encoder-decoder heads. transformers derives a model's `loss_type` from its class name
#: (`…ForConditionalGeneration` → `ForCausalLMLoss`), and the Trainer of some releases (5.13 does; 5.6 does not count
#: this way) then counts `num_items_in_batch` over `labels[..., 1:]` — right for a decoder-only LM, which predicts token
#: t+1 at position t, wrong for a decoder fed the right-shifted labels, whose every label is a target: the loss is
#: over-scaled by n/(n−B). 5.23 and 5.24 exclude `is_encoder_decoder` models. Our decoder's loss is the per-token
#: cross-entropy of aligned labels, which is what `ForMaskedLMLoss` computes, so the name says so in every 5.x release.
ALIGNED_TOKEN_LOSS = "ForMaskedLM"


def carry_output(output_class: type[ModelOutput], output: ModelOutput, **fields) -> ModelOutput:
    """An `output_class` with `fields` and every field of `output` (a body's) that it also has: the cache under the
    installed release's name, hidden states, attentions, the encoder's fields of a seq2seq body."""
    names = output_class.__dataclass_fields__  # (what `dataclasses.fields` reads; this also traces under torch.compile)
    return output_class(**{name: value for name, value in output.items() if name in names}, **fields)


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
