"""Rendering a chat into the exact text a model sees. One function for acting, reflection, the teacher
and both trainers, so the student trains on exactly the prompt it acts with (thinking switch included)."""

from __future__ import annotations

from oel.errors import OELError


def supports_thinking(tokenizer) -> bool:
    return "enable_thinking" in (tokenizer.chat_template or "")


def template_switches(tokenizer, thinking: bool, name: str = "the model") -> dict:
    """The chat-template arguments of every rendering: acting, reflection, the teacher and both trainers
    (TRL's SDFT takes them as `chat_template_kwargs`), so the student trains on exactly what it acts with.
    A template with a thinking switch thinks by default, so the switch is always set, either way."""
    if supports_thinking(tokenizer):
        return {"enable_thinking": thinking}
    if thinking:
        raise OELError(f"{name}'s chat template has no thinking mode (enable_thinking); "
                       "set thinking = false, or use a model that has one")
    return {}


LINE_END = "\n"
"""Where a one-line response ends (`OELConfig.one_line`): acting reads only a response's first line."""


def line_end_ids(tokenizer) -> list[int]:
    """Every token whose text holds a line break: used as end-of-response tokens where a generator takes no
    stop string (TRL's SDFT sampling), so the response ends where the stop string `LINE_END` would end it."""
    ids = getattr(tokenizer, "_oel_line_end_ids", None)
    if ids is None:
        vocab = range(len(tokenizer))
        ids = [i for i, text in zip(vocab, tokenizer.batch_decode([[i] for i in vocab])) if LINE_END in text]
        tokenizer._oel_line_end_ids = ids  # the vocabulary never changes: decode it once
    return ids


def response_stop(one_line: bool, thinking: bool) -> list[str] | None:
    """Stop strings of a generate-mode response: at the first line break when `one_line`, but never while a
    model thinks (its <think> block spans lines, and the command comes after it)."""
    return [LINE_END] if one_line and not thinking else None


def render_prompt(tokenizer, messages: list[dict], prefill: str = "", thinking: bool = False,
                  name: str = "the model") -> str:
    """The exact text the model sees: the chat template plus an optional start of the answer.

    `thinking` lets a model whose template supports it reason before answering (see `strip_thinking`).
    Choose mode never thinks: it scores the commands right after the prompt.
    """
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False,
                                         **template_switches(tokenizer, thinking, name)) + prefill


def cut_at_stop(text: str, stop: list[str] | None) -> str:
    """`text` up to the first of the `stop` strings (all of it if none occurs)."""
    cuts = [text.find(s) for s in stop or [] if s and s in text]
    return text[:min(cuts)] if cuts else text
