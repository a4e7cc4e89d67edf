"""The agent as a served graph: `langgraph dev` (or a LangGraph Server) runs it from `langgraph.json`.

A server passes plain JSON, so this graph's context holds settings, not live objects: which game (a
challenge spec and a seed, or a game file on the server), which policy (a model, or a run directory's
checkpoint), whether the run's memory goes into the prompt, and how to act. Its node builds the env and
the policy (each policy once, then kept) and plays one episode through the acting graph. Input: nothing;
output: the episode (`agent.state.Episode`).

A game file must be a game (.z8, .z5, .ulx or .ta, checked as `oel play --game` checks it); the memory is
opened read-only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from agent.graph import play_episode
from agent.state import Context, Episode, EpisodeStart
from oel.config import DEFAULT_MODEL, OELConfig
from oel.rundir import RunDir


@dataclass
class ServedContext:
    """What a client sends as the run's `context` (every field has a default)."""

    challenge: str = "tw-coin_collector:1"
    """A challenge spec, as in `oel games make` (`agent/challenges.py`)."""
    seed: int = 0
    """The game's seed (and the sampling's): the same spec and seed give the same game."""
    game: str = ""
    """A game file on the server to play instead of a generated one."""
    model: str = DEFAULT_MODEL
    """`smollm2-135m` (embedded), a model directory on the server, or a hub id in its local cache."""
    run_dir: str = ""
    """A run directory on the server: its policy acts (the model it was made with, plus `checkpoint`)."""
    checkpoint: str = ""
    """With `run_dir`: the version to act with ('' = the run's current one)."""
    with_memory: bool = False
    """With `run_dir`: put the run's retrieved knowledge in the acting prompt (the teacher's view)."""
    mode: Literal["choose", "generate"] = OELConfig.action_mode
    max_steps: int = OELConfig.max_steps
    temperature: float = OELConfig.temperature
    greedy: bool = OELConfig.greedy
    device: str = OELConfig.device


@lru_cache(maxsize=2)
def _policy(model: str, adapters: tuple[str, ...], device: str):
    from agent.policy import Policy

    return Policy.load(model, adapters=list(adapters), device=device)


def _game(ctx: ServedContext) -> tuple[Path, str]:
    from agent.games import GameSpec, expand_game_files, family_of_file, make_game

    if ctx.game:
        [path] = expand_game_files([ctx.game])[:1]
        return path, family_of_file(path)
    spec = GameSpec.parse(ctx.challenge, ctx.seed)
    return make_game(spec), spec.env_family


def play(state: EpisodeStart, runtime: Runtime[ServedContext]) -> dict:
    from agent.arena import open_env

    ctx = runtime.context or ServedContext()
    game, family = _game(ctx)
    model, adapters, memory = ctx.model, (), None
    if ctx.run_dir:
        from consolidation.checkpoints import Registry
        from memory.store import open_memory
        from oel.config import load_run_config

        cfg = load_run_config(Path(ctx.run_dir))
        registry = Registry(RunDir(ctx.run_dir).checkpoints)
        model, adapters = cfg.model, tuple(map(str, registry.lineage(ctx.checkpoint or registry.current())))
        memory = open_memory(cfg, ctx.run_dir, read_only=True) if ctx.with_memory else None
    env = open_env(game, family, ctx.max_steps + 1)
    try:
        knowledge = []
        if memory is not None:
            from agent.rollout import knowledge_retriever
            from memory.store import retrieval_args

            knowledge = knowledge_retriever(memory, family, retrieval_args(cfg, "memory"))
        episode = play_episode(Context(env=env, policy=_policy(model, adapters, ctx.device), mode=ctx.mode,
                                       max_steps=ctx.max_steps, temperature=ctx.temperature, greedy=ctx.greedy,
                                       seed=ctx.seed, knowledge=knowledge))
    finally:
        env.close()
        if memory is not None:
            memory.close()
    return dataclasses.asdict(episode)


builder = StateGraph(Episode, context_schema=ServedContext, input_schema=EpisodeStart, output_schema=Episode)
builder.add_node("play", play)
builder.add_edge(START, "play")
builder.add_edge("play", END)
graph = builder.compile()
