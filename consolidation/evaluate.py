"""Evaluation: play held-out games (without memory by default) and report success, steps and tokens."""

from __future__ import annotations

from pathlib import Path

from agent.rollout import play_games, seed_base
from consolidation.dataset import trajectory_items
from memory.store import retrieval_args
from oel.config import OELConfig
from oel.records import Evaluation, LoggedEpisode
from oel.stats import wilson


def evaluate(policy, games: list[tuple[Path, str]], cfg: OELConfig, memory=None, retrieval: dict | None = None,
             knowledge_for=None, desc: str = "eval") -> Evaluation:
    """Success rate (won / games) with its Wilson 95% interval, plus per-episode averages.

    Every policy is evaluated with the same per-game sampling seeds, so two checkpoints are compared on
    paired episodes. With `memory`, the policy sees the items `retrieval` asks for in its prompt (the
    in-context teacher); with `knowledge_for(family)`, a fixed list of items per family.
    """
    episodes = play_games(policy, games, cfg, round=-1, seed_base=seed_base(cfg.seed, evaluation=True), memory=memory,
                          retrieval=retrieval, knowledge_for=knowledge_for, concurrency=cfg.concurrency, desc=desc)
    n = len(episodes)
    wins = sum(e["won"] for e in episodes)
    return {
        "success": wins / n,
        "ci95": wilson(wins, n),
        "steps": sum(e["steps"] for e in episodes) / n,
        "tokens_per_episode": sum(e["tokens"] for e in episodes) / n,
        "invalid_per_episode": sum(e["invalid"] for e in episodes) / n,
        "n_games": n,
        "wins": [int(e["won"]) for e in episodes],  # per game, in the suite's order: paired comparisons
        "episodes": [{k: e[k] for k in ("game", "won", "outcome", "steps", "tokens", "invalid")} for e in episodes],
    }


def summary(evaluation: Evaluation) -> dict:
    """An evaluation without its episodes: what a bench's JSON keeps (a round row renames `success`,
    `consolidation.loop.summary`). `wins` is each game's outcome (1/0) in the suite's order, so two policies
    can be compared game by game (a paired test)."""
    return {k: v for k, v in evaluation.items() if k != "episodes"}


def teacher_sources(context: str, memory, episodes: list[LoggedEpisode], cfg: OELConfig) -> dict:
    """`evaluate`'s `memory`, `retrieval` and `knowledge_for` for a teacher that sees `context` (a
    `teacher_context` value, or "none"): the items it retrieves, the train `episodes` of the game's family
    as play logs, or both."""
    def trajectories(family: str) -> list[str]:
        return trajectory_items([e for e in episodes if e["env"] == family])

    retrieval = retrieval_args(cfg, context) if context != "none" else None
    return {"memory": memory if retrieval else None, "retrieval": retrieval,
            "knowledge_for": trajectories if "trajectories" in context else None}
