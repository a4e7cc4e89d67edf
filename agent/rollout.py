"""Play a list of games through the acting graph and log every episode as one JSONL line.

Each line holds the full trajectory (every turn's prefix, raw output, action, feedback and score), the
outcome and its reason, and what made it (policy, round, config), so consolidation and audits can use it.
An episode is appended and flushed as soon as it ends: a crash loses at most the game in progress.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from agent.envs import TextWorldEnv
from agent.graph import play_episode
from agent.state import Context, State
from oel.config import OELConfig


def play_games(policy, games: list[tuple[Path, str]], cfg: OELConfig, log_path: Path, round: int,
               reflect: Callable[[State, Context], list[str]] | None = None, desc: str = "play") -> list[dict]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    records = []
    with log_path.open("a") as log:
        for i, (game, family) in enumerate(tqdm(games, desc=desc, unit="game", leave=False)):
            env = TextWorldEnv(game, family=family, max_steps=cfg.max_steps + 1)
            episode_id = f"r{round}-{Path(game).stem}-{uuid.uuid4().hex[:6]}"
            context = Context(env=env, policy=policy, mode=cfg.action_mode, max_steps=cfg.max_steps,
                              temperature=cfg.temperature, greedy=cfg.greedy, max_new_tokens=cfg.max_new_tokens,
                              reflect=reflect, seed=cfg.seed * 7919 + round * 101 + i,
                              extra={"episode_id": episode_id, "round": round})
            state = play_episode(context)
            env.close()
            record = {"id": episode_id, "game": str(game), "env": family, "round": round, "policy": policy.name,
                      "mode": cfg.action_mode, "outcome": state.outcome, "won": state.won, "reason": state.reason,
                      "score": state.score, "max_score": state.max_score, "steps": state.steps,
                      "tokens": state.tokens, "invalid": state.invalid, "objective": state.objective,
                      "knowledge_written": state.knowledge_written, "turns": state.turns}
            log.write(json.dumps(record) + "\n")
            log.flush()
            records.append(record)
    return records
