"""Acting prompts, and the rule that grounds a generated response to an admissible command.

The acting prompt never holds knowledge by default: the policy plays from what it has learned. When
knowledge is given (acting with memory, or the consolidation teacher), it goes *before* the situation
text, framed as possibly incomplete experience (DESIGN.md §1).
"""

from __future__ import annotations

import re

SYSTEM_PROMPT = "You are playing a text adventure game. Read the situation and reply with exactly one command."

KNOWLEDGE_HEADER = "Experience you learned from earlier games (it may be incomplete):"

HISTORY_TURNS = 4
"""Earlier turns shown in the prompt. Bounds the prompt length, and so the prefill cost on CPU."""


def knowledge_block(items: list[str]) -> str:
    """The knowledge text given to an agent or a teacher; empty when there is none."""
    if not items:
        return ""
    return KNOWLEDGE_HEADER + "\n" + "\n".join(f"- {item}" for item in items)


def situation_text(objective: str, history: list[dict], observation: str, admissible: list[str]) -> str:
    """What the agent sees this turn: objective, recent turns, the observation and the valid commands."""
    lines = [f"Objective: {objective}"]
    recent = history[-HISTORY_TURNS:]
    if recent:
        lines.append("Recent turns:")
        for turn in recent:
            lines.append(f"> {turn['action']}\n{turn['feedback']}")
    lines.append(f"Now: {observation}")
    lines.append("Valid commands: " + ", ".join(admissible))
    lines.append("Your command:")
    return "\n".join(lines)


def acting_messages(situation: str, knowledge: list[str] = ()) -> list[dict]:
    block = knowledge_block(list(knowledge))
    user = f"{block}\n\n{situation}" if block else situation
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


_STRIP = re.compile(r"^[\s>*`'\"\-]*(?:command\s*:\s*)?|[\s.!`'\"*]*$", re.IGNORECASE)


def ground_command(response: str, admissible: list[str]) -> tuple[str, bool]:
    """Map a free response to a command: (command, valid).

    Rule: take the first non-empty line, lower-case it, strip quotes, '>' and a 'Command:' label.
    1. If it equals an admissible command, take it.
    2. Else, if admissible commands occur inside it, take the longest one (most specific).
    3. Else the response is invalid: it is sent to the game as written (which then does nothing useful)
       and counted as invalid; it is never silently replaced.
    """
    first = next((line for line in response.splitlines() if line.strip()), "")
    text = _STRIP.sub("", first.lower())[:200]
    by_lower = {c.lower(): c for c in admissible}
    if text in by_lower:
        return by_lower[text], True
    inside = [c for c in admissible if re.search(rf"\b{re.escape(c.lower())}\b", text)]
    if inside:
        return max(inside, key=len), True
    return text or "look", False
