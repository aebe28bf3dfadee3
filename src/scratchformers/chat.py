"""Chat with a causal LM: the tokenizer's chat template, streamed replies, one conversation kept across turns.

`ChatSession` is what the `scratchformers chat` command runs, usable on its own (a notebook, a test)::

    session = ChatSession(model, tokenizer, system="You are terse.", max_new_tokens=64, do_sample=False)
    session.reply("Name a colour.", streamer=TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True))
    session.reply("Another one.")        # the prompt now holds the first question and answer too
    session.reset()                      # back to the system prompt alone

Each turn renders the whole conversation with the chat template (`apply_chat_template(..., add_generation_prompt=
True)`), as transformers' own `transformers chat` command and the chat pipelines do, generates, decodes only the new
tokens (special tokens skipped) and appends that text as the assistant's message. Any streamer `generate()` takes
(`TextStreamer`, `TextIteratorStreamer`) shows the reply as it is produced.
"""

from __future__ import annotations

from typing import Any

import torch

USER, ASSISTANT, SYSTEM = "user", "assistant", "system"


def _token_ids(value: Any) -> list[int]:
    """A generation config's `eos_token_id` (None, an int or a list) as a list."""
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def render_chat(tokenizer: Any, messages: list[dict[str, str]], chat_template: str | None = None
                ) -> dict[str, torch.Tensor]:
    """`input_ids` and `attention_mask` (each (1, T)) of `messages` in the chat template (`chat_template`, else the
    tokenizer's), ending with the assistant's generation prompt (`add_generation_prompt=True`).

    Raises ValueError when there is no template, or the template cannot render the messages (a Jinja syntax error,
    or the template's own `raise_exception`, e.g. a template that has no system role)."""
    import jinja2

    if chat_template is None and not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "this tokenizer has no chat template: pass one (chat_template=... here, `--chat-template FILE` on the "
            "command line: a Jinja file such as a model's chat_template.jinja), or set tokenizer.chat_template and "
            "save the tokenizer"
        )
    try:
        encoded = tokenizer.apply_chat_template(
            messages, chat_template=chat_template, add_generation_prompt=True, tokenize=True, return_dict=True,
            return_tensors="pt",
        )
    except jinja2.TemplateError as err:  # syntax errors and the templates' own raise_exception(...)
        raise ValueError(f"the chat template cannot render this conversation: {err}") from err
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


def check_chat_template(tokenizer: Any, chat_template: str | None = None, system: str | None = None) -> None:
    """Render a one-message conversation (after the `system` prompt, if any) so that a missing or broken template
    fails before a model is loaded; raises ValueError as `render_chat` does."""
    messages = [{"role": SYSTEM, "content": system}] if system else []
    render_chat(tokenizer, [*messages, {"role": USER, "content": "Hello."}], chat_template)


class ChatSession:
    """One conversation with a causal LM, rendered with a chat template.

    Args:
        model: a causal LM with `generate()` (ours or any transformers model).
        tokenizer: its tokenizer; its `chat_template` is used unless `chat_template` is given.
        system: an optional system prompt, kept at the head of the conversation (also across `reset()`).
        chat_template: a Jinja template string to use instead of the tokenizer's own.
        **generate_kwargs: passed to every `model.generate()` call (e.g. `max_new_tokens`, `do_sample`,
            `temperature`). Generation also stops at the tokenizer's end-of-sequence token, which is where chat
            templates end a turn, even when the model's generation config names another one.

    Raises:
        ValueError: no chat template (neither the tokenizer's nor `chat_template`), or a template that fails to
            render a conversation (a Jinja syntax error, or one that refuses the system role when `system` is set).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        system: str | None = None,
        chat_template: str | None = None,
        **generate_kwargs: Any,
    ):
        check_chat_template(tokenizer, chat_template, system)  # a missing or broken template fails here, not later
        self.model, self.tokenizer, self.system, self.chat_template = model, tokenizer, system, chat_template
        self.generate_kwargs = dict(generate_kwargs)
        saved = getattr(model, "generation_config", None)
        stops = _token_ids(self.generate_kwargs.get("eos_token_id", getattr(saved, "eos_token_id", None)))
        if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in stops:
            self.generate_kwargs["eos_token_id"] = [*stops, tokenizer.eos_token_id]
        if getattr(saved, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
            self.generate_kwargs.setdefault("pad_token_id", tokenizer.pad_token_id)
        self.messages: list[dict[str, str]] = []
        self.reset()

    def reset(self) -> None:
        """Forget the conversation (the system prompt stays)."""
        self.messages = [{"role": SYSTEM, "content": self.system}] if self.system else []

    def render(self, messages: list[dict[str, str]]) -> dict[str, torch.Tensor]:
        """`render_chat` with this session's tokenizer and template."""
        return render_chat(self.tokenizer, messages, self.chat_template)

    def _context_length(self) -> int | None:
        """The model's context (`max_position_embeddings`), if its config names one."""
        return getattr(getattr(self.model, "config", None), "max_position_embeddings", None)

    def prompt(self) -> dict[str, torch.Tensor]:
        """The next turn's model inputs: the conversation so far, rendered. When it and `max_new_tokens` do not fit
        the model's context, the oldest exchanges (after the system prompt) are dropped from `messages` until they
        do; ValueError if even the last message alone does not fit."""
        limit = self._context_length()
        room = self.generate_kwargs.get("max_new_tokens") or 0
        while True:
            inputs = self.render(self.messages)
            length = inputs["input_ids"].shape[1]
            if limit is None or length + room <= limit:
                return inputs
            first = 1 if self.messages and self.messages[0]["role"] == SYSTEM else 0
            if len(self.messages) - first <= 1:
                raise ValueError(
                    f"the message is too long for this model: the prompt is {length} tokens and {room} new tokens "
                    f"would follow, but the model's context is {limit} tokens"
                )
            del self.messages[first : first + 2]  # the oldest user message and the answer to it

    def reply(self, text: str, streamer: Any = None) -> str:
        """Add the user's `text`, generate the assistant's answer (shown through `streamer` as it is produced, if
        given), keep it in the conversation and return it (new tokens only, special tokens skipped).

        Raises ValueError for an empty message or one that does not fit the context (the conversation is then
        left as it was)."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("the message is empty; type some text")
        kept = list(self.messages)
        self.messages.append({"role": USER, "content": text})
        try:
            inputs = self.prompt()
        except ValueError:
            self.messages = kept
            raise
        device = getattr(self.model, "device", None)
        if device is not None:
            inputs = {name: tensor.to(device) for name, tensor in inputs.items()}
        with torch.no_grad():
            output = self.model.generate(**inputs, **self.generate_kwargs, streamer=streamer)
        answer = self.tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        self.messages.append({"role": ASSISTANT, "content": answer})
        return answer
