"""BERT: auto-encoding — read the whole sentence in both directions and fill in masked tokens (Devlin et al. 2018).

"BERT alleviates the previously mentioned unidirectionality constraint by using a 'masked language model' (MLM)
pre-training objective […]: the masked language model randomly masks some of the tokens from the input, and the
objective is to predict the original vocabulary id of the masked word based only on its context." (§1)

A BERT is one stack of *non-causal* self-attention layers (`layers.TransformerStack`, post-LN) over token + position
+ segment embeddings. New here: the pooler, the MLM head and the fine-tuning heads (classification, tagging, QA).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_outputs import (
    BaseModelOutputWithPoolingAndCrossAttentions,
    MaskedLMOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

from .configuration_scratch_bert import ScratchBertConfig
from .layers import ACTIVATIONS, TransformerStack
from .losses import logits_and_labelled_loss, sequence_classification_loss, span_loss, token_classification_loss
from .pretrained import add_to_name_tables, carry_output
from .pretrained_stack import ScratchPreTrainedModel


class ScratchBertPreTrainedModel(ScratchPreTrainedModel):
    """Base class of the BERT family: config class, weight init (N(0, 0.02)), checkpoint conventions."""

    config_class = ScratchBertConfig


class ScratchBertPooler(nn.Module):
    """Pooled output = tanh(W h_[CLS] + b): "the final hidden vector corresponding to the first input token ([CLS])
    as the aggregate representation" (§3, §4.1), passed through a dense layer as in the released BERT."""

    def __init__(self, config: ScratchBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden_states[:, 0]))  # (B, T, C) -> (B, C)


class ScratchBertModel(ScratchBertPreTrainedModel):
    """The BERT body: token + position + segment embeddings (LayerNorm), N bidirectional post-LN layers, optional
    pooler. Returns every position's hidden state (and the pooled [CLS] vector when the pooler is on)."""

    token_stack = "encoder"

    def __init__(self, config: ScratchBertConfig, add_pooling_layer: bool | None = None):
        super().__init__(config)
        self.encoder = TransformerStack(config, config.num_hidden_layers, causal=False)
        add_pooling_layer = config.add_pooling_layer if add_pooling_layer is None else add_pooling_layer
        self.pooler = ScratchBertPooler(config) if add_pooling_layer else None
        self.post_init()

    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.LongTensor | None = None, position_ids: torch.LongTensor | None = None,
                inputs_embeds: torch.Tensor | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                **kwargs) -> BaseModelOutputWithPoolingAndCrossAttentions | tuple:
        out = self._run_stack(self.encoder, dict(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, inputs_embeds=inputs_embeds, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=return_dict, kwargs=kwargs))
        pooled = self.pooler(out.last_hidden_state) if self.pooler is not None else None
        return self._output(carry_output(BaseModelOutputWithPoolingAndCrossAttentions, out, pooler_output=pooled),
                            return_dict)


class ScratchBertLMHead(nn.Module):
    """MLM head: logits = LayerNorm(act(W h + b)) Eᵀ + b_vocab — a transform, then a decoder tied to the input
    token embedding E (as in the released BERT)."""

    def __init__(self, config: ScratchBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACTIVATIONS[config.activation]
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)  # weight tied to E; own bias

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(self.act(self.dense(hidden_states))))  # (B, T, C) -> (B, T, V)


class ScratchBertForMaskedLM(ScratchBertPreTrainedModel):
    """BERT with the MLM head. loss = cross-entropy over the masked positions only (labels are −100 elsewhere, as
    `DataCollatorForLanguageModeling(mlm=True)` makes them)."""

    _tied_weights_keys = {"lm_head.decoder.weight": "model.encoder.embeddings.embed_tokens.weight"}

    def __init__(self, config: ScratchBertConfig):
        super().__init__(config)
        self.model = ScratchBertModel(config, add_pooling_layer=False)
        self.lm_head = ScratchBertLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head.decoder = value

    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.LongTensor | None = None, position_ids: torch.LongTensor | None = None,
                inputs_embeds: torch.Tensor | None = None, labels: torch.LongTensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs) -> MaskedLMOutput | tuple:
        out = self._run_body(dict(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, inputs_embeds=inputs_embeds, labels=labels, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=return_dict, kwargs=kwargs))
        logits, loss = logits_and_labelled_loss(  # (B, T, V); backward through the vocabulary only at masked tokens
            self.lm_head, out.last_hidden_state, labels, self.config.vocab_size, kwargs.get("num_items_in_batch"),
            skip_logits=kwargs.get("skip_logits"), training=self.training,  # no logits: a chunked loss (losses.py)
        )
        return self._output(carry_output(MaskedLMOutput, out, loss=loss, logits=logits), return_dict)


class ScratchBertWithHead(ScratchBertPreTrainedModel):
    """The base of BERT's fine-tuning heads: the body (with the pooler only for a head that reads it), dropout and a
    linear layer C → `num_outputs` (None: `config.num_labels`). A head's forward runs the body on its own arguments
    (`_run_body`) and carries the body's hidden states and attentions into its output."""

    add_pooling_layer = False
    num_outputs: int | None = None

    def __init__(self, config: ScratchBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = ScratchBertModel(config, add_pooling_layer=self.add_pooling_layer)
        p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(p)
        self.classifier = nn.Linear(config.hidden_size, self.num_outputs or config.num_labels)
        self.post_init()


class ScratchBertForSequenceClassification(ScratchBertWithHead):
    """Classification / regression from the pooled [CLS] vector: logits = W·dropout(pooler(h_[CLS])) + b (§4.1).
    `config.problem_type`: "single_label_classification" (cross-entropy), "multi_label_classification" (BCE-with-logits
    on multi-hot float labels) or "regression" (MSE); inferred from the labels when unset (HF)."""

    add_pooling_layer = True
    accepts_loss_kwargs = False  # the loss is a per-example mean: the Trainer divides by accumulation steps

    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.LongTensor | None = None, position_ids: torch.LongTensor | None = None,
                inputs_embeds: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs) -> SequenceClassifierOutput | tuple:
        out = self._run_body(dict(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, inputs_embeds=inputs_embeds, labels=labels, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=return_dict, kwargs=kwargs))
        logits = self.classifier(self.dropout(out.pooler_output))  # (B, num_labels)
        loss = sequence_classification_loss(logits, labels, self.config) if labels is not None else None
        return self._output(carry_output(SequenceClassifierOutput, out, loss=loss, logits=logits), return_dict)


class ScratchBertForTokenClassification(ScratchBertWithHead):
    """Tagging (NER, POS): one label per token, logits = W·dropout(h_t) + b; loss = cross-entropy, −100 ignored."""

    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.LongTensor | None = None, position_ids: torch.LongTensor | None = None,
                inputs_embeds: torch.Tensor | None = None, labels: torch.LongTensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs) -> TokenClassifierOutput | tuple:
        out = self._run_body(dict(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, inputs_embeds=inputs_embeds, labels=labels, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=return_dict, kwargs=kwargs))
        logits = self.classifier(self.dropout(out.last_hidden_state))  # (B, T, num_labels)
        loss = token_classification_loss(logits, labels, kwargs.get("num_items_in_batch")) if labels is not None else None
        return self._output(carry_output(TokenClassifierOutput, out, loss=loss, logits=logits), return_dict)


class ScratchBertForQuestionAnswering(ScratchBertWithHead):
    """Extractive QA: "a start vector S and an end vector E"; P(start = i) = softmax_i(S·h_i), likewise the end
    (§4.2). Returns start/end logits (B, T); `scratchformers.qa.answer_spans` turns them into answer text."""

    num_outputs = 2  # [S·h_t, E·h_t]
    accepts_loss_kwargs = False  # the loss is a per-example mean: the Trainer divides by accumulation steps

    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.LongTensor | None = None, position_ids: torch.LongTensor | None = None,
                inputs_embeds: torch.Tensor | None = None, start_positions: torch.LongTensor | None = None,
                end_positions: torch.LongTensor | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                **kwargs) -> QuestionAnsweringModelOutput | tuple:
        out = self._run_body(dict(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, inputs_embeds=inputs_embeds, start_positions=start_positions,
            end_positions=end_positions, output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            return_dict=return_dict, kwargs=kwargs))
        logits = self.classifier(out.last_hidden_state)  # (B, T, 2): [S·h_t, E·h_t]
        start_logits, end_logits = (x.squeeze(-1).contiguous() for x in logits.split(1, dim=-1))  # (B, T) each
        given = start_positions is not None or end_positions is not None
        loss = span_loss(start_logits, end_logits, start_positions, end_positions) if given else None
        fields = dict(loss=loss, start_logits=start_logits, end_logits=end_logits)
        return self._output(carry_output(QuestionAnsweringModelOutput, out, **fields), return_dict)


#: Our classes by the Auto class that loads each: the package registers them (`scratchformers.__init__`), and
#: `add_to_name_tables` puts them in transformers' own name tables, also in a remote-code process.
AUTO_CLASSES = {
    "AutoModel": ScratchBertModel,
    "AutoModelForMaskedLM": ScratchBertForMaskedLM,
    "AutoModelForSequenceClassification": ScratchBertForSequenceClassification,
    "AutoModelForTokenClassification": ScratchBertForTokenClassification,
    "AutoModelForQuestionAnswering": ScratchBertForQuestionAnswering,
}
add_to_name_tables(ScratchBertConfig.model_type, AUTO_CLASSES)
