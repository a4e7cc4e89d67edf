"""Evaluation: play held-out games without memory and report success, steps and tokens."""

from __future__ import annotations

import math
from pathlib import Path

from tqdm import tqdm

from agent.envs import TextWorldEnv
from agent.graph import play_episode
from agent.state import Context
from oel.config import OELConfig


def evaluate(policy, games: list[tuple[Path, str]], cfg: OELConfig, knowledge=None, desc: str = "eval") -> dict:
    """Success rate (won / games), with a 95% normal-approximation interval, plus averages.

    `games` is a list of (game file, env family). `knowledge(env) -> list[str]` puts memory in the prompt
    (acting with memory); by default there is none. Sampling is seeded per game, so a rerun is repeatable.
    """
    episodes = []
    for i, (game, family) in enumerate(tqdm(games, desc=desc, unit="game", leave=False)):
        env = TextWorldEnv(game, family=family, max_steps=cfg.max_steps + 1)
        context = Context(env=env, policy=policy, mode=cfg.action_mode, max_steps=cfg.max_steps,
                          temperature=cfg.temperature, greedy=cfg.greedy, max_new_tokens=cfg.max_new_tokens,
                          knowledge=knowledge(family) if knowledge else [], seed=cfg.seed * 1000 + i)
        state = play_episode(context)
        env.close()
        episodes.append({"game": Path(game).name, "won": state.won, "steps": state.steps, "tokens": state.tokens,
                         "invalid": state.invalid, "outcome": state.outcome})
    n = len(episodes)
    success = sum(e["won"] for e in episodes) / n
    return {
        "success": success,
        "ci95": 1.96 * math.sqrt(success * (1 - success) / n),
        "steps": sum(e["steps"] for e in episodes) / n,
        "tokens_per_episode": sum(e["tokens"] for e in episodes) / n,
        "invalid_per_episode": sum(e["invalid"] for e in episodes) / n,
        "n_games": n,
        "episodes": episodes,
    }
