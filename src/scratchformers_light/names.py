"""Lists of names that the console command, the demo and the model cards share (standard library only).

The training tasks are ``arguments.TASKS`` (each with its flags); the conversion pairs are
``conversions.conversions()``; each family's Auto classes are its modeling file's ``AUTO_CLASSES`` (remote code
needs them there).
"""

#: `scratchformers demo --family`: what the demo trains (a GPT, a BERT, the encoder-decoder on translation).
DEMO_FAMILIES = ("gpt", "bert", "translation")

#: The tasks a model card names: task → (Hub pipeline tag, readable name, the Auto class that loads the checkpoint).
CARD_TASKS = {
    "causal-lm": ("text-generation", "Causal language modelling", "AutoModelForCausalLM"),
    "masked-lm": ("fill-mask", "Masked language modelling", "AutoModelForMaskedLM"),
    "translation": ("translation", "Translation", "AutoModelForSeq2SeqLM"),
    "text-classification": ("text-classification", "Text classification", "AutoModelForSequenceClassification"),
}

#: `scratchformers chat --quantize`, `scratchformers.fast_decoding.quantization_config`: weight quantizations for
#: decoding (torchao, the `[quant]` extra).
QUANTIZATION_METHODS = ("int8-weight-only",)
