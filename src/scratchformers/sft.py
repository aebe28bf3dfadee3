"""Instruction fine-tuning (SFT) on chats: the chat template, assistant-only labels, LoRA, and the two measurements.

A chat is the usual ``messages`` list (``[{"role": "system" | "user" | "assistant", "content": str}, ...]``, the format
of TRL and the Hub's chat datasets). It is rendered with the tokenizer's chat template and trained with the loss on the
assistant's tokens only: every other label is -100. Which tokens are the assistant's is read from the rendering:

- a template with ``{% generation %}`` … ``{% endgeneration %}`` markers (ours, TRL's ``*_training.jinja``) marks them
  itself: ``apply_chat_template(..., return_assistant_tokens_mask=True)``;
- any other template is rendered once per assistant turn on growing prefixes of the chat: the text added by the turn
  after the prompt ``render(messages[:i], add_generation_prompt=True)`` up to ``render(messages[:i+1])`` (without
  trailing whitespace) is the assistant's, so its content and the end-of-turn tokens the template writes are learned. This needs a template whose
  rendering of a prefix is a prefix of the rendering of the whole chat (true of ChatML, Llama 3, Mistral; not of
  templates that rewrite earlier turns, e.g. Qwen3's removal of past reasoning): otherwise a ValueError says so.

Both give character spans, mapped to tokens with the fast tokenizer's offsets, so the labels never depend on how BPE
would split a prefix on its own.

A tokenizer without a chat template (every ``scratchformers train clm`` checkpoint) gets ``CHATML_TEMPLATE``: the
ChatML format of Qwen2 and SmolLM2, with ``<|im_start|>`` / ``<|im_end|>`` added as special tokens and the embeddings
resized, as TRL's ``setup_chat_format`` / ``clone_chat_template`` do. The assistant learns to end its turn with
``<|im_end|>``, which is then also an end-of-sequence token of the saved generation config.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

ROLES = ("system", "user", "assistant")
CHATML_TOKENS = ("<|im_start|>", "<|im_end|>")
# ChatML (OpenAI; Qwen2, SmolLM2) with TRL-style {% generation %} markers around what the assistant writes: its content
# and the <|im_end|> that ends its turn (the newline after it belongs to the template, not to the answer).
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\n' }}{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)
# the linear layers of our blocks (attention.MultiHeadAttention, layers.FeedForward): LoRA's default targets
LORA_TARGET_MODULES = ("qkv_proj", "q_proj", "kv_proj", "out_proj", "fc_in", "fc_out")


def check_chat(messages: Any, where: str) -> list[dict[str, str]]:
    """``messages`` as a list of ``{"role", "content"}`` dicts, checked: roles in ``ROLES``, string contents, at least
    one assistant turn. ``where`` names the row in the error (e.g. ``"chats.jsonl line 7"``). Raises ValueError."""
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: 'messages' must be a non-empty list of {{'role', 'content'}} objects, got "
                         f"{type(messages).__name__}")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in ROLES:
            role = message.get("role") if isinstance(message, Mapping) else message
            raise ValueError(f"{where}: message {i} has role {role!r}; allowed: {', '.join(ROLES)}")
        if not isinstance(message.get("content"), str):
            raise ValueError(f"{where}: message {i} ({message['role']}) needs a string 'content'")
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError(f"{where}: no assistant message (nothing to learn from)")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def read_json_lines(path: str | os.PathLike, expected: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each JSON object of a JSON-lines file with where it is (``"FILE line N"``), blank lines skipped. ``expected``
    describes a row for the errors (e.g. ``'{"messages": [...]}'``). Raises ValueError naming the file and line of a
    line that is not a JSON object, FileNotFoundError for a missing file."""
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where} is not JSON ({err.msg}); each line must be {expected}") from None
            if not isinstance(row, dict):
                raise ValueError(f"{where} is not a JSON object; each line must be {expected}")
            yield where, row


def read_chats(path: str | os.PathLike) -> list[list[dict[str, str]]]:
    """The chats of a JSON-lines file, one ``{"messages": [...]}`` per line, each checked by ``check_chat`` (blank
    lines skipped). Raises ValueError naming the file and line of the first bad row."""
    chats = []
    expected = '{"messages": [...]}'
    for where, row in read_json_lines(path, expected):
        if "messages" not in row:
            raise ValueError(f"{where} has no 'messages' field; each line must be {expected}")
        chats.append(check_chat(row["messages"], where))
    if not chats:
        raise ValueError(f"{path} holds no chats")
    return chats


# transformers' note on every resize that grows the embeddings with mean resizing (its default, which we choose on
# purpose: new rows drawn around the old rows' mean and covariance); it advises `mean_resizing=False`, which is not
# what we want.
MEAN_RESIZING_NOTE = "The new embeddings will be initialized from a multivariate normal distribution"
# peft (0.21) reads `model.is_gradient_checkpointing` when it wraps a model (PeftModel.__init__), a property transformers
# 5.25 deprecated in favour of `is_activation_checkpointing`: a FutureWarning about peft's code, not the user's.
PEFT_DEPRECATED_ALIAS = "`is_gradient_checkpointing` is deprecated"


class _DropMessage(logging.Filter):
    """A logging filter dropping records whose message starts with ``prefix``."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.prefix)


def resize_embeddings(model: Any, size: int) -> None:
    """``model.resize_token_embeddings(size)`` with transformers' mean resizing (new rows drawn from the old rows'
    mean and covariance), without its note advising ``mean_resizing=False`` (``MEAN_RESIZING_NOTE``): the choice is
    deliberate and the user can do nothing about the note."""
    log = logging.getLogger("transformers.modeling_utils")
    quiet = _DropMessage(MEAN_RESIZING_NOTE)
    log.addFilter(quiet)
    try:
        model.resize_token_embeddings(size)
    finally:
        log.removeFilter(quiet)


@contextlib.contextmanager
def peft_without_deprecation_noise() -> Iterator[None]:
    """While peft wraps or loads a model: no FutureWarning for peft's own use of transformers' deprecated
    ``is_gradient_checkpointing`` (``PEFT_DEPRECATED_ALIAS``). Every other warning is shown as usual."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PEFT_DEPRECATED_ALIAS, category=FutureWarning)
        yield


def has_generation_markers(template: str | None) -> bool:
    """Whether a chat template marks the assistant's text with ``{% generation %}`` (Jinja whitespace control too)."""
    return template is not None and any(tag in template for tag in ("{% generation %}", "{%- generation %}",
                                                                     "{% generation -%}", "{%- generation -%}"))


def ensure_chat_template(tokenizer: Any, model: Any | None = None) -> bool:
    """Give ``tokenizer`` ``CHATML_TEMPLATE`` if it has no chat template, adding ``<|im_start|>``/``<|im_end|>`` as
    special tokens and resizing ``model``'s embeddings (mean of the old rows, transformers' default) to fit. A pad
    token is set (the end-of-sequence token) when there is none. Returns whether the template was added. The model's
    generation config then also stops at ``<|im_end|>``."""
    added = tokenizer.chat_template is None
    if added:
        tokenizer.add_tokens(list(CHATML_TOKENS), special_tokens=True)  # (skipped by decode(skip_special_tokens))
        tokenizer.chat_template = CHATML_TEMPLATE
        if model is not None and model.get_input_embeddings().num_embeddings < len(tokenizer):
            resize_embeddings(model, len(tokenizer))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model is not None:
        stop = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        if "<|im_end|>" in tokenizer.get_vocab():
            stop.append(tokenizer.convert_tokens_to_ids("<|im_end|>"))
        if stop and getattr(model, "generation_config", None) is not None:
            model.generation_config.eos_token_id = list(dict.fromkeys(stop))
            model.generation_config.pad_token_id = tokenizer.pad_token_id
    return added


def _render(tokenizer: Any, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)


def assistant_spans(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered chat and the character spans [start, end) of the assistant's text in it, found by rendering
    growing prefixes (see the module docstring). ValueError when the template does not render prefixes as prefixes."""
    text = _render(tokenizer, messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = _render(tokenizer, messages[:i], add_generation_prompt=True) if i else _render(tokenizer, [], True)
        upto = _render(tokenizer, messages[: i + 1])
        if not (text.startswith(upto) and upto.startswith(prompt)):
            raise ValueError(
                "this chat template renders a conversation's first turns differently from the whole conversation, so "
                "the assistant's tokens cannot be found by rendering prefixes; use a template with {% generation %} "
                "markers (e.g. TRL's training templates) or scratchformers.sft.CHATML_TEMPLATE"
            )
        # whitespace after the turn's last token is the template's layout (ChatML's newline), not the answer: the
        # same tokens as the {% generation %} markers of CHATML_TEMPLATE
        spans.append((len(prompt), max(len(prompt), len(upto.rstrip()))))
    return text, spans


def tokenize_chat(tokenizer: Any, messages: Sequence[Mapping[str, str]], max_length: int | None = None
                  ) -> dict[str, list[int]]:
    """``input_ids`` of the rendered chat and ``labels``: the token id where the token is the assistant's, else -100.

    Templates with ``{% generation %}`` markers give the mask through ``return_assistant_tokens_mask=True``; others
    through ``assistant_spans`` and the tokenizer's offsets. The rendered text already holds the template's special
    tokens, so none are added. Truncated to ``max_length`` tokens (keeping the start). Needs a fast tokenizer.
    """
    if has_generation_markers(tokenizer.chat_template):
        encoded = tokenizer.apply_chat_template(list(messages), tokenize=True, return_dict=True,
                                                return_assistant_tokens_mask=True)
        ids, mask = list(encoded["input_ids"]), list(encoded["assistant_masks"])
    else:
        text, spans = assistant_spans(tokenizer, messages)
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(encoded["input_ids"])
        # a token is the assistant's when it starts inside an assistant span (BPE never merges across the
        # special tokens that open and close a turn, so tokens do not straddle a span's edges in practice)
        mask = [int(any(a <= s < b for a, b in spans) and e > s) for s, e in encoded["offset_mapping"]]
    if max_length is not None:
        ids, mask = ids[:max_length], mask[:max_length]
    return {"input_ids": ids, "labels": [t if m else -100 for t, m in zip(ids, mask)]}


def tokenize_chats(dataset: Any, tokenizer: Any, max_length: int, num_proc: int | None = None) -> Any:
    """Map a ``datasets`` Dataset/DatasetDict with a ``messages`` column to ``input_ids``/``labels`` (``tokenize_chat``),
    dropping chats whose assistant tokens were all cut off by ``max_length``."""
    columns = next(iter(dataset.values())).column_names if hasattr(dataset, "values") else dataset.column_names
    tokenized = dataset.map(lambda row: tokenize_chat(tokenizer, row["messages"], max_length), num_proc=num_proc,
                            remove_columns=columns, desc="Rendering and tokenizing chats")
    return tokenized.filter(lambda row: any(label != -100 for label in row["labels"][1:]), num_proc=num_proc,
                            desc="Dropping chats with no assistant token left")


@torch.no_grad()
def assistant_token_loss(model: Any, dataset: Any, collator: Any, batch_size: int = 8) -> float:
    """The mean next-token cross-entropy over every assistant token of ``dataset`` (rows of ``input_ids``/``labels``):
    Σ −log p(yₜ | y<ₜ) / (number of assistant targets), summed over batches (not an average of batch means, which
    would weigh a batch of short answers like one of long ones)."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(dataset), batch_size):
        batch = collator([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        batch = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        labels = batch.pop("labels")
        logits = model(**batch).logits.float()
        targets = labels[:, 1:]
        losses = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), targets, ignore_index=-100,
                                                   reduction="sum")
        total += losses.item()
        count += int((targets != -100).sum())
    return total / count if count else math.nan


@torch.no_grad()
def generate_answers(model: Any, tokenizer: Any, chats: Sequence[Sequence[Mapping[str, str]]],
                     max_new_tokens: int = 32, batch_size: int = 16) -> list[str]:
    """Greedy answers to each chat's last assistant turn, prompted with every message before it (left-padded
    batches; stops at the generation config's end-of-sequence tokens, e.g. ``<|im_end|>``). A prompt longer than
    the model's positions minus ``max_new_tokens`` keeps its last tokens. ValueError when no prompt fits."""
    model.eval()
    device = next(model.parameters()).device
    prompts = []
    for chat in chats:
        last = max(i for i, m in enumerate(chat) if m["role"] == "assistant")
        prompts.append(_render(tokenizer, chat[:last], add_generation_prompt=True))
    positions = getattr(model.config, "max_position_embeddings", None)
    room = positions - max_new_tokens if positions else None  # a longer prompt keeps its end (the question)
    if room is not None and room < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in this model's {positions} "
                         "positions")
    saved = tokenizer.padding_side, tokenizer.truncation_side
    tokenizer.padding_side = tokenizer.truncation_side = "left"
    answers = []
    try:
        for start in range(0, len(prompts), batch_size):
            inputs = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True,
                               truncation=room is not None, max_length=room, add_special_tokens=False).to(device)
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
            answers += tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side, tokenizer.truncation_side = saved
    return [a.strip() for a in answers]


def exact_match(model: Any, tokenizer: Any, chats: Sequence[Sequence[Mapping[str, str]]], max_new_tokens: int = 32,
                batch_size: int = 16) -> float:
    """The fraction of chats whose greedy answer (``generate_answers``) equals the reference last assistant message,
    both stripped of surrounding whitespace."""
    answers = generate_answers(model, tokenizer, chats, max_new_tokens, batch_size)
    gold = [[m for m in chat if m["role"] == "assistant"][-1]["content"].strip() for chat in chats]
    return sum(a == g for a, g in zip(answers, gold)) / len(gold) if gold else math.nan


def lora_config(model: Any, r: int, alpha: float, dropout: float, target_modules: Sequence[str],
                trainable_token_ids: Sequence[int] = ()) -> Any:
    """peft's ``LoraConfig`` for LoRA adapters (ΔW = (α/r)·B·A, Hu et al. 2021) on ``model``'s linear layers named
    ``target_modules`` (names it lacks are skipped), plus the embedding rows of ``trainable_token_ids`` (e.g. the chat
    tokens just added) through peft's trainable tokens. ValueError when no module has one of those names."""
    from peft import LoraConfig

    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    found = [t for t in target_modules if t in names]
    if not found:
        raise ValueError(f"--lora_target_modules {','.join(target_modules)} names no linear layer of this model; "
                         f"its linear layers: {', '.join(sorted(names))}")
    embedding = next(name for name, module in model.named_modules() if module is model.get_input_embeddings())
    return LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=found, task_type="CAUSAL_LM",
        trainable_token_indices={embedding.rsplit(".", 1)[-1]: list(trainable_token_ids)} if trainable_token_ids
        else None,
    )


def lora_model(model: Any, r: int, alpha: float, dropout: float, target_modules: Sequence[str],
               trainable_token_ids: Sequence[int] = ()) -> Any:
    """``model`` wrapped by peft with the adapters of ``lora_config(...)``; only they (and the embedding rows of
    ``trainable_token_ids``) are trained. ValueError when no module has one of ``target_modules``' names."""
    from peft import get_peft_model

    config = lora_config(model, r, alpha, dropout, target_modules, trainable_token_ids)
    with peft_without_deprecation_noise():
        return get_peft_model(model, config)


def load_adapter(folder: str | os.PathLike, base: str | os.PathLike | None = None) -> Any:
    """A LoRA adapter saved by ``scratchformers train sft --lora_r N`` (without ``--merge_lora``) on its base model:
    the base checkpoint named in ``adapter_config.json`` (or ``base``), its embeddings resized to the saved
    tokenizer when chat tokens were added, then ``PeftModel.from_pretrained``."""
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    base = base or PeftConfig.from_pretrained(str(folder)).base_model_name_or_path
    model = AutoModelForCausalLM.from_pretrained(base, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        resize_embeddings(model, len(tokenizer))  # (rows the adapter's saved embedding layer then replaces)
    if (folder / "generation_config.json").is_file():  # the fine-tuned one: it also stops at <|im_end|>
        from transformers import GenerationConfig

        model.generation_config = GenerationConfig.from_pretrained(str(folder))
    with peft_without_deprecation_noise():
        return PeftModel.from_pretrained(model, str(folder))


def adapter_base(folder: str | os.PathLike) -> str | None:
    """The base checkpoint named in ``folder/adapter_config.json`` when ``folder`` holds a LoRA adapter and no model
    of its own (``train sft --lora_r N`` without ``--merge_lora``), else None. Reads JSON only: no torch, no peft."""
    folder = Path(folder)
    path = folder / "adapter_config.json"
    if (folder / "config.json").is_file() or not path.is_file():
        return None
    base = json.loads(path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{path} names no base model (base_model_name_or_path); load it with "
                         "scratchformers.sft.load_adapter(folder, base=...)")
    return str(base)


def load_causal_lm(checkpoint: str | os.PathLike, quantization_config: Any = None) -> Any:
    """The causal LM in ``checkpoint``: a model folder through ``AutoModelForCausalLM`` (our types registered), or a
    LoRA adapter folder loaded on its base (``load_adapter``) and merged (W + (α/r)·B·A) into a plain model, so
    ``evaluate``, ``generate`` and ``chat`` take either. In eval mode. ``quantization_config`` (e.g.
    ``fast_decoding.quantization_config("int8-weight-only")``) goes to ``from_pretrained``; ValueError for an adapter
    folder (merge it first: ``train sft --merge_lora`` writes a plain checkpoint)."""
    from transformers import AutoModelForCausalLM

    if adapter_base(checkpoint) is not None:
        if quantization_config is not None:
            raise ValueError(f"{checkpoint} is a LoRA adapter: quantize a plain checkpoint (`scratchformers train sft "
                             "... --merge_lora` writes one)")
        return load_adapter(checkpoint).merge_and_unload().eval()
    extra = {"quantization_config": quantization_config} if quantization_config is not None else {}
    return AutoModelForCausalLM.from_pretrained(str(checkpoint), trust_remote_code=True, **extra).eval()
