"""Procedures: the experience of one real episode, distilled into a short text without a model.

A procedure holds the commands that won the episode, or that raised its score in a lost one, each with
the observation cue that came before it and what it did. A lost episode's procedure also ends with the
command that lost it. Everything in it is taken from the episode's log, so no command is ever invented:

1. **Cut at the end that matters.** A won or lost episode counts to its last turn (the winning or the
   losing command); an episode that ran out of steps counts to its last score gain, and has no procedure
   if it never gained anything.
2. **Drop loops and no-ops.** The agent's state before a turn is (where it is, the commands valid there,
   the score). Whenever a state repeats, the turns between its two visits achieved nothing and are cut: a
   walk there and back, an `examine` that changed nothing, a `take` undone by a `drop`. What is left is the
   loop-free path that the episode actually took. In coin collector, only `take coin` scores, so the
   procedure is the path that reached the coin, not just "take coin".
3. **Goal, cues and effects.** The head names the objective's sentence about an object of the episode
   (TextWorld objectives bury the goal in chatter). Each kept command comes after the sentence of the
   observation that showed its state and names the command's object or direction (else the place), and
   before the first sentences of what the game answered. On a board game (TextArena's FrozenLake and
   Sokoban draw the board in every observation) the cue is the board itself, one row after another
   (`P.H./..../...G`), and the drawing is left out of the effect: there the position is the situation, and
   the sentence that names a direction is only the list of moves.

Measured as the teacher's only context on 48 test games (the base model, the 8 round-1 episodes of the
learning bench; none 42%, raw play logs 65%): winning paths alone 52%; with lost episodes' fatal commands
60%; with the goal sentence too 67% (docs/RESULTS.md). The design note (DESIGN.md §1) had found that paths
without what each command did kept only half of what raw play logs taught.

Two episodes that took the same commands give the same `signature`; the memory merges them (support + 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from oel.records import LoggedEpisode
from oel.text import sanitize

_ROOM = re.compile(r"-=\s*(.+?)\s*=-")
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
_DIRECTIONS = {"north", "south", "east", "west", "up", "down", "left", "right"}
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


def first_observation(episode: LoggedEpisode) -> str:
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
    none, as after `examine`); in a game without rooms, the board it draws (so a move and its undoing meet
    the same state, whatever else the texts say), else the observation itself."""
    if rooms:
        return room_of(observation) or previous
    return board_of(observation) or " ".join(observation.split())


_CELL_ROW = re.compile(r"^\|(?:[^|]{0,6}\|){2,}$")
"""A drawn board's row of cells, FrozenLake's `|  P  |  H  |     |`: every cell holds one symbol or none."""
_TOKEN_ROW = re.compile(r"^\S(?: \S){2,}$")
"""A board's row of single symbols, Sokoban's `# _ O X P #`."""
_RULE_ROW = re.compile(r"^\+(?:-+\+)+$")
"""A drawn board's rule between rows of cells: `+-----+-----+`."""


def _board_rows(text: str) -> tuple[int, list[str]] | None:
    """Where a drawn board starts in `text` (its first row's line index) and its rows, one symbol a cell ('.'
    for an empty cell), or None. A board is 3 or more rows of the same width; anything else, a TextWorld
    banner included, is not one."""
    lines = (text or "").splitlines()
    n = 0
    while n < len(lines):
        first, rows, width = n, [], None
        while n < len(lines):
            line = lines[n].strip()
            if _CELL_ROW.match(line) and all(len(c.strip()) <= 1 for c in line.strip("|").split("|")):
                row = "".join(c.strip() or "." for c in line.strip("|").split("|"))
            elif _TOKEN_ROW.match(line):
                row = line.replace(" ", "")
            elif rows and _RULE_ROW.match(line):
                n += 1
                continue
            else:
                break
            if width not in (None, len(row)):
                break
            width = len(row)
            rows.append(row)
            n += 1
        if len(rows) >= 3:
            return first, rows
        n = max(n, first + 1)
    return None


def board_of(text: str) -> str | None:
    """The board drawn in an observation, rows joined by '/' (`P.H./..../...G`), or None if it draws none."""
    found = _board_rows(text)
    return "/".join(found[1]) if found else None


def _without_board(text: str) -> str:
    """The text before a drawn board, without the board's heading line ('Current Board:')."""
    found = _board_rows(text)
    if not found:
        return text
    before = (text or "").splitlines()[:found[0]]
    while before and (not before[-1].strip() or before[-1].strip().endswith(":")
                      or _RULE_ROW.match(before[-1].strip())):  # blank, heading or the top rule
        before.pop()
    return "\n".join(before)


def _cue(observation: str, command: str, place: str) -> str:
    """The board, in a board game; else the sentence of `observation` that names the command's object or
    direction, else the place."""
    board = board_of(observation)
    if board:
        return sanitize(board, CUE_CHARS)
    words = [w for w in re.findall(r"[a-z]+", command.lower()) if w not in _FILLER]
    for sentence in _SENTENCE.findall(observation.replace("-=", "\n").replace("=-", "\n")):
        lowered = sentence.lower()
        if words and any(re.search(rf"\b{re.escape(w)}\b", lowered) for w in words):
            return sanitize(sentence, CUE_CHARS)
    return sanitize(place, CUE_CHARS) if place else ""


def _goal(objective: str, commands: set[str]) -> str:
    """The sentence of the objective that names an object of the episode's commands (not a direction): what
    the episode was after. TextWorld's objectives bury it in chatter ("First off, ... recover the coin from
    the floor of the chamber. That's it!")."""
    objects = {w for c in commands for w in re.findall(r"[a-z]+", c.lower())} - _FILLER - _DIRECTIONS
    for sentence in _SENTENCE.findall(objective or ""):
        words = set(re.findall(r"[a-z]+", sentence.lower()))
        if words & objects:
            return sanitize(sentence, CUE_CHARS)
    return ""


def _effect(feedback: str) -> str:
    """What the command did: the room it led to, or the first sentences of the game's answer."""
    room = room_of(feedback)
    if room:
        return room
    feedback = _without_board(feedback.split("***")[0])  # "*** The End ***" and the score summary after it
    # repeat the outcome; a drawn board is the next step's cue
    text = " ".join(s.strip() for s in _SENTENCE.findall(feedback) if s.strip())
    return sanitize(text, EFFECT_CHARS)


def procedure_end(episode: LoggedEpisode) -> int | None:
    """The last turn a procedure covers: the winning or losing command, else the last gain (None: no gain)."""
    turns = episode.get("turns") or []
    gains = [n for n, t in enumerate(turns) if t.get("reward", 0) > 0]
    if (episode.get("won") or episode.get("outcome") == "lost") and turns:
        return len(turns) - 1
    return gains[-1] if gains else None


def loop_free_path(episode: LoggedEpisode, last: int) -> list[tuple[str, int, str]]:
    """The turns 0..`last` that were not undone, as (the room it was taken in, or '' in a game without rooms;
    the turn's index; the observation that first showed its state). A turn is undone when the state it
    started from comes back later: the agent got nowhere in between (module docstring, step 2)."""
    turns = episode.get("turns") or []
    start = first_observation(episode)
    rooms = any(room_of(t["feedback"]) for t in turns) or room_of(start) is not None
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
    return [(state[0] if rooms else "", n, entered[state]) for state, n in path]


def extract_procedure(episode: LoggedEpisode, env: str, max_chars: int = 700) -> Procedure | None:
    """The procedure of a logged episode (`agent.rollout` record), or None if nothing in it counts."""
    last = procedure_end(episode)
    if last is None:
        return None
    turns, lost = episode["turns"], episode.get("outcome") == "lost"
    path = loop_free_path(episode, last)
    steps = []
    for room, n, observation in path:
        turn = turns[n]
        cue = _cue(observation, turn["action"], room)
        gain = f" (score +{turn['reward']})" if turn.get("reward", 0) > 0 else ""
        end = " You lost!" if lost and n == last else ""
        steps.append(f"{f'[{cue}] ' if cue else ''}{turn['action']} -> {_effect(turn['feedback'])}{gain}{end}")
    kept = [n for _, n, _ in path]
    score = sum(turns[n].get("reward", 0) for n in kept)
    outcome = "Won" if episode.get("won") else ("Lost" if lost and not score else f"Scored {score}, then lost")
    goal = _goal(episode.get("objective", ""), {c for t in turns for c in t.get("admissible") or []})
    head = f"{outcome} {env} in {len(kept)} step{'s' * (len(kept) != 1)}" + (f" (goal: {goal})" if goal else "") + ": "
    text = sanitize(head + "; ".join(steps), max_chars)
    commands = [turns[n]["action"] for n in kept]
    return Procedure(text=text, signature=" | ".join(commands), commands=commands)
