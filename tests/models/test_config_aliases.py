"""The paper's names (`attribute_map` aliases such as `d_model`, `num_heads`) are validated exactly like the fields
they stand for — in the constructor and on assignment — for every family's config, so a bad value is refused when
the config is built, not met later as a reshape error inside attention."""

from __future__ import annotations

import pytest
import torch

from scratchformers import (
    ScratchBertConfig,
    ScratchGPTConfig,
    ScratchGPTForCausalLM,
    ScratchRNNConfig,
    ScratchTransformerConfig,
)

CONFIGS = [ScratchGPTConfig, ScratchBertConfig, ScratchTransformerConfig, ScratchRNNConfig]
# a value each field refuses on its own
BAD_VALUES = {"hidden_size": 0, "intermediate_size": -1, "num_attention_heads": 0, "num_hidden_layers": 0,
              "hidden_dropout_prob": 1.5, "attention_probs_dropout_prob": -0.1, "dropout": 1.0}
GOOD_VALUES = {"hidden_size": 48, "intermediate_size": 96, "num_attention_heads": 2, "num_hidden_layers": 3,
               "hidden_dropout_prob": 0.2, "attention_probs_dropout_prob": 0.3, "dropout": 0.2}


def aliases():
    return [(cls, alias, name) for cls in CONFIGS for alias, name in cls.attribute_map.items()]


def test_every_alias_is_covered():
    assert {name for _, _, name in aliases()} <= set(BAD_VALUES)
    assert {cls for cls, _, _ in aliases()} == set(CONFIGS)


@pytest.mark.parametrize("cls,alias,name", aliases(), ids=lambda x: x if isinstance(x, str) else x.__name__)
def test_alias_is_refused_in_the_constructor_like_its_field(cls, alias, name):
    with pytest.raises(ValueError) as by_name:
        cls(**{name: BAD_VALUES[name]})
    with pytest.raises(ValueError) as by_alias:
        cls(**{alias: BAD_VALUES[name]})
    assert str(by_name.value) in str(by_alias.value)  # the same message, plus which alias it was


@pytest.mark.parametrize("cls,alias,name", aliases(), ids=lambda x: x if isinstance(x, str) else x.__name__)
def test_alias_in_the_constructor_sets_its_field_before_the_checks(cls, alias, name):
    config = cls(**{alias: GOOD_VALUES[name]})
    assert getattr(config, name) == getattr(config, alias) == GOOD_VALUES[name]
    assert cls(**{name: GOOD_VALUES[name]}).to_dict() == config.to_dict()


@pytest.mark.parametrize("cls,alias,name", aliases(), ids=lambda x: x if isinstance(x, str) else x.__name__)
def test_alias_is_refused_on_assignment_like_its_field(cls, alias, name):
    config = cls()
    with pytest.raises(ValueError) as by_name:
        setattr(config, name, BAD_VALUES[name])
    with pytest.raises(ValueError) as by_alias:
        setattr(config, alias, BAD_VALUES[name])
    assert str(by_name.value) in str(by_alias.value)
    setattr(config, alias, GOOD_VALUES[name])
    assert getattr(config, name) == GOOD_VALUES[name]


@pytest.mark.parametrize("cls", [ScratchGPTConfig, ScratchBertConfig, ScratchTransformerConfig])
def test_width_not_divisible_by_heads_is_refused_under_the_papers_names(cls):
    with pytest.raises(ValueError, match="`hidden_size`=130 must be divisible by `num_attention_heads`=4"):
        cls(d_model=130, num_heads=4)
    with pytest.raises(ValueError, match="`hidden_size`=130 must be divisible by `num_attention_heads`=4"):
        cls(hidden_size=130, num_attention_heads=4)


def test_papers_names_build_the_same_model_as_the_standard_names():
    torch.manual_seed(0)
    by_alias = ScratchGPTForCausalLM(ScratchGPTConfig(vocab_size=50, d_model=32, d_ff=48, num_heads=2, num_layers=3)).eval()
    torch.manual_seed(0)
    by_name = ScratchGPTForCausalLM(ScratchGPTConfig(vocab_size=50, hidden_size=32, intermediate_size=48,
                                                     num_attention_heads=2, num_hidden_layers=3)).eval()
    x = torch.randint(0, 50, (2, 5))
    with torch.no_grad():
        torch.testing.assert_close(by_alias(x).logits, by_name(x).logits)


def test_num_layers_fills_both_stacks_of_the_encoder_decoder():
    """`num_layers=` must fill encoder_layers/decoder_layers as `num_hidden_layers=` does (it was applied after)."""
    config = ScratchTransformerConfig(num_layers=3)
    assert (config.encoder_layers, config.decoder_layers, config.num_hidden_layers) == (3, 3, 3)
