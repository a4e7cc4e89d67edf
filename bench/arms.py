"""The learning bench's arms: each an ordinary `oel loop` run directory, and the evaluations of its
starting and final policies on more games. `bench.learning` and `bench.ood` run them."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console

from agent.games import make_suite, ood_specs, split_specs
from oel.stats import paired_p, wilson
from consolidation.checkpoints import Registry
from consolidation.evaluate import evaluate, summary
from consolidation.loop import load_policy, run_loop
from oel.config import OELConfig
from oel.files import write_atomic
from oel.rundir import RunDir

TEXTWORLD = ["tw-coin_collector:3", "tw-coin_collector:5", "tw-treasure_hunter:2", "tw-treasure_hunter:3"]
FROZENLAKE = ["ta-frozenlake:size=4,holes=3"]
"""TextArena's own default lake. The paper's 3x3 lake with 2 holes has only 18 distinct boards (seeds 0-39),
too few for train, validation and test games that never share a board; 4x4 with 3 holes gave 55 distinct
boards in 60 seeds."""
SOKOBAN = ["ta-sokoban"]
"""TextArena's default Sokoban: 6x6, one box, 30 turns (the arm plays to 30 steps, as `bench/boards.py` did:
the base model wins 35% of 48 distinct boards there)."""
SOKOBAN_STEPS = 30
OOD_TRAIN = ["tw-coin_collector:3", "tw-coin_collector:5"]
OOD = ["tw-treasure_hunter:2", "tw-treasure_hunter:3"]
"""The out-of-distribution split holds a whole challenge type apart: train on coin collector, test on treasure
hunter. tw-simple and tw-cooking, or FrozenLake, would be further away, but this model wins none of them
(0/8 FrozenLake games for the TextWorld-trained policy, before and after, in the first bench), so a drop
could not show."""


def arm_rows(rows: list[dict], run_dir: Path) -> list[dict]:
    """The loop's per-round rows in the benchmark's schema (test games), plus each round's new checkpoint
    even when the gate rejected it (`candidate`, with its validation success, which the gate read), so the
    effect of consolidation shows whatever the gate decided."""
    candidates = {m["round"]: m for m in Registry(RunDir(run_dir).checkpoints).manifests()}
    out = []
    for row in rows:
        made = candidates.get(row["round"])
        n = row["n_games"]
        teacher = row.get("success_in_context")
        out.append({
            "round": row["round"], "policy": row["policy"], "gate": row["gate"], "wins": row.get("wins"),
            "success_no_memory": row["success_no_memory"], "success_in_context": teacher,
            "tokens_per_episode": row["tokens_per_episode"], "steps": row["steps"], "n_games": n,
            "invalid_per_episode": row.get("invalid_per_episode"),
            "ci95": wilson(row["success_no_memory"] * n, n),
            "ci95_in_context": wilson(teacher * n, n) if teacher is not None else None,
            "steps_in_context": row.get("in_context_steps"),
            "memory_active": row["memory_active"], "memory_consolidated": row["memory_consolidated"],
            "memory_quarantined": row.get("memory_quarantined", 0),
            "validation_success": (row.get("validation") or {}).get("success_no_memory"),
            "timings": row.get("timings"),
            "candidate": {"version": made["version"], "status": made["status"],
                          "validation_success": made["eval"]["after"]["success_no_memory"]} if made else None,
        })
    return out


def add_wall_time(run_dir: Path, part: str, seconds: float) -> float:
    """Total seconds spent on `part` of an arm over every bench invocation (a resumed bench adds its time
    to what the earlier ones spent, so a finished arm keeps the time it took rather than showing ~0)."""
    path = RunDir(run_dir).report("bench_wall_s")
    spent = json.loads(path.read_text()) if path.is_file() else {}
    spent[part] = round(spent.get(part, 0.0) + seconds, 1)
    write_atomic(path, json.dumps(spent, indent=2))
    return spent[part]


def run_arm(name: str, cfg: OELConfig, runs_dir: Path, console: Console) -> dict:
    console.rule(f"[bold]{name}[/]")
    started = time.time()
    rows = run_loop(cfg, runs_dir / name, console)
    return {"run_dir": str(runs_dir / name), "rounds": arm_rows(rows, runs_dir / name),
            "wall_s": add_wall_time(runs_dir / name, "loop", time.time() - started)}


def cached_evaluation(cfg: OELConfig, run_dir: Path, name: str, key: str, version: str | None, suite: list,
                      console: Console) -> dict:
    """`version` (None: the base model) without memory on `suite`, kept under `key` in `reports/<name>.json`
    and reused for the same policy on the same games, so a resumed bench does not replay it."""
    cache = RunDir(run_dir).report(name)
    saved = json.loads(cache.read_text()) if cache.is_file() else {}
    games_played = [p.stem for p, _ in suite]  # a replaced seed plays under its replacement's name
    # A saved evaluation counts only for the same policy on the same games (the game count may change).
    if saved.get(key, {}).get("version", "?") != version or saved[key].get("games") != games_played:
        console.print(f"{name}: evaluating {version or 'the base model'} on {len(suite)} games")
        e = evaluate(load_policy(cfg, Registry(RunDir(run_dir).checkpoints), version), suite, cfg, desc=f"{name} {key}")
        saved[key] = {"version": version, **summary(e), "games": games_played}
        write_atomic(cache, json.dumps(saved, indent=2))
    return saved[key]


def base_vs_final(cfg: OELConfig, run_dir: Path, specs: list, name: str, console: Console) -> dict:
    """The arm's starting policy and its final one, without memory, on the games of `specs` (same sampling
    seeds, so per-game outcomes pair up)."""
    suite = list(zip(make_suite(specs, desc=name), [s.env_family for s in specs]))
    final = Registry(RunDir(run_dir).checkpoints).current()
    started = time.time()
    result = {"final_policy": final}
    for key, version in (("round0", None), ("final", final)):
        result[key] = cached_evaluation(cfg, run_dir, name, key, version, suite, console)
    result["change_points"] = round(100 * (result["final"]["success"] - result["round0"]["success"]), 1)
    result["paired_p"] = paired_p(result["round0"]["wins"], result["final"]["wins"])
    result["wall_s"] = add_wall_time(run_dir, name, time.time() - started)
    return result


def ood_eval(cfg: OELConfig, run_dir: Path, games: int, console: Console) -> dict:
    """The arm's starting and final policies, without memory, on challenge types never trained on."""
    result = base_vs_final(cfg, run_dir, ood_specs(OOD, cfg.challenges, games, cfg.seed), "ood", console)
    return {"challenges": OOD, "trained_on": cfg.challenges, **result, "drop_points": -result["change_points"]}


def recheck_eval(cfg: OELConfig, run_dir: Path, games: int, console: Console) -> dict:
    """Round 0 against the final policy on more test games than the loop plays: the loop's test games
    first, then new test seeds (never trained or gated on)."""
    specs = split_specs(cfg.challenges, games, cfg.seed, "test")
    return base_vs_final(cfg, run_dir, specs, "heldout_recheck", console)
