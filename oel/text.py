"""Untrusted text (from games, models, imports) made safe to store, print and put in a prompt."""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Chat-template special tokens (<|im_start|>, <|eot_id|>, ...): inside stored text they would be tokenised as
# real control tokens in a prompt and could forge a turn.
_SPECIAL = re.compile(r"<\|[^|<>\s]{0,40}\|>")


def sanitize(text: str, max_chars: int) -> str:
    """Strip escape sequences, control characters and chat-template special tokens, collapse whitespace,
    cap the length."""
    text = _SPECIAL.sub(" ", _CONTROL.sub(" ", _ANSI.sub("", text)))
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > max_chars:
        text = text[: max_chars - 1].rsplit(" ", 1)[0] + "…"
    return text
