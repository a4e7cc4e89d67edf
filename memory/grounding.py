"""The grounding check: an insight must name something real from the episode it was written about.

The 135M model often writes lessons that could be about any game, or about nothing ("The rules of this
game are the rules of the game"). A reader learns nothing from them, and neither does the teacher. So
before an insight is used, it must name at least one command, object or place of its source episode:
- a command that was valid or taken in the episode ("go east", "take coin"), or
- a word of such a command other than its verb or a filler ("coin", "latchkey", "east"), or
- a word of a room the episode visited ("pantry").

An insight that fails is stored with status `quarantined` and the reason: kept and listed
(`oel memory list --status quarantined`), never retrieved, and released by `oel memory restore ID`.
A repetition loop ("the game of the game of the game") is quarantined the same way.
"""

from __future__ import annotations

import re

from memory.procedures import first_observation, room_of
from oel.records import LoggedEpisode

_VERBS_AND_FILLERS = {
    "go", "take", "drop", "open", "close", "examine", "look", "inventory", "put", "insert", "unlock", "lock",
    "eat", "drink", "cook", "slice", "chop", "dice", "prepare", "meal", "the", "a", "an", "in", "on", "into",
    "from", "with", "to", "at", "of", "up", "down", "and", "move", "help",
}


def is_degenerate(text: str) -> bool:
    """A repetition loop ("the game of the game of the game ..."): small models often fall into one.

    Measured on the 135M model's reflections: loops repeat a 2-4 word phrase; real lessons rarely reuse
    more than a third of their word trigrams.
    """
    words = re.findall(r"[a-z']+", text.lower())
    trigrams = list(zip(words, words[1:], words[2:]))
    return len(trigrams) >= 6 and len(set(trigrams)) / len(trigrams) < 0.67


def episode_vocabulary(episode: LoggedEpisode) -> tuple[set[str], set[str]]:
    """(commands, words) an insight about `episode` may name: every command valid or taken in it, and the
    words of those commands and of its rooms, less verbs and fillers."""
    commands, texts = set(), [first_observation(episode)]
    for turn in episode.get("turns") or []:
        commands.update(c.lower() for c in turn.get("admissible") or [])
        commands.add(str(turn.get("action", "")).lower())
        texts.append(turn.get("feedback", ""))
    words = {w for c in commands for w in re.findall(r"[a-z][a-z-]+", c)}
    words |= {w for t in texts if room_of(t) for w in re.findall(r"[a-z][a-z-]+", room_of(t).lower())}
    # A command made only of a verb ("look", "inventory") names nothing: "take a step back and look at the
    # game" is not about this episode.
    named = {c for c in commands if set(re.findall(r"[a-z][a-z-]+", c)) - _VERBS_AND_FILLERS}
    return named, words - _VERBS_AND_FILLERS


def grounding_problem(text: str, episode: LoggedEpisode | None) -> str | None:
    """Why an insight cannot be used, or None if it passes every check."""
    if is_degenerate(text):
        return "repetition loop"
    if episode is None:
        return None  # nothing to check against (an item added by hand)
    commands, words = episode_vocabulary(episode)
    lowered = text.lower()
    if any(re.search(rf"\b{re.escape(c)}\b", lowered) for c in commands):
        return None
    if set(re.findall(r"[a-z][a-z-]+", lowered)) & words:
        return None
    return "names no command, object or room of its episode"
