"""scratchformers: Transformer-family models written from scratch, usable through the whole Hugging Face stack.

Importing the package registers every family with the Auto classes, so `AutoModelForCausalLM.from_pretrained(dir)`
works on our checkpoints; checkpoints also carry their code (`auto_map`) for `trust_remote_code=True` loading.
"""

import transformers

from . import modeling_scratch_bert, modeling_scratch_gpt, modeling_scratch_rnn, modeling_scratch_transformer
from .cache import GrowingCache
from .configuration_scratch_bert import ScratchBertConfig
from .configuration_scratch_gpt import ScratchGPTConfig
from .configuration_scratch_rnn import ScratchRNNConfig
from .configuration_scratch_transformer import ScratchTransformerConfig
from .modeling_scratch_bert import (
    ScratchBertForMaskedLM,
    ScratchBertForQuestionAnswering,
    ScratchBertForSequenceClassification,
    ScratchBertForTokenClassification,
    ScratchBertModel,
    ScratchBertPreTrainedModel,
)
from .modeling_scratch_gpt import (
    ScratchGPTForCausalLM,
    ScratchGPTForSequenceClassification,
    ScratchGPTModel,
    ScratchGPTPreTrainedModel,
)
from .modeling_scratch_rnn import (
    ScratchRNNForConditionalGeneration,
    ScratchRNNModel,
    ScratchRNNPreTrainedModel,
)
from .modeling_scratch_transformer import (
    ScratchTransformerForConditionalGeneration,
    ScratchTransformerModel,
    ScratchTransformerPreTrainedModel,
)
from .seq2seq import shift_tokens_right

__version__ = "0.1.0"


def _register(config_class, modeling) -> None:
    """Register a family with AutoConfig and with the Auto class of each of its models (its modeling module's
    `AUTO_CLASSES`), and mark it so `save_pretrained` writes `auto_map` + code."""
    transformers.AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    config_class.register_for_auto_class()
    for auto_name, model_class in modeling.AUTO_CLASSES.items():
        getattr(transformers, auto_name).register(config_class, model_class, exist_ok=True)
        model_class.register_for_auto_class(auto_name)
    module = modeling.__name__.rsplit(".", 1)[-1]
    config_class.family_auto_map = {
        "AutoConfig": f"{config_class.__module__.rsplit('.', 1)[-1]}.{config_class.__name__}",
        **{auto_name: f"{module}.{model.__name__}" for auto_name, model in modeling.AUTO_CLASSES.items()},
    }


_register(ScratchGPTConfig, modeling_scratch_gpt)
_register(ScratchRNNConfig, modeling_scratch_rnn)
_register(ScratchTransformerConfig, modeling_scratch_transformer)
_register(ScratchBertConfig, modeling_scratch_bert)

__all__ = [
    "ScratchGPTConfig",
    "ScratchGPTPreTrainedModel",
    "ScratchGPTModel",
    "ScratchGPTForCausalLM",
    "ScratchGPTForSequenceClassification",
    "ScratchBertConfig",
    "ScratchBertPreTrainedModel",
    "ScratchBertModel",
    "ScratchBertForMaskedLM",
    "ScratchBertForSequenceClassification",
    "ScratchBertForTokenClassification",
    "ScratchBertForQuestionAnswering",
    "ScratchRNNConfig",
    "ScratchRNNPreTrainedModel",
    "ScratchRNNModel",
    "ScratchRNNForConditionalGeneration",
    "ScratchTransformerConfig",
    "ScratchTransformerPreTrainedModel",
    "ScratchTransformerModel",
    "ScratchTransformerForConditionalGeneration",
    "shift_tokens_right",
    "GrowingCache",
]
