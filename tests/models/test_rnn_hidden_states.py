"""The recurrent family's `output_hidden_states` follow HF's convention: encoder_hidden_states and
decoder_hidden_states are (embeddings, one per layer) — num_layers + 1 tensors, the last equal to the stack's
output — and each layer's entry is what that layer computes, checked against the layers run by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scratchformers import ScratchRNNConfig, ScratchRNNForConditionalGeneration

LAYERS = 3


def model_for(cell: str, attention: str | None, bidirectional: bool) -> ScratchRNNForConditionalGeneration:
    config = ScratchRNNConfig(vocab_size=40, hidden_size=16, num_hidden_layers=LAYERS, cell=cell, attention=attention,
                              bidirectional_encoder=bidirectional, dropout=0.0, pad_token_id=0, bos_token_id=1)
    return ScratchRNNForConditionalGeneration(config).eval()


def inputs() -> dict:
    """Source rows of 7 tokens, row 1 with 3 padding slots at the start, row 2 with 2 at the end; a target prefix."""
    x = torch.randint(3, 40, (3, 7))
    mask = torch.ones_like(x)
    mask[1, :3] = 0
    mask[2, -2:] = 0
    return dict(input_ids=x.masked_fill(mask == 0, 0), attention_mask=mask,
                decoder_input_ids=torch.randint(3, 40, (3, 5)))


def one_layer(rnn: nn.RNNBase, layer: int) -> nn.RNNBase:
    """A separate one-layer nn.LSTM/nn.GRU holding a copy of layer `layer` of the stacked `rnn`."""
    dirs = 2 if rnn.bidirectional else 1
    single = type(rnn)(rnn.input_size if layer == 0 else rnn.hidden_size * dirs, rnn.hidden_size, batch_first=True,
                       bidirectional=rnn.bidirectional)
    with torch.no_grad():
        for name, param in single.named_parameters():
            param.copy_(getattr(rnn, name.replace("_l0", f"_l{layer}")))
    return single


def encoder_layers_by_hand(rnn: nn.RNNBase, embeddings: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    """Each layer's outputs (B, S, C), from separate one-layer RNNs run on each row's real tokens alone."""
    outputs = [torch.zeros(*embeddings.shape[:2], rnn.hidden_size * (2 if rnn.bidirectional else 1))
               for _ in range(rnn.num_layers)]
    for row in range(embeddings.shape[0]):
        real = mask[row].bool()
        x = embeddings[row, real][None]  # (1, S_real, E)
        for layer in range(rnn.num_layers):
            x, _ = one_layer(rnn, layer)(x)
            outputs[layer][row, real] = x[0]
    return outputs


@pytest.mark.parametrize("cell,attention,bidirectional",
                         [("lstm", None, False), ("gru", None, True), ("lstm", "bahdanau", True), ("gru", "luong", False)])
def test_hidden_states_are_the_embeddings_and_every_layer(cell, attention, bidirectional):
    model = model_for(cell, attention, bidirectional)
    batch = inputs()
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
        plain = model(**batch)
        embed = model.model.encoder.embed_tokens

        # encoder: (embeddings, layer 1, …, layer L); the last is the encoder output
        encoder_states = out.encoder_hidden_states
        assert len(encoder_states) == LAYERS + 1
        torch.testing.assert_close(encoder_states[0], embed(batch["input_ids"]))
        assert encoder_states[-1] is out.encoder_last_hidden_state
        by_hand = encoder_layers_by_hand(model.model.encoder.rnn, encoder_states[0], batch["attention_mask"])
        for layer, expected in enumerate(by_hand, start=1):
            torch.testing.assert_close(encoder_states[layer], expected, atol=1e-6, rtol=1e-5)

        # decoder: (embeddings, layer 1, …, layer L); the last is the decoder output
        decoder_states = out.decoder_hidden_states
        assert len(decoder_states) == LAYERS + 1
        torch.testing.assert_close(decoder_states[0], embed(batch["decoder_input_ids"]))
        torch.testing.assert_close(decoder_states[-1], model.model(**batch).last_hidden_state)
        # one token at a time, the new state of layer l *is* layer l's output at that step
        encoded = model.model.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        hidden, cell_state = encoded.final_hidden, encoded.final_cell
        decoder = model.model.decoder
        for step in range(batch["decoder_input_ids"].shape[1]):
            token = embed(batch["decoder_input_ids"][:, step:step + 1])
            _, hidden, cell_state, _ = decoder(token, hidden, cell_state, encoded.last_hidden_state,
                                               batch["attention_mask"])
            for layer in range(1, LAYERS):  # the top layer's entry is the stack output (checked above)
                torch.testing.assert_close(decoder_states[layer][:, step], hidden[:, layer - 1], atol=1e-6, rtol=1e-5)
            if attention is None:
                torch.testing.assert_close(decoder_states[-1][:, step], hidden[:, -1], atol=1e-6, rtol=1e-5)

    # running the layers one at a time changes nothing in the outputs
    torch.testing.assert_close(out.logits, plain.logits, atol=1e-6, rtol=1e-5)
    assert plain.encoder_hidden_states is None and plain.decoder_hidden_states is None


def test_hidden_states_with_dropout_in_training_still_end_with_the_output():
    model = model_for("lstm", "luong", True)
    model.config.dropout = 0.3
    for module in model.modules():
        if isinstance(module, (nn.Dropout, nn.RNNBase)):
            module.p = module.dropout = 0.3  # nn.Dropout reads p, nn.LSTM reads dropout
    model.train()
    out = model(**inputs(), output_hidden_states=True)
    assert len(out.encoder_hidden_states) == len(out.decoder_hidden_states) == LAYERS + 1
    assert out.encoder_hidden_states[-1] is out.encoder_last_hidden_state
    out.logits.sum().backward()  # gradients flow through the layer-by-layer path
    assert model.model.encoder.rnn.weight_ih_l0.grad is not None


def test_generate_can_return_per_layer_hidden_states():
    model = model_for("gru", "bahdanau", False)
    batch = inputs()
    out = model.generate(batch["input_ids"], attention_mask=batch["attention_mask"], max_new_tokens=4,
                         min_new_tokens=4, do_sample=False, output_hidden_states=True, return_dict_in_generate=True)
    plain = model.generate(batch["input_ids"], attention_mask=batch["attention_mask"], max_new_tokens=4,
                           min_new_tokens=4, do_sample=False)
    assert torch.equal(out.sequences, plain)
    assert len(out.encoder_hidden_states) == LAYERS + 1
    assert all(len(step) == LAYERS + 1 for step in out.decoder_hidden_states)
    with torch.no_grad():
        encoded = model.get_encoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    torch.testing.assert_close(out.encoder_hidden_states[-1], encoded.last_hidden_state)
