"""Procedures: the experience of one real episode, distilled into a short text without a model.

A procedure holds the commands that won the episode, or that raised its score in a lost one, each with
the observation cue that came before it and what it did. Everything in it is taken from the episode's log,
so no command is ever invented:

1. **Cut at the last gain.** Only the turns up to the last one that raised the score (or the winning turn)
   count; an episode that never gained anything has no procedure.
2. **Drop loops and no-ops.** The agent's state after a turn is (where it is, the commands valid there,
   the score). Whenever a state repeats, the turns between its two visits achieved nothing and are cut: a
   walk there and back, an `examine` that changed nothing, a `take` undone by a `drop`. What is left is the
   loop-free path that the episode actually took to its gains. In coin collector, only `take coin` scores,
   so the procedure is the path that reached the coin, not just "take coin".
3. **Cue and effect.** Each kept command is shown after the sentence of the observation before it that
   names the command's object or direction (else the place it was in), and before the first sentence of
   what the game answered. The design note (DESIGN.md §1) found that a path without the effects kept only
   half of what raw play logs taught.

Two episodes that took the same commands give the same `signature`; the memory merges them (support + 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from oel.text import sanitize

_ROOM = re.compile(r"-=\s*(.+?)\s*=-")
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
_FILLER = {"go", "take", "drop", "open", "close", "examine", "look", "put", "insert", "unlock", "lock", "eat",
           "the", "a", "an", "in", "on", "into", "from", "with", "to", "at", "of"}
CUE_CHARS = 90
EFFECT_CHARS = 110


@dataclass(frozen=True)
class Procedure:
    text: str
    signature: str
    """The commands, in order, joined by ' | ': equal for episodes that took the same path."""
    commands: list[str]


def room_of(text: str) -> str | None:
    """The place a TextWorld observation is in (its '-= Name =-' header), if it has one."""
    match = _ROOM.search(text or "")
    return match.group(1).strip() if match else None


def first_observation(episode: dict) -> str:
    """What the agent saw before its first command: the 'Now:' part of the first acting prompt."""
    turns = episode.get("turns") or []
    if not turns:
        return ""
    situation = turns[0]["prefix"][-1]["content"]
    now = situation.rfind("Now: ")
    text = situation[now + 5:] if now >= 0 else situation
    return text.split("\nValid commands:")[0]


def _place(observation: str, previous: str, rooms: bool) -> str:
    """Where the agent is after an observation: its room header in a room game (unchanged when the text has
    none, as after `examine`); in a game without rooms (a board), the observation itself."""
    if rooms:
        return room_of(observation) or previous
    return " ".join(observation.split())


def _cue(observation: str, command: str, place: str) -> str:
    """The sentence of `observation` that names the command's object or direction, else the place."""
    words = [w for w in re.findall(r"[a-z]+", command.lower()) if w not in _FILLER]
    for sentence in _SENTENCE.findall(observation.replace("-=", "\n").replace("=-", "\n")):
        lowered = sentence.lower()
        if words and any(re.search(rf"\b{re.escape(w)}\b", lowered) for w in words):
            return sanitize(sentence, CUE_CHARS)
    return sanitize(place, CUE_CHARS) if place else ""


def _effect(feedback: str) -> str:
    """What the command did: the room it led to, or the first sentences of the game's answer."""
    room = room_of(feedback)
    if room:
        return room
    feedback = feedback.split("***")[0]  # "*** The End ***" and the score summary after it repeat the outcome
    text = " ".join(s.strip() for s in _SENTENCE.findall(feedback) if s.strip())
    return sanitize(text, EFFECT_CHARS)


def extract_procedure(episode: dict, env: str, max_chars: int = 700) -> Procedure | None:
    """The procedure of a logged episode (`agent.rollout` record), or None if nothing in it gained."""
    turns = episode.get("turns") or []
    gains = [n for n, t in enumerate(turns) if t.get("reward", 0) > 0]
    if episode.get("won") and turns:
        last = len(turns) - 1
    elif gains:
        last = gains[-1]
    else:
        return None
    start = first_observation(episode)
    rooms = any(room_of(t["feedback"]) for t in turns) or room_of(start) is not None
    # state before turn n: (place, commands valid then, score so far); after the last kept turn: the end.
    place = _place(start, "", rooms)
    path: list[tuple[tuple, int]] = []  # (state before the turn, turn index)
    seen: dict[tuple, int] = {}  # state -> its position in `path` (the turns that were kept before it)
    entered: dict[tuple, str] = {}  # state -> the observation that first showed it: the cue comes from there
    observation = start
    for n in range(last + 1):
        turn = turns[n]
        state = (place, tuple(sorted(turn.get("admissible") or [])), turn.get("score", 0) - turn.get("reward", 0))
        entered.setdefault(state, observation)
        if state in seen:  # back where it was: the turns in between changed nothing
            del path[seen[state]:]
            seen = {s: i for i, (s, _) in enumerate(path)}
        seen[state] = len(path)
        path.append((state, n))
        observation = turn["feedback"]
        place = _place(observation, place, rooms)
    steps = []
    for state, n in path:
        turn = turns[n]
        cue = _cue(entered[state], turn["action"], state[0] if rooms else "")
        gain = f" (score +{turn['reward']})" if turn.get("reward", 0) > 0 else ""
        steps.append(f"{f'[{cue}] ' if cue else ''}{turn['action']} -> {_effect(turn['feedback'])}{gain}")
    kept = [n for _, n in path]
    outcome = "Won" if episode.get("won") else f"Scored {sum(turns[n].get('reward', 0) for n in kept)}, then lost"
    head = f"{outcome} {env} in {len(kept)} step{'s' * (len(kept) != 1)}: "
    text = sanitize(head + "; ".join(steps), max_chars)
    commands = [turns[n]["action"] for n in kept]
    return Procedure(text=text, signature=" | ".join(commands), commands=commands)
