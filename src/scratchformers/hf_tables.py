"""Transformers' own tables of model classes, told about ours — so code that decides from them decides right.

Parts of transformers choose what to do from static tables of its own classes instead of asking the model:

- the Trainer, with `label_smoothing_factor`, shifts labels one step (next-token targets) only when
  `model._get_name()` is in `MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()` (`trainer.py`, `compute_loss`). A causal LM
  missing from that table is trained to predict the token it is given, silently;
- `Trainer.create_model_card` (and `push_to_hub`) picks the card's task from the `MODEL_FOR_*_MAPPING_NAMES` tables;
- `transformers serve` picks "LLM" from `MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()`.

`AutoModelForX.register(config, cls)` does not reach these tables: it fills the lazy `MODEL_FOR_X_MAPPING`'s
`_extra_content`, which only `pipelines.Pipeline.check_model_type` also consults. So each modeling module calls
`add_to_name_tables` at import with the classes it registers (its `AUTO_CLASSES`, the one list of them). It runs again in a process that loads a checkpoint with
`trust_remote_code=True` and cannot import scratchformers: this module travels with the checkpoint's code (imported
with a single-dot relative import; only transformers is imported here). docs/compatibility.md lists every place.
"""

from __future__ import annotations

import transformers


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
