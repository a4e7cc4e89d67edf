"""Reflection: turn one finished trajectory into 1-2 knowledge items, using the acting policy itself.

The model's answer is prefilled with the marker and the start of a rule (`PREFILL`), so even a small
model starts in the right format. The
parser then keeps only clean marker lines: malformed output is dropped, never fatal. Items are untrusted
game-derived text: control characters and escape sequences are stripped and the length is capped.
"""

from __future__ import annotations

import re

from memory.prompts import MARKER, PREFILL, REFLECTION_SYSTEM, REFLECTION_USER

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
MAX_TURNS_SHOWN = 15
MIN_ITEM_CHARS = 12


def sanitize(text: str, max_chars: int) -> str:
    """Strip escape sequences and control characters, collapse whitespace, cap the length."""
    text = _CONTROL.sub(" ", _ANSI.sub("", text))
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > max_chars:
        text = text[: max_chars - 1].rsplit(" ", 1)[0] + "…"
    return text


def is_degenerate(text: str) -> bool:
    """A repetition loop ("the game of the game of the game ..."): small models often fall into one.

    Measured on the 135M model's reflections: loops repeat a 2-4 word phrase; real lessons rarely reuse
    more than a third of their word trigrams.
    """
    words = re.findall(r"[a-z']+", text.lower())
    trigrams = list(zip(words, words[1:], words[2:]))
    return len(trigrams) >= 6 and len(set(trigrams)) / len(trigrams) < 0.67


def reflection_messages(env: str, objective: str, turns: list[dict], outcome: str, reason: str) -> list[dict]:
    shown = turns[-MAX_TURNS_SHOWN:]
    lines = []
    for t in shown:
        gain = f" (score +{t['reward']})" if t.get("reward", 0) > 0 else ""
        lines.append(f"> {t['action']}{gain} -> {sanitize(t['feedback'], 100)}")
    scoring = [t["action"] for t in turns if t.get("reward", 0) > 0]
    # Small models need the signal spelled out: which commands made progress (DESIGN.md §2).
    score_hint = (f"Commands that raised the score: {', '.join(scoring)}." if scoring
                  else "No command raised the score.")
    user = REFLECTION_USER.format(env=env, objective=sanitize(objective, 400), turns="\n".join(lines),
                                  outcome=outcome, reason=reason, score_hint=score_hint, marker=MARKER)
    return [{"role": "system", "content": REFLECTION_SYSTEM}, {"role": "user", "content": user}]


def parse_items(text: str, max_items: int = 2, max_chars: int = 300) -> list[str]:
    """Every 'KNOWLEDGE: ...' line, cleaned. Junk, too-short or repeated lines are dropped."""
    seen = set()
    items = []
    for match in re.finditer(rf"{re.escape(MARKER)}(.*)", text, flags=re.IGNORECASE):
        item = sanitize(match.group(1), max_chars).strip(" -*\"'")
        if len(item) < MIN_ITEM_CHARS or not re.search(r"[a-zA-Z]{3}", item) or item.lower() in seen:
            continue
        if is_degenerate(item):
            continue
        seen.add(item.lower())
        items.append(item)
        if len(items) == max_items:
            break
    return items


def make_reflector(policy, memory, cfg, created_by: str):
    """The reflect step for the acting graph: the acting policy writes items into `memory`.

    Returns a callable (state, context) -> ids of items stored or merged.
    """

    def reflect(state, context) -> list[str]:
        env = context.env.family
        messages = reflection_messages(env, state.objective, state.turns, state.outcome, state.reason)
        [(text, _)] = policy.generate([policy.render(messages, prefill=PREFILL)], cfg.reflection_max_new_tokens,
                                      temperature=0.7)
        items = parse_items(PREFILL + text, cfg.max_items_per_episode, cfg.max_item_chars)
        ids = []
        for item in items:
            item_id, _ = memory.add(item, env=env, source=context.extra.get("episode_id", ""), outcome=state.outcome,
                                    round=context.extra.get("round", 0), created_by=created_by,
                                    merge_distance=cfg.merge_distance)
            ids.append(item_id)
        return ids

    return reflect
