"""Play a list of games through the acting graph; optionally log every episode as one JSONL line.

Each line holds the full trajectory (every turn's prefix, raw output, action, feedback and score), the
outcome and its reason, and what made it (policy, round, mode), so consolidation and audits can use it.
An episode is appended and flushed as soon as it ends: a crash loses at most the game in progress.
"""

from __future__ import annotations

import json
import uuid
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from agent.arena import open_env
from agent.graph import play_episode
from agent.state import Context, State
from oel.config import OELConfig


def play_games(policy, games: list[tuple[Path, str]], cfg: OELConfig, round: int, seed_base: int,
               log_path: Path | None = None, reflect: Callable[[State, Context], list[str]] | None = None,
               memory=None, k: int = 6, skip: frozenset[str] = frozenset(), desc: str = "play") -> list[dict]:
    """Play each (game file, env family) once. Game i samples with seed `seed_base + i`, so reruns repeat.

    Games whose file is in `skip` are not played (a resumed round skips what it already logged), and the
    others keep their seeds.

    With `memory`, each turn's prompt holds the top-k active items of the game's family for the current
    situation (`Memory.retrieve`, the same call that feeds the consolidation teacher). Without it, which
    is the default, the policy plays from its weights alone.
    """
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    records = []
    with log_path.open("a") if log_path is not None else nullcontext() as log:
        todo = [(i, game, family) for i, (game, family) in enumerate(games) if str(game) not in skip]
        for i, game, family in tqdm(todo, desc=desc, unit="game", leave=False):
            env = open_env(game, family, cfg.max_steps + 1)
            episode_id = f"r{round}-{Path(game).stem}-{uuid.uuid4().hex[:6]}"
            context = Context(env=env, policy=policy, mode=cfg.action_mode, max_steps=cfg.max_steps,
                              temperature=cfg.temperature, greedy=cfg.greedy, max_new_tokens=cfg.max_new_tokens,
                              knowledge=_retriever(memory, family, k) if memory is not None else [], reflect=reflect,
                              seed=seed_base + i, extra={"episode_id": episode_id, "round": round})
            state = play_episode(context)
            env.close()
            record = {"id": episode_id, "game": str(game), "env": family, "round": round, "policy": policy.name,
                      "mode": cfg.action_mode, "outcome": state.outcome, "won": state.won, "reason": state.reason,
                      "score": state.score, "max_score": state.max_score, "steps": state.steps,
                      "tokens": state.tokens, "invalid": state.invalid, "objective": state.objective,
                      "knowledge_written": state.knowledge_written, "turns": state.turns}
            if log is not None:
                log.write(json.dumps(record) + "\n")
                log.flush()
            records.append(record)
    return records


def _retriever(memory, env: str, k: int) -> Callable[[str], list[str]]:
    return lambda situation: [item.text for item in memory.retrieve(situation, env=env, k=k)]
