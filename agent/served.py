"""The agent as a served graph: `langgraph dev` (or a LangGraph Server) runs it from `langgraph.json`.

A server passes plain JSON, so this graph's context holds settings, not live objects: which game to make
(a challenge spec and a seed), which model, and how to act. Its node makes the game, loads the policy
(once per model, then kept), and plays one episode through the acting graph. Input: nothing; output: the
episode (`agent.state.Episode`).

Games come from challenge specs only, never from file paths: a client of the server cannot make it
open files of its choosing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from agent.graph import play_episode
from agent.state import Context, Episode, EpisodeStart
from oel.config import DEFAULT_MODEL


@dataclass
class ServedContext:
    """What a client sends as the run's `context` (every field has a default)."""

    challenge: str = "tw-coin_collector:1"
    """A challenge spec, as in `oel games make` (`agent/challenges.py`)."""
    seed: int = 0
    """The game's seed: the same spec and seed give the same game."""
    model: str = DEFAULT_MODEL
    """`smollm2-135m` (embedded), a model directory on the server, or a hub id in its local cache."""
    mode: Literal["choose", "generate"] = "choose"
    max_steps: int = 20
    temperature: float = 1.0
    greedy: bool = False
    device: str = "auto"


@lru_cache(maxsize=2)
def _policy(model: str, device: str):
    from agent.policy import Policy

    return Policy.load(model, device=device)


def play(state: EpisodeStart, runtime: Runtime[ServedContext]) -> dict:
    from agent.arena import open_env
    from agent.games import GameSpec, make_game

    ctx = runtime.context or ServedContext()
    spec = GameSpec.parse(ctx.challenge, ctx.seed)
    env = open_env(make_game(spec), spec.env_family, ctx.max_steps + 1)
    try:
        episode = play_episode(Context(env=env, policy=_policy(ctx.model, ctx.device), mode=ctx.mode,
                                       max_steps=ctx.max_steps, temperature=ctx.temperature, greedy=ctx.greedy,
                                       seed=ctx.seed))
    finally:
        env.close()
    return dataclasses.asdict(episode)


builder = StateGraph(Episode, context_schema=ServedContext, input_schema=EpisodeStart, output_schema=Episode)
builder.add_node("play", play)
builder.add_edge(START, "play")
builder.add_edge("play", END)
graph = builder.compile()
