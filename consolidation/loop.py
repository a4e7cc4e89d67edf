"""The online loop: each round plays, reflects, consolidates, gates and prunes (DESIGN.md §1).

Run directory layout (every artifact says what made it):
    config.json                 the settings of this run
    games.json                  train and held-out game files (disjoint seeds)
    trajectories/round_<r>.jsonl  every episode of round r, with every turn's prefix
    memory/                     the Chroma knowledge memory
    checkpoints/v<n>/           LoRA adapter + manifest.json (parent, status, knowledge_ids, eval, config)
    reports/rounds.jsonl        one row per round; reports/learning_curve.png

Round 0 of the report is the starting policy evaluated on the held-out games. Row r is the policy in
force after round r: the new checkpoint if the gate promoted it, else the previous one. A finished
round is never redone: running the loop again continues after the last recorded round.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from rich.console import Console

from agent.games import HELDOUT_SEED_OFFSET, make_suite, suite_specs
from agent.policy import Policy, check_model
from agent.rollout import play_games
from consolidation.checkpoints import Registry
from consolidation.dataset import build_dataset, fingerprint, load_trajectories
from consolidation.distill import distill
from consolidation.evaluate import evaluate
from consolidation.report import plot_rounds, read_rounds, rounds_table
from memory.reflection import make_reflector
from memory.store import Memory
from oel.config import OELConfig
from oel.errors import OELError


def prepare_run_dir(cfg: OELConfig, run_dir: Path) -> None:
    """Create the run directory, or check that an existing one was made with the same settings."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.json"
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise OELError(f"{path} is corrupt; fix it or use a new --run-dir") from None
        changed = [k for k, v in cfg.to_dict().items() if k != "rounds" and saved.get(k) != v]
        if changed:
            k = changed[0]
            raise OELError(f"{run_dir} was made with {k}={saved.get(k)!r}, not {getattr(cfg, k)!r}; "
                           "use the same settings to continue it, or a new --run-dir")
    path.write_text(json.dumps(cfg.to_dict(), indent=2))


def prepare_games(cfg: OELConfig, run_dir: Path) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """Generate (or reuse) the train and held-out suites; their seeds never overlap."""
    train_specs = suite_specs(cfg.challenges, cfg.train_games, cfg.seed)
    heldout_specs = suite_specs(cfg.challenges, cfg.heldout_games, cfg.seed + HELDOUT_SEED_OFFSET)
    train = list(zip(make_suite(train_specs, desc="train"), [s.env_family for s in train_specs]))
    heldout = list(zip(make_suite(heldout_specs, desc="held-out"), [s.env_family for s in heldout_specs]))
    (run_dir / "games.json").write_text(json.dumps(
        {"train": [[str(p), f] for p, f in train], "heldout": [[str(p), f] for p, f in heldout]}, indent=2))
    return train, heldout


def open_memory(cfg: OELConfig, run_dir: Path, read_only: bool = False) -> Memory:
    return Memory(path=run_dir / "memory", url=cfg.memory_url, read_only=read_only)


def load_policy(cfg: OELConfig, registry: Registry, version: str | None) -> Policy:
    name = f"{cfg.model}+{version}" if version else cfg.model
    return Policy.load(cfg.model, adapters=registry.lineage(version), name=name)


def run_loop(cfg: OELConfig, run_dir: str | Path, console: Console | None = None) -> list[dict]:
    console = console or Console()
    run_dir = Path(run_dir)
    check_model(cfg.model)
    prepare_run_dir(cfg, run_dir)
    train, heldout = prepare_games(cfg, run_dir)
    registry = Registry(run_dir / "checkpoints")
    rows_path = run_dir / "reports" / "rounds.jsonl"
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    rows = read_rounds(run_dir)

    with open_memory(cfg, run_dir) as memory:
        current = registry.current()
        policy = load_policy(cfg, registry, current)
        if not rows:
            console.print(f"[bold]round 0[/]: evaluating {policy.name} on {len(heldout)} held-out games")
            base_eval = evaluate(policy, heldout, cfg, desc="eval round 0")
            rows.append(_append_row(rows_path, 0, policy.name, base_eval, memory, "-"))
        for r in range(len(rows), cfg.rounds + 1):
            console.print(f"[bold]round {r}[/]: playing {len(train)} train games with {policy.name}")
            log_path = run_dir / "trajectories" / f"round_{r}.jsonl"
            log_path.unlink(missing_ok=True)  # an interrupted round is replayed from its start
            episodes = play_games(policy, train, cfg, log_path, r,
                                  reflect=make_reflector(policy, memory, cfg, created_by=policy.name),
                                  desc=f"play round {r}")
            won = sum(e["won"] for e in episodes)
            console.print(f"  train: won {won}/{len(episodes)}; memory holds {memory.count('active')} active items")
            policy, current, gate, evaluation = consolidate_round(cfg, run_dir, registry, memory, policy, current,
                                                                  heldout, rows[-1], r, console)
            rows.append(_append_row(rows_path, r, policy.name, evaluation, memory, gate))
    console.print(rounds_table(rows))
    png = plot_rounds(rows, run_dir / "reports" / "learning_curve.png")
    console.print(f"learning curve: {png}\nrun directory: {run_dir}")
    return rows


def consolidate_round(cfg: OELConfig, run_dir: Path, registry: Registry, memory: Memory, policy: Policy,
                      current: str | None, heldout: list[tuple[Path, str]], parent_row: dict, r: int,
                      console: Console):
    """Distil this round's prefixes plus memory into a new adapter, gate it, promote or reject, prune.

    Returns (policy in force, its version, gate verdict, its held-out evaluation).
    """
    episodes = load_trajectories([run_dir / "trajectories" / f"round_{r}.jsonl"])
    records, knowledge_ids = build_dataset(episodes, memory, cfg.retrieve_k)
    parent_eval = {k: parent_row[k] for k in ("success_no_memory", "ci95", "steps", "tokens_per_episode", "n_games")}
    if not records:
        console.print("  no knowledge for these games yet: nothing to consolidate this round")
        return policy, current, "skipped: no knowledge", _as_eval(parent_row)
    version = registry.next_version()
    console.print(f"  consolidating {len(records)} prefixes with {len(knowledge_ids)} knowledge items -> {version}")
    started = time.time()
    with tempfile.TemporaryDirectory(dir=run_dir) as tmp:
        student = load_policy(cfg, registry, current)  # a fresh copy: LoRA is injected into it in place
        training = distill(student, records, cfg, Path(tmp))
        del student
        distill_s = time.time() - started
        candidate = Policy.load(cfg.model, adapters=[*registry.lineage(current), Path(tmp) / "adapter"],
                                name=f"{cfg.model}+{version}")
        evaluation = evaluate(candidate, heldout, cfg, desc=f"eval {version}")
        promoted = evaluation["success"] >= parent_row["success_no_memory"] - cfg.gate_tolerance
        manifest = {
            "version": version, "parent": current, "status": "promoted" if promoted else "rejected",
            "round": r, "base_model": cfg.model, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "knowledge_ids": knowledge_ids, "dataset": {"fingerprint": fingerprint(records), "prefixes": len(records)},
            "eval": {"before": parent_eval, "after": _summary(evaluation)},
            "training": training, "timings": {"distill_s": round(distill_s, 1),
                                              "eval_s": round(time.time() - started - distill_s, 1)},
            "config": cfg.to_dict(),
        }
        registry.write(Path(tmp) / "adapter", manifest)
    verdict = (f"promoted {version}" if promoted else f"rejected {version}")
    console.print(f"  gate: {evaluation['success']:.1%} vs parent {parent_row['success_no_memory']:.1%} -> {verdict}")
    if not promoted:
        return policy, current, verdict, _as_eval(parent_row)
    # Prune only after promotion: the absorbed items leave the active set, archived with provenance.
    memory.mark_consolidated(knowledge_ids, version)
    return candidate, version, verdict, evaluation


def _summary(evaluation: dict) -> dict:
    return {"success_no_memory": evaluation["success"], "ci95": evaluation["ci95"], "steps": evaluation["steps"],
            "tokens_per_episode": evaluation["tokens_per_episode"], "n_games": evaluation["n_games"]}


def _as_eval(row: dict) -> dict:
    return {"success": row["success_no_memory"], "ci95": row["ci95"], "steps": row["steps"],
            "tokens_per_episode": row["tokens_per_episode"], "n_games": row["n_games"]}


def _append_row(path: Path, r: int, policy_name: str, evaluation: dict, memory: Memory, gate: str) -> dict:
    row = {"round": r, "policy": policy_name, **_summary(evaluation),
           "memory_active": memory.count("active"), "memory_consolidated": memory.count("consolidated"), "gate": gate}
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")
    return row
