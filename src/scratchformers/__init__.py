"""scratchformers: Transformer-family models written from scratch, usable through the whole Hugging Face stack.

Importing the package registers every family with the Auto classes, so `AutoModelForCausalLM.from_pretrained(dir)`
works on our checkpoints; checkpoints also carry their code (`auto_map`) for `trust_remote_code=True` loading.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForQuestionAnswering,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

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


def _register(config_class, models: dict) -> None:
    """Register a family with AutoConfig/AutoModel* and mark it so `save_pretrained` writes `auto_map` + code."""
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    config_class.register_for_auto_class()
    for auto_class, model_class in models.items():
        auto_class.register(config_class, model_class, exist_ok=True)
        model_class.register_for_auto_class(auto_class.__name__)
    module = models[AutoModel].__module__.rsplit(".", 1)[-1]
    config_class.family_auto_map = {
        "AutoConfig": f"{config_class.__module__.rsplit('.', 1)[-1]}.{config_class.__name__}",
        **{auto.__name__: f"{module}.{model.__name__}" for auto, model in models.items()},
    }


_register(
    ScratchGPTConfig,
    {
        AutoModel: ScratchGPTModel,
        AutoModelForCausalLM: ScratchGPTForCausalLM,
        AutoModelForSequenceClassification: ScratchGPTForSequenceClassification,
    },
)
_register(
    ScratchRNNConfig,
    {AutoModel: ScratchRNNModel, AutoModelForSeq2SeqLM: ScratchRNNForConditionalGeneration},
)

_register(
    ScratchTransformerConfig,
    {AutoModel: ScratchTransformerModel, AutoModelForSeq2SeqLM: ScratchTransformerForConditionalGeneration},
)

_register(
    ScratchBertConfig,
    {
        AutoModel: ScratchBertModel,
        AutoModelForMaskedLM: ScratchBertForMaskedLM,
        AutoModelForSequenceClassification: ScratchBertForSequenceClassification,
        AutoModelForTokenClassification: ScratchBertForTokenClassification,
        AutoModelForQuestionAnswering: ScratchBertForQuestionAnswering,
    },
)

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
