"""Play a list of games through the acting graph; optionally log every episode as one JSONL line, then
reflect on it.

Each line holds the full trajectory (every turn's prefix, raw output, action, feedback and score), the
outcome and its reason, and what made it (policy, round, mode), so consolidation and audits can use it
(`oel.records.LoggedEpisode`). An episode is appended and flushed as soon as it ends: a crash loses at most
the games in progress. Reflection comes after: the memory never holds an item whose episode is not logged,
and a run resumed after a crash reflects on the logged episodes that have no items yet
(`memory.reflection.unreflected`).
"""

from __future__ import annotations

import json
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from oel.progress import progress

from agent.arena import open_env
from agent.graph import play_episode
from agent.state import Context
from oel.config import OELConfig
from oel.jsonl import open_append
from oel.records import LoggedEpisode

if TYPE_CHECKING:
    from memory.reflection import Reflector


def play_games(policy, games: list[tuple[Path, str]], cfg: OELConfig, round: int, seed_base: int,
               log_path: Path | None = None, reflect: Reflector | None = None,
               memory=None, retrieval: dict | None = None, knowledge_for: Callable[[str], list[str]] | None = None,
               skip: frozenset[str] = frozenset(), concurrency: int = 1, desc: str = "play") -> list[LoggedEpisode]:
    """Play each (game file, env family) once. Game i samples with seed `seed_base + i`, so reruns repeat.

    Games whose file name is in `skip` are not played (a resumed round skips what it already logged; names,
    not paths, so a game cache that moved, or another `OEL_CACHE`, still matches), and the
    others keep their seeds.

    With `memory`, each turn's prompt holds the active items of the game's family retrieved for the current
    situation (`Memory.retrieve` with the `retrieval` settings, `memory.store.retrieval_args`: the same call
    that feeds the consolidation teacher). Without it, which is the default, the policy plays from its
    weights alone. `knowledge_for(family)` gives a fixed list of
    items per family (the raw-trajectory baseline puts trajectories there); with both, the retrieved items
    come first and the fixed ones only come with them, as in the consolidation teacher's prompt
    (`consolidation.dataset.build_dataset`).

    `reflect` (a `memory.reflection.Reflector`) reflects on each episode once it is logged: its lessons are
    written in the game's thread, and its memory writes happen one episode at a time in the calling thread.

    With `concurrency` K > 1, K games run at once through the same graph (one thread each), and their model
    calls are batched (`agent.batching.BatchedPolicy`): choose-mode scoring into shared forward passes,
    generate-mode acting and the reflections of games that finish together into batched `generate` calls.
    Episodes are logged in the order they finish (a crash loses none that finished), and returned in the
    order of `games`, so two evaluations of the same suite pair up game by game.
    """
    todo = [(i, game, family) for i, (game, family) in enumerate(games) if Path(game).name not in skip]
    acting, batched = policy, []
    if concurrency > 1:
        from agent.batching import BatchedPolicy

        acting = BatchedPolicy(policy, max_batch=concurrency)
        batched.append(acting)
        if reflect is not None and reflect.policy is policy:  # its generations batch with the games' calls
            reflect = reflect.using(acting)
        elif reflect is not None and reflect.policy is not None:  # another model reflects: batch its calls apart
            reflect = reflect.using(BatchedPolicy(reflect.policy, max_batch=concurrency))
            batched.append(reflect.policy)

    def play_one(i: int, game: Path, family: str) -> tuple[LoggedEpisode, list[str]]:
        env = open_env(game, family, cfg.max_steps + 1)
        episode_id = f"r{round}-{Path(game).stem}-{uuid.uuid4().hex[:6]}"
        fixed = knowledge_for(family) if knowledge_for is not None else []
        knowledge = knowledge_retriever(memory, family, retrieval or {"k": cfg.retrieve_k}, fixed) if memory is not None else fixed
        context = Context.from_config(cfg, env=env, policy=acting, knowledge=knowledge, seed=seed_base + i,
                                      extra={"episode_id": episode_id, "round": round})
        try:
            state = play_episode(context)
        finally:
            env.close()
        episode: LoggedEpisode = {
            "id": episode_id, "game": str(game), "env": family, "round": round, "policy": policy.name,
            "mode": cfg.action_mode, "outcome": state.outcome, "won": state.won, "reason": state.reason,
            "score": state.score, "max_score": state.max_score, "steps": state.steps, "tokens": state.tokens,
            "invalid": state.invalid, "objective": state.objective, "turns": state.turns}
        return episode, reflect.lessons(episode) if reflect is not None else []

    def play_counted(i: int, game: Path, family: str) -> tuple[LoggedEpisode, list[str]]:
        with acting.playing() if batched else nullcontext():  # its reflection's calls count as the game's
            return play_one(i, game, family)

    records = {}
    bar = progress(total=len(todo), desc=desc, unit="game")
    log = None  # opened with the first finished episode: a run that plays nothing leaves no empty log
    try:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            futures = {pool.submit(play_counted, *job): job[0] for job in todo}
            try:
                for future in as_completed(futures):
                    record, lessons = future.result()
                    if log_path is not None:
                        log = log or open_append(log_path)
                        log.write(json.dumps(record) + "\n")
                        log.flush()
                    if reflect is not None:  # logged first, so the memory never names an unlogged episode
                        reflect.store(record, lessons)
                    records[futures[future]] = record
                    bar.update(1)
            except BaseException:  # Ctrl-C or a failed game: start no other game (those running still finish)
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    finally:
        if log is not None:
            log.close()
    bar.close()
    for server in batched:
        server.close()
    return [records[i] for i in sorted(records)]


def seed_base(seed: int, *, round: int = 0, worker: str | None = None, evaluation: bool = False) -> int:
    """The sampling seed of a batch's first game (game i samples with `seed_base + i`), one home for the
    arithmetic: evaluations share one stream (so every policy plays the same held-out episodes, paired),
    and each round's train play, `oel play` (round 0) and each named worker get streams of their own."""
    if evaluation:
        return seed * 1000
    if worker is not None:
        return seed * 7919 + zlib.crc32(worker.encode())
    return seed * 7919 + round * 101


def knowledge_retriever(memory, env: str, retrieval: dict, fixed: list[str] = ()) -> Callable[[str], list[str]]:
    """The acting prompt's knowledge for a situation: the memory's retrieval for `env`, then `fixed`."""
    def knowledge(situation: str) -> list[str]:
        retrieved = [item.text for item in memory.retrieve(situation, env=env, **retrieval)]
        return retrieved + list(fixed) if retrieved else []  # as in build_dataset: fixed items come with knowledge

    return knowledge
