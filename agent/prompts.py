"""Acting prompts, and the rule that grounds a generated response to an admissible command.

The acting prompt never holds knowledge by default: the policy plays from what it has learned. When
knowledge is given (acting with memory, or the consolidation teacher), it goes *before* the situation
text, framed as possibly incomplete experience (DESIGN.md §1).
"""

from __future__ import annotations

import re

SYSTEM_PROMPT = "You are playing a text adventure game. Read the situation and reply with exactly one command."

KNOWLEDGE_HEADER = "Experience you learned from earlier games (it may be incomplete):"

KNOWLEDGE_TEMPLATE = "{privileged_context}\n\n{prompt}"
"""Where knowledge goes in the last user message: before the situation. In the form of TRL SDFT's
`teacher_prompt_template`, so acting with memory, the consolidation teacher and TRL compose it alike. (After the
situation the teacher read it much worse, even though that would let utility share the situation's encoding:
docs/RESULTS.md, "Where the knowledge goes in the teacher's prompt".)"""

HISTORY_TURNS = 4
"""Earlier turns shown in the prompt: at least this many (when there are), at most twice as many minus one.
Bounds the prompt length, and so the prefill cost on CPU. The window moves in blocks of this size rather
than one turn at a time, so that between two moves a prompt mostly extends the previous one and choose mode
reuses the previous turn's KV cache (`agent.scoring.TurnCache`). When the window moves (every HISTORY_TURNS
turns, once a game is 2*HISTORY_TURNS turns long) the prompt is encoded afresh: that is the cost of the bound.

Two formats (`OELConfig.acting_prompt`):
- `chat`: the episode as a multi-turn chat. The first user message is the situation (objective, what the
  agent sees, the valid commands); each command is an assistant turn; each feedback with the commands then
  valid is a user turn. Between window moves a prompt only grows, so the cache covers everything but the
  newest turn.
- `transcript`: one user message holding the objective, the earlier turns as a transcript and the current
  valid commands. The valid-commands line at its end changes every move, so the tokens after the previous
  transcript are encoded again. The default: the embedded model plays better with it (docs/RESULTS.md)."""


def knowledge_block(items: list[str]) -> str:
    """The knowledge text given to an agent or a teacher; empty when there is none."""
    if not items:
        return ""
    return KNOWLEDGE_HEADER + "\n" + "\n".join(f"- {item}" for item in items)


def history_start(turns: int) -> int:
    """Index of the first earlier turn shown: 0 until there are 2*HISTORY_TURNS turns, then a multiple of it."""
    return max(0, turns - HISTORY_TURNS) // HISTORY_TURNS * HISTORY_TURNS


def situation_text(objective: str, history: list[dict], observation: str, admissible: list[str]) -> str:
    """What the agent sees this turn: objective, recent turns as a transcript, the valid commands.

    The last turn's feedback is the current observation, so it is not repeated; an observation that differs
    from it (or the first one, before any turn) is shown as "Now:".
    """
    lines = [f"Objective: {objective}"]
    recent = history[history_start(len(history)):]
    for turn in recent:
        lines.append(f"> {turn['action']}\n{turn['feedback']}")
    if not recent or recent[-1]["feedback"] != observation:
        lines.append(f"Now: {observation}")
    lines.append("Valid commands: " + ", ".join(admissible))
    lines.append("Your command:")
    return "\n".join(lines)


def _ask(admissible: list[str]) -> str:
    return "Valid commands: " + ", ".join(admissible) + "\nYour command:"


def chat_messages(objective: str, start: str, history: list[dict], observation: str,
                  admissible: list[str]) -> list[dict]:
    """The episode as a chat (the `chat` format above), with the same window of earlier turns as the
    transcript. `start` is the game's first observation; each turn holds the commands that were valid when it
    was chosen (`admissible`), so an earlier user message never changes when the episode goes on."""
    first = history_start(len(history))
    shown = history[first:]
    if not shown:
        seen, valid = observation, admissible
    else:
        seen, valid = history[first - 1]["feedback"] if first else start, shown[0].get("admissible", [])
    messages = [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": f"Objective: {objective}\nNow: {seen}\n{_ask(valid)}"}]
    for n, turn in enumerate(shown):
        valid = shown[n + 1].get("admissible", []) if n + 1 < len(shown) else admissible
        feedback = turn["feedback"] if n + 1 < len(shown) else observation
        messages += [{"role": "assistant", "content": turn["action"]},
                     {"role": "user", "content": f"{feedback}\n{_ask(valid)}"}]
    return messages


def prompt_messages(style: str, objective: str, start: str, history: list[dict], observation: str,
                    admissible: list[str]) -> list[dict]:
    """The acting prompt in the configured format, without knowledge (`with_knowledge` adds it)."""
    if style == "chat":
        return chat_messages(objective, start, history, observation, admissible)
    return acting_messages(situation_text(objective, history, observation, admissible))


def with_context(messages: list[dict], privileged_context: str, template: str = KNOWLEDGE_TEMPLATE) -> list[dict]:
    """The prompt with a context put before the situation, in the last user message, exactly as TRL's SDFT
    composes its teacher prompt: the consolidation teacher's prompt (an empty context still fills the template)."""
    last = messages[-1]
    return messages[:-1] + [{**last, "content": template.format(prompt=last["content"], privileged_context=privileged_context)}]


def with_knowledge(messages: list[dict], knowledge: list[str]) -> list[dict]:
    """The prompt with the knowledge put before the situation (`with_context`), as acting with memory puts it;
    unchanged when there is none."""
    block = knowledge_block(list(knowledge))
    return with_context(messages, block) if block else messages


def retrieval_query(messages: list[dict]) -> str:
    """The text memory is searched with for a prompt: every user message, so the objective and the recent
    turns count in either format (in `transcript` it is the one situation message)."""
    return "\n".join(m["content"] for m in messages if m["role"] == "user")


def acting_messages(situation: str, knowledge: list[str] = ()) -> list[dict]:
    """The one-message prompt: a situation text (the `transcript` format), with knowledge before it."""
    return with_knowledge([{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": situation}],
                          knowledge)


_THINKING = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL)


def strip_thinking(response: str) -> str:
    """The answer after a model's `<think>...</think>` block. A block cut off by the token limit has no
    answer after it, so the response counts as invalid rather than grounding a command from the reasoning."""
    return _THINKING.sub("", response).strip()


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


def ground_response(output: str, admissible: list[str]) -> tuple[str, bool]:
    """A model's raw response as acting grounds it: the answer after any thinking, mapped to a command.
    Consolidation counts its student's samples with the same rule, so "valid" means one thing."""
    return ground_command(strip_thinking(output), admissible)
