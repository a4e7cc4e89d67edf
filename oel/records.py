"""The records of the data path, written once and read everywhere: a turn, a logged episode, an evaluation.

They are the JSON the logs hold (`trajectories/*.jsonl`, `reports/*.jsonl`, manifests), typed. Fields added
later are optional (`NotRequired`): logs written before them still read. They live in the shared base
because every stage reads them: `agent` writes turns and episodes, `memory` reflects on them,
`consolidation` trains and reports on them.
"""

from __future__ import annotations

from typing import Literal

# pydantic (LangGraph's JSON schemas) needs typing_extensions' TypedDict on Python < 3.12.
from typing_extensions import NotRequired, TypedDict


class Message(TypedDict):
    role: str
    content: str


class Turn(TypedDict):
    """One move of an episode."""

    prefix: list[Message]
    """The chat the model saw before it acted (the situation, and knowledge when it had some)."""
    output: str
    """What the model produced: the chosen command, or its generated text."""
    action: str
    """The command sent to the game."""
    valid: bool
    """Whether the output was (or grounded to) an admissible command."""
    tokens: int
    """Tokens generated for this move (choose mode: the chosen command's)."""
    admissible: NotRequired[list[str]]
    """The commands that were valid before the move (logged since choose-mode consolidation scores them)."""
    feedback: str
    """The game's answer."""
    score: int
    """The game's running score after the move."""
    reward: int
    """The score change the move made."""


Outcome = Literal["", "won", "lost", "step_limit"]


class LoggedEpisode(TypedDict):
    """One line of `trajectories/*.jsonl`. (`agent.state.Episode` is the graph's output: the same episode
    before the rollout adds where it was played.)"""

    id: str
    """`r<round>-<game>-<hex>`: the provenance every knowledge item points to."""
    game: str
    """The game file's path."""
    env: str
    """The game family (the challenge, or a user game's folder): memory is kept per family."""
    round: int
    """The round it fed (-1: an evaluation; 0: `oel play` outside any round)."""
    policy: str
    mode: Literal["choose", "generate"]
    outcome: Outcome
    won: bool
    reason: str
    score: int
    max_score: int
    steps: int
    tokens: int
    invalid: int
    objective: str
    turns: list[Turn]
    knowledge_written: NotRequired[list[str]]
    """Only in logs written before reflection came after logging; the link is now each item's `supporters`."""


class EpisodeSummary(TypedDict):
    game: str
    won: bool
    outcome: Outcome
    steps: int
    tokens: int
    invalid: int


class Evaluation(TypedDict):
    """What `consolidation.evaluate.evaluate` returns: a policy on a suite of games."""

    success: float
    """Games won / games played."""
    ci95: list[float]
    """Wilson 95% interval of `success`, as [low, high] (`oel.stats.wilson`)."""
    steps: float
    """Mean steps per episode."""
    tokens_per_episode: float
    invalid_per_episode: float
    n_games: int
    wins: list[int]
    """1/0 per game, in the suite's order, so two policies pair up game by game."""
    episodes: list[EpisodeSummary]
