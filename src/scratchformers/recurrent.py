"""Recurrent seq2seq blocks: the encoder-decoder of Sutskever et al. (2014) and the attention of Bahdanau et al. (2015)
and Luong et al. (2015).

"The LSTM reads the input sequence, one timestep at a time, to obtain a large fixed-dimensional vector
representation, and then uses another LSTM to extract the output sequence from that vector." (Sutskever 2014)
"The probability is conditioned on a distinct context vector cᵢ for each target word yᵢ": cᵢ = Σⱼ αᵢⱼ hⱼ,
αᵢⱼ = softmax_j(eᵢⱼ), eᵢⱼ = a(sᵢ₋₁, hⱼ) (Bahdanau 2015, eqs. 5-6).

Shapes: B batch, T target length, S source length, C hidden size, L layers, A attention size.
Recurrent states are kept batch-first, (B, L, C), so `generate()` can expand and reorder them along dim 0.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from transformers.cache_utils import Cache
from transformers.utils import ModelOutput

from .checks import check_choice
from .masks import additive_mask, padding_mask

CELL_CHOICES = ("lstm", "gru")
ATTENTION_CHOICES = (None, "bahdanau", "luong")
LUONG_SCORE_CHOICES = ("dot", "general")

# ----------------------------------------------------------------------------------------------------------------------
# Alignment scores e(s, hⱼ) and the context vector


def bahdanau_score(
    query: torch.Tensor, keys: torch.Tensor, W: nn.Linear, U: nn.Linear, v: nn.Linear,
    projected_keys: torch.Tensor | None = None,
) -> torch.Tensor:
    """Additive score eⱼ = vₐᵀ tanh(W s + U hⱼ) (Bahdanau 2015, App. A.1.2). query (B, C), keys (B, S, C) → (B, S).

    `projected_keys` = U(keys) may be passed precomputed: it does not change between decoder steps.
    """
    if projected_keys is None:
        projected_keys = U(keys)  # (B, S, A)
    return v(torch.tanh(W(query)[:, None, :] + projected_keys)).squeeze(-1)  # (B, 1, A) + (B, S, A) -> (B, S)


def luong_dot_score(query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Dot score eⱼ = sᵀ hⱼ (Luong 2015, eq. 8 "dot"). query (B, C), keys (B, S, C) → (B, S)."""
    return torch.einsum("bc,bsc->bs", query, keys)


def luong_general_score(query: torch.Tensor, keys: torch.Tensor, W: nn.Linear) -> torch.Tensor:
    """General score eⱼ = sᵀ Wₐ hⱼ (Luong 2015, eq. 8 "general"). query (B, C), keys (B, S, C) → (B, S)."""
    return torch.einsum("bc,bsc->bs", query, W(keys))  # W(keys) = hⱼ Wₐᵀ: (B, S, C)


def attention_context(
    scores: torch.Tensor, values: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """cᵢ = Σⱼ αᵢⱼ hⱼ with αᵢⱼ = softmax_j(eᵢⱼ) over real source positions (padding gets αᵢⱼ = 0).

    scores (B, S), values (B, S, C), attention_mask (B, S) of 1 = real token, 0 = padding.
    Returns (context (B, C), weights (B, S)).
    """
    if attention_mask is not None:
        allowed = padding_mask(attention_mask)[:, 0, 0, :]  # (B, 1, 1, S) -> (B, S)
        scores = scores + additive_mask(allowed, scores.dtype)
    weights = F.softmax(scores.float(), dim=-1).to(values.dtype)  # (B, S)
    context = torch.einsum("bs,bsc->bc", weights, values)  # (B, S) x (B, S, C) -> (B, C)
    return context, weights


class BahdanauAttention(nn.Module):
    """Additive attention: αᵢⱼ = softmax_j(vₐᵀ tanh(W sᵢ₋₁ + U hⱼ)), cᵢ = Σⱼ αᵢⱼ hⱼ (Bahdanau 2015)."""

    def __init__(self, hidden_size: int, attention_size: int | None = None):
        super().__init__()
        attention_size = attention_size or hidden_size
        self.W = nn.Linear(hidden_size, attention_size, bias=False)
        self.U = nn.Linear(hidden_size, attention_size, bias=True)
        self.v = nn.Linear(attention_size, 1, bias=False)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """U hⱼ for every source position, computed once per sentence. (B, S, C) → (B, S, A)."""
        return self.U(keys)

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, attention_mask: torch.Tensor | None = None,
        projected_keys: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(context (B, C), weights (B, S)) for one decoder step's query sᵢ₋₁ (B, C)."""
        scores = bahdanau_score(query, keys, self.W, self.U, self.v, projected_keys)
        return attention_context(scores, keys, attention_mask)


class LuongAttention(nn.Module):
    """Multiplicative attention: αᵢⱼ = softmax_j(score(sᵢ₋₁, hⱼ)) with score = sᵀh ("dot") or sᵀWₐh ("general")."""

    def __init__(self, hidden_size: int, score: str = "general"):
        super().__init__()
        check_choice("luong_score", score, LUONG_SCORE_CHOICES)
        self.score = score
        self.W = nn.Linear(hidden_size, hidden_size, bias=False) if score == "general" else None

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor | None:
        """Nothing to precompute for the multiplicative scores (returns None)."""
        return None

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, attention_mask: torch.Tensor | None = None,
        projected_keys: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(context (B, C), weights (B, S)) for one decoder step's query sᵢ₋₁ (B, C)."""
        if self.score == "dot":
            scores = luong_dot_score(query, keys)
        else:
            scores = luong_general_score(query, keys, self.W)
        return attention_context(scores, keys, attention_mask)


# ----------------------------------------------------------------------------------------------------------------------
# Recurrent cells


def make_rnn(cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float,
             bidirectional: bool = False) -> nn.LSTM | nn.GRU:
    """nn.LSTM or nn.GRU, batch-first, with dropout between stacked layers (Zaremba et al. 2014)."""
    check_choice("cell", cell, CELL_CHOICES)
    rnn_class = nn.LSTM if cell == "lstm" else nn.GRU
    return rnn_class(
        input_size, hidden_size, num_layers=num_layers, batch_first=True,
        dropout=dropout if num_layers > 1 else 0.0, bidirectional=bidirectional,
    )


@functools.cache
def cpu_autocast_has_kernel(cell: type[nn.RNNBase], dtype: torch.dtype) -> bool:
    """Whether this CPU runs `cell` (nn.LSTM or nn.GRU) under `torch.autocast("cpu", dtype)`: tried once on a 1-unit
    module and remembered. oneDNN's LSTM kernel needs float16 hardware for float16, and AVX-512-BF16 or AMX for
    bfloat16: on an AVX2-only CPU (most laptops) it raises "could not create a primitive descriptor for the LSTM
    forward propagation primitive". Probing, rather than reading CPU flags, follows whatever oneDNN itself can do
    (including a `ONEDNN_MAX_CPU_ISA` limit)."""
    probe = cell(1, 1, batch_first=True)
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=dtype):
            probe(torch.zeros(1, 1, 1))
    except RuntimeError:
        return False
    return True


def run_rnn(rnn: nn.RNNBase, x, state=None, params: dict[str, torch.Tensor] | None = None):
    """`rnn(x, state)` — with `params` in place of its own weights when given (`functional_call`) — except where the
    CPU has no half-precision kernel for this cell under the active CPU autocast (`cpu_autocast_has_kernel`): then the
    recurrence alone runs in float32, autocast off, and the rest of the model stays in the autocast dtype (as autocast
    itself does for ops it has no low-precision kernel for). `x` is (B, T, I) or a PackedSequence; the outputs are
    float32 in that case."""
    def call(x, state):
        return rnn(x, state) if params is None else functional_call(rnn, params, (x, state))

    data = x.data if isinstance(x, nn.utils.rnn.PackedSequence) else x
    if data.device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return call(x, state)
    if cpu_autocast_has_kernel(type(rnn), torch.get_autocast_dtype("cpu")):
        return call(x, state)
    with torch.autocast("cpu", enabled=False):
        x = x._replace(data=x.data.float()) if isinstance(x, nn.utils.rnn.PackedSequence) else x.float()
        if state is not None:
            state = tuple(s.float() for s in state) if isinstance(state, tuple) else state.float()
        return call(x, state)


def run_rnn_by_layer(rnn: nn.RNNBase, x, state=None):
    """The stacked `rnn(x, state)` run one layer at a time, to see what passes between the layers.

    Computes what nn.LSTM/nn.GRU compute (the same weights; dropout on each layer's output but the last, in
    training): layer l reads xₗ and writes yₗ, x₁ = x, xₗ₊₁ = dropout(yₗ). `x` is (B, T, I) or a PackedSequence,
    `state` as nn.LSTM/nn.GRU take it ((h, c) or h, each (L·dirs, B, C)) or None. Returns
    (top layer's output y_L, final state as the stacked rnn returns it, [x₁, …, x_L]: each layer's input).
    """
    dirs = 2 if rnn.bidirectional else 1
    packed = isinstance(x, nn.utils.rnn.PackedSequence)
    layer_inputs, finals = [], []
    for layer in range(rnn.num_layers):
        if layer > 0 and rnn.dropout and rnn.training:
            y = x.data if packed else x
            y = F.dropout(y, rnn.dropout, training=True)
            x = x._replace(data=y) if packed else y
        layer_inputs.append(x)
        input_size = rnn.input_size if layer == 0 else rnn.hidden_size * dirs
        with torch.device("meta"):  # a weightless one-layer module to call with this layer's weights
            one = type(rnn)(input_size, rnn.hidden_size, num_layers=1, bias=rnn.bias, batch_first=rnn.batch_first,
                            bidirectional=rnn.bidirectional)
        one.train(rnn.training)
        params = {name: getattr(rnn, name.replace("_l0", f"_l{layer}")) for name in one._flat_weights_names}
        rows = slice(layer * dirs, (layer + 1) * dirs)  # this layer's rows of the (L·dirs, B, C) state
        layer_state = None if state is None else (
            tuple(s[rows] for s in state) if isinstance(state, tuple) else state[rows])
        x, final = run_rnn(one, x, layer_state, params)
        finals.append(final)
    if isinstance(finals[0], tuple):
        return x, tuple(torch.cat(parts) for parts in zip(*finals)), layer_inputs
    return x, torch.cat(finals), layer_inputs


def to_torch_state(hidden: torch.Tensor, cell: torch.Tensor | None):
    """Batch-first (B, L, C) state → what nn.LSTM/nn.GRU take: (h, c) or h, each (L, B, C)."""
    h = hidden.transpose(0, 1).contiguous()
    return h if cell is None else (h, cell.transpose(0, 1).contiguous())


def from_torch_state(state) -> tuple[torch.Tensor, torch.Tensor | None]:
    """nn.LSTM/nn.GRU state ((h, c) or h, each (L·dirs, B, C)) → batch-first (hidden, cell), each (B, L·dirs, C)."""
    if isinstance(state, tuple):
        return state[0].transpose(0, 1), state[1].transpose(0, 1)
    return state.transpose(0, 1), None


def merge_directions(state: torch.Tensor) -> torch.Tensor:
    """Bidirectional final states (B, 2L, C/2) [l0 fwd, l0 bwd, l1 fwd, …] → (B, L, C) = [h→; h←] per layer."""
    B, LD, half = state.shape
    return state.reshape(B, LD // 2, 2 * half)  # (B, L, 2, C/2) flattened: forward half, then backward half


class RNNEncoder(nn.Module):
    """Reads the source one token at a time: hⱼ = RNN(x_j, hⱼ₋₁). Returns all hⱼ (B, S, C) and the final state.

    Padding is skipped (packed sequences), whichever side it is on, so the final state is the one after the last real
    token. A bidirectional encoder gives each direction C/2 units and concatenates them: hⱼ = [h→ⱼ; h←ⱼ].
    """

    def __init__(self, input_size: int, cell: str, hidden_size: int, num_layers: int, dropout: float,
                 bidirectional: bool = False):
        super().__init__()
        self.bidirectional = bidirectional
        rnn_size = hidden_size // 2 if bidirectional else hidden_size
        self.rnn = make_rnn(cell, input_size, rnn_size, num_layers, dropout, bidirectional)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """inputs_embeds (B, S, E), attention_mask (B, S) → (outputs (B, S, C), hidden (B, L, C), cell (B, L, C)|None),
        plus, with `output_hidden_states`, the hidden states (embeddings, input of layer 2, …, of layer L, outputs):
        L + 1 tensors (B, S, ·), the layers run one at a time (padding positions of layer outputs hold zeros)."""
        x = self.dropout(inputs_embeds)
        B, S, _ = x.shape
        run = run_rnn_by_layer if output_hidden_states else run_rnn
        if attention_mask is None or bool(attention_mask.all()):
            outputs, state, *layer_inputs = run(self.rnn, x)
            layer_inputs = layer_inputs[0] if layer_inputs else []
        else:
            mask = attention_mask.bool()
            # move real tokens to the front of each row (stable), so left and right padding are handled alike
            order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices  # (B, S)
            lengths = mask.sum(-1).clamp(min=1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(x.gather(1, order[..., None].expand_as(x)), lengths,
                                                       batch_first=True, enforce_sorted=False)

            def unpack(packed_out: nn.utils.rnn.PackedSequence) -> torch.Tensor:  # (B, S, C), back in place
                front, _ = nn.utils.rnn.pad_packed_sequence(packed_out, batch_first=True, total_length=S)
                in_place = torch.zeros_like(front).scatter(1, order[..., None].expand_as(front), front)
                return in_place * mask[..., None]  # padding positions hold zeros

            packed_out, state, *layer_inputs = run(self.rnn, packed)
            outputs = unpack(packed_out)
            layer_inputs = [x] + [unpack(h) for h in layer_inputs[0][1:]] if layer_inputs else []
        hidden, cell = from_torch_state(state)  # (B, L·dirs, C/dirs)
        if self.bidirectional:
            hidden = merge_directions(hidden)
            cell = merge_directions(cell) if cell is not None else None
        outputs = self.dropout(outputs)
        if output_hidden_states:
            return outputs, hidden, cell, (*layer_inputs, outputs)
        return outputs, hidden, cell


class RNNDecoder(nn.Module):
    """Generates the target one token at a time from the previous token, the state and (with attention) a context.

    Without attention (Sutskever 2014): sᵢ = RNN(yᵢ₋₁, sᵢ₋₁), s₀ = the encoder's final state, oᵢ = sᵢ.
    With attention (Bahdanau 2015): cᵢ = Σⱼ αᵢⱼ hⱼ with αᵢⱼ = softmax_j(score(sᵢ₋₁, hⱼ)), sᵢ = RNN([yᵢ₋₁; cᵢ], sᵢ₋₁),
    and the output oᵢ = tanh(W_o [sᵢ; cᵢ]) (Luong 2015, eq. 5). The output layer turns oᵢ into logits.
    """

    def __init__(self, embedding_dim: int, cell: str, hidden_size: int, num_layers: int, dropout: float,
                 attention: str | None = None, luong_score: str = "general"):
        super().__init__()
        check_choice("attention", attention, ATTENTION_CHOICES)
        self.attention_kind = attention
        input_size = embedding_dim + (hidden_size if attention else 0)
        self.rnn = make_rnn(cell, input_size, hidden_size, num_layers, dropout)
        if attention == "bahdanau":
            self.attention = BahdanauAttention(hidden_size)
        elif attention == "luong":
            self.attention = LuongAttention(hidden_size, luong_score)
        else:
            self.attention = None
        self.output_projection = nn.Linear(2 * hidden_size, embedding_dim) if attention else None
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        hidden: torch.Tensor,
        cell: torch.Tensor | None,
        encoder_outputs: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Run T steps from state (hidden, cell) (B, L, C). Returns (oᵢ (B, T, E), hidden, cell, α (B, T, S) or None),
        plus, with `output_hidden_states`, the hidden states (embeddings, input of layer 2, …, of layer L, oᵢ):
        L + 1 tensors (B, T, ·), the layers run one at a time. With attention the last "layer" is the top RNN layer
        together with the attentional output oᵢ = tanh(W_o [sᵢ; cᵢ])."""
        x = self.dropout(inputs_embeds)  # (B, T, E)
        state = to_torch_state(hidden, cell)
        run = run_rnn_by_layer if output_hidden_states else run_rnn
        if self.attention is None:  # the whole target at once: nothing but the state links the steps
            outputs, state, *layer_inputs = run(self.rnn, x, state)
            hidden, cell = from_torch_state(state)
            outputs = self.dropout(outputs)
            if output_hidden_states:
                return outputs, hidden, cell, None, (*layer_inputs[0], outputs)
            return outputs, hidden, cell, None
        if encoder_outputs is None:
            raise ValueError(f"attention={self.attention_kind!r} needs the encoder outputs hⱼ; got None.")
        projected_keys = self.attention.project_keys(encoder_outputs)  # once per sentence
        outputs, alignments, between = [], [], []  # between[i]: inputs of layers 2…L at step i
        for i in range(x.shape[1]):
            query = state[0][-1] if isinstance(state, tuple) else state[-1]  # top layer's sᵢ₋₁: (B, C)
            context, alpha = self.attention(query, encoder_outputs, encoder_attention_mask, projected_keys)
            step_in = torch.cat([x[:, i], context], dim=-1)[:, None]  # (B, 1, E + C)
            s_i, state, *layer_inputs = run(self.rnn, step_in, state)  # (B, 1, C)
            outputs.append(torch.tanh(self.output_projection(torch.cat([s_i[:, 0], context], dim=-1))))
            alignments.append(alpha)
            if output_hidden_states:
                between.append(layer_inputs[0][1:])
        hidden, cell = from_torch_state(state)
        out = self.dropout(torch.stack(outputs, dim=1))  # (B, T, E)
        alignment = torch.stack(alignments, dim=1)  # α: (B, T, S)
        if output_hidden_states:
            layers = [torch.cat(steps, dim=1) for steps in zip(*between)]  # each (B, T, C)
            return out, hidden, cell, alignment, (x, *layers, out)
        return out, hidden, cell, alignment


# ----------------------------------------------------------------------------------------------------------------------
# What generate() carries between steps: the encoder's result and the decoder's recurrent state


@dataclass
class RNNEncoderOutput(ModelOutput):
    """Encoder result: every hⱼ (B, S, C) and the final state, batch-first (B, L, C) so `generate()` can expand it.

    `final_cell` is the LSTM's memory cell (None for a GRU).
    """

    last_hidden_state: torch.Tensor | None = None
    final_hidden: torch.Tensor | None = None
    final_cell: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class RecurrentState(Cache):
    """The decoder's recurrent state sᵢ (and the LSTM cell) as `generate()`'s cache: all a step needs of the past.

    hidden / cell are batch-first (B, L, C); `seen_tokens` counts decoder tokens consumed. Beam search reorders it in
    place; it cannot be cropped (a recurrent state cannot forget tokens) nor compiled.
    """

    def __init__(self, hidden: torch.Tensor, cell: torch.Tensor | None = None, seen_tokens: int = 0):
        super().__init__(layers=[])
        self.hidden = hidden
        self.cell = cell
        self.seen_tokens = seen_tokens

    def __repr__(self) -> str:
        return f"RecurrentState(hidden={tuple(self.hidden.shape)}, cell={self.cell is not None}, seen={self.seen_tokens})"

    def update_state(self, hidden: torch.Tensor, cell: torch.Tensor | None, num_new_tokens: int) -> None:
        """Replace the state by the one after `num_new_tokens` more decoder steps."""
        self.hidden, self.cell = hidden, cell
        self.seen_tokens += num_new_tokens

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Number of decoder tokens already folded into the state."""
        return self.seen_tokens

    def get_mask_sizes(self, *args, **kwargs):
        raise NotImplementedError("RecurrentState holds no keys/values; there is no attention mask over the past.")

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Beam search: keep, in place, the states of the beams in `beam_idx` (B·beams,)."""
        self.batch_select_indices(beam_idx)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep the rows `indices` of the state (in place)."""
        self.hidden = self.hidden.index_select(0, indices.to(self.hidden.device))
        if self.cell is not None:
            self.cell = self.cell.index_select(0, indices.to(self.cell.device))

    def batch_repeat_interleave(self, repeats: int) -> None:
        """Repeat each row `repeats` times (in place), as generate() does for its inputs."""
        self.hidden = self.hidden.repeat_interleave(repeats, dim=0)
        if self.cell is not None:
            self.cell = self.cell.repeat_interleave(repeats, dim=0)

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("A recurrent state cannot be cropped: it does not keep per-token entries.")

    def reset(self) -> None:
        self.hidden = torch.zeros_like(self.hidden)
        self.cell = torch.zeros_like(self.cell) if self.cell is not None else None
        self.seen_tokens = 0

    @property
    def is_compileable(self) -> bool:
        return False

    @property
    def is_croppable(self) -> bool:
        return False

    @property
    def is_linear(self) -> list[bool]:
        """[False]: the state counts the tokens it consumed, so a `generate()` continued from it with the whole
        sequence (and its mask) feeds only the unseen tokens, as for a key/value cache. transformers skips that slicing
        for caches whose layers are all "linear" (Mamba-like), and a cache without layers counts as all linear."""
        return [False]

    @property
    def batch_size(self) -> int:
        return self.hidden.shape[0]
