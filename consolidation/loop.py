"""The online loop: each round plays, reflects, consolidates, gates and prunes (DESIGN.md §1).

Run directory layout (every artifact says what made it):
    config.json                   the settings of this run
    games.json                    train and held-out game files (disjoint seeds)
    trajectories/round_<r>.jsonl  every episode of round r, with every turn's prefix
    memory/                       the Chroma knowledge memory
    checkpoints/v<n>/             LoRA adapter + manifest.json (parent, status, knowledge_ids, eval, config)
    reports/rounds.jsonl          one row per round; reports/learning_curve.png
    reports/in_context.jsonl      with eval_in_context: each round's teacher on the held-out games

Round 0 of the report is the starting policy on the held-out games. Row r is the policy in force after
round r: the new checkpoint if the gate promoted it, else the previous one. With `eval_in_context`, row r
also holds round r's teacher: the policy in force *before* round r's consolidation, playing with round r's
knowledge in its prompt. That is what the consolidation tries to put into the weights.

Resuming: progress is read back from the artifacts themselves, stage by stage, so a run killed at any
point continues where it stopped, with nothing lost or done twice:
- play: games already in round_<r>.jsonl are not replayed; knowledge written by an episode that was cut
  off before it was logged is archived (kept, but out of use), since that game is played again;
- consolidate and gate: a checkpoint whose manifest names round r means both are done (checkpoints are
  written atomically, so a half-trained one never counts);
- prune: marking items consolidated is idempotent, so it is simply done again;
- the round is finished once its row is in reports/rounds.jsonl.
"""

from __future__ import annotations

import json
import shutil
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
from consolidation.evaluate import evaluate, teacher_sources
from consolidation.report import plot_rounds, read_rounds, rounds_table
from memory.lock import DirectoryLock
from memory.reflection import make_reflector
from memory.store import Memory, open_memory
from oel.config import OELConfig, load_run_config
from oel.errors import OELError
from oel.files import write_atomic
from oel.jsonl import open_append, read_jsonl

EVAL_KEYS = ("success_no_memory", "ci95", "steps", "tokens_per_episode", "n_games")


def prepare_run_dir(cfg: OELConfig, run_dir: Path) -> None:
    """Create the run directory, or check that an existing one was made with the same settings."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.json"
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise OELError(f"{path} is corrupt; fix it or use a new --run-dir") from None
        # A setting added after the run was made counts as its default (what the run used then).
        defaults = OELConfig().to_dict()
        changed = [k for k, v in cfg.to_dict().items() if k != "rounds" and saved.get(k, defaults[k]) != v]
        if changed:
            k = changed[0]
            raise OELError(f"{run_dir} was made with {k}={saved.get(k)!r}, not {getattr(cfg, k)!r}; "
                           "use the same settings to continue it, or a new --run-dir")
    write_atomic(path, json.dumps(cfg.to_dict(), indent=2))


def prepare_games(cfg: OELConfig, run_dir: Path) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """Generate (or reuse) the train and held-out suites; their seeds never overlap."""
    train_specs = suite_specs(cfg.challenges, cfg.train_games, cfg.seed)
    heldout_specs = suite_specs(cfg.challenges, cfg.heldout_games, cfg.seed + HELDOUT_SEED_OFFSET)
    train = list(zip(make_suite(train_specs, desc="train"), [s.env_family for s in train_specs]))
    heldout = list(zip(make_suite(heldout_specs, desc="held-out"), [s.env_family for s in heldout_specs]))
    (run_dir / "games.json").write_text(json.dumps(
        {"train": [[str(p), f] for p, f in train], "heldout": [[str(p), f] for p, f in heldout]}, indent=2))
    return train, heldout


def consolidation_lock(run_dir: Path) -> DirectoryLock:
    """Only one consolidation per run directory at a time, whichever command started it."""
    return DirectoryLock(run_dir / "consolidate.lock", f"consolidation of {run_dir}")


def load_policy(cfg: OELConfig, registry: Registry, version: str | None) -> Policy:
    name = f"{cfg.model}+{version}" if version else cfg.model
    return Policy.load(cfg.model, adapters=registry.lineage(version), name=name)


def run_loop(cfg: OELConfig, run_dir: str | Path, console: Console | None = None) -> list[dict]:
    console = console or Console()
    run_dir = Path(run_dir)
    check_model(cfg.model)
    if cfg.reflection_model:
        check_model(cfg.reflection_model)
    prepare_run_dir(cfg, run_dir)
    train, heldout = prepare_games(cfg, run_dir)
    registry = Registry(run_dir / "checkpoints")
    rows = read_rounds(run_dir)

    with open_memory(cfg, run_dir) as memory:
        current = registry.current()
        policy = load_policy(cfg, registry, current)
        if not rows:
            console.print(f"[bold]round 0[/]: evaluating {policy.name} on {len(heldout)} held-out games")
            rows.append(append_row(run_dir, 0, policy.name, summary(evaluate(policy, heldout, cfg, desc="eval round 0")),
                                   memory, "-"))
        for r in range(len(rows), cfg.rounds + 1):
            episodes = play_round(cfg, run_dir, policy, memory, train, r, console)
            console.print(f"  train: won {sum(e['won'] for e in episodes)}/{len(episodes)}; "
                          f"memory holds {memory.count('active')} active items")
            in_context = teacher_eval(cfg, run_dir, policy, memory, episodes, heldout, r) if cfg.eval_in_context else {}
            done = [m for m in registry.manifests() if m.get("round") == r]
            candidate = None
            if done:
                manifest = done[-1]
                console.print(f"  {manifest['version']} was already trained and gated this round: {manifest['status']}")
            else:
                records, knowledge_ids = build_dataset(episodes, memory, cfg.retrieve_k, cfg.teacher_context)
                manifest, candidate = consolidate(cfg, run_dir, registry, records, knowledge_ids, current,
                                                  current_eval(registry, rows), heldout, r, console)
            if manifest and manifest["status"] == "promoted":
                memory.mark_consolidated(manifest["knowledge_ids"], manifest["version"])
                current = manifest["version"]
                policy = candidate or load_policy(cfg, registry, current)  # the one just evaluated, if loaded
                evaluation, gate = manifest["eval"]["after"], f"promoted {current}"
            else:
                evaluation = current_eval(registry, rows)
                gate = f"rejected {manifest['version']}" if manifest else "skipped: no knowledge"
            rows.append(append_row(run_dir, r, policy.name, evaluation, memory, gate, in_context))
    console.print(rounds_table(rows))
    png = plot_rounds(rows, run_dir / "reports" / "learning_curve.png")
    console.print(f"learning curve: {png}\nrun directory: {run_dir}")
    return rows


def play_round(cfg: OELConfig, run_dir: Path, policy: Policy, memory: Memory, train: list[tuple[Path, str]],
               r: int, console: Console) -> list[dict]:
    """Play this round's train games that are not logged yet; return all of the round's episodes."""
    log_path = run_dir / "trajectories" / f"round_{r}.jsonl"
    logged = load_trajectories([log_path])
    played = {e["game"] for e in logged}
    # Items written by an episode that was cut off before it was logged: that game is played again.
    logged_ids = {e["id"] for e in logged}
    orphans = [i.id for i in memory.list("active", round=r) if i.source not in logged_ids]
    if orphans:
        memory.archive(orphans)
        console.print(f"  archived {len(orphans)} items from an interrupted episode")
    if len(played) < len(train):
        console.print(f"[bold]round {r}[/]: playing {len(train) - len(played)} train games with {policy.name}"
                      + (f" ({len(played)} already played)" if played else ""))
    writer = reflection_policy(cfg, policy)
    logged += play_games(policy, train, cfg, r, seed_base=cfg.seed * 7919 + r * 101, log_path=log_path,
                         reflect=make_reflector(writer, memory, cfg, created_by=writer.name),
                         skip=frozenset(played), concurrency=cfg.concurrency, desc=f"play round {r}")
    return logged


def reflection_policy(cfg: OELConfig, policy: Policy) -> Policy:
    """Who writes the knowledge: the acting policy itself, or `cfg.reflection_model` if one is set."""
    return Policy.load(cfg.reflection_model) if cfg.reflection_model else policy


def teacher_eval(cfg: OELConfig, run_dir: Path, policy: Policy, memory: Memory, episodes: list[dict],
                 heldout: list[tuple[Path, str]], r: int) -> dict:
    """Held-out success of round r's teacher: `policy` with what the teacher sees in its prompt (the active
    knowledge, retrieved per situation; for the raw-trajectory baseline, this round's train episodes of
    the game's family; or both, as `cfg.teacher_context` says). Saved, so a resumed run does not evaluate it twice."""
    path = run_dir / "reports" / "in_context.jsonl"
    for row in read_jsonl(path):
        if row["round"] == r:
            return {k: v for k, v in row.items() if k != "round"}
    result = evaluate(policy, heldout, cfg, **teacher_sources(cfg.teacher_context, memory, episodes),
                      desc=f"eval teacher {r}")
    row = {"success_in_context": result["success"], "in_context_ci95": result["ci95"],
           "in_context_steps": result["steps"], "in_context_tokens_per_episode": result["tokens_per_episode"],
           "in_context_wins": result["wins"]}
    with open_append(path) as f:
        f.write(json.dumps({"round": r, **row}) + "\n")
    return row


def current_eval(registry: Registry, rows: list[dict]) -> dict | None:
    """Held-out evaluation of the policy in force: its checkpoint's, or the base model's (round 0)."""
    current = registry.current()
    if current:
        return registry.manifest(current)["eval"]["after"]
    return {k: rows[0][k] for k in (*EVAL_KEYS, "wins") if k in rows[0]} if rows else None


def consolidate(cfg: OELConfig, run_dir: Path, registry: Registry, records: list[dict], knowledge_ids: list[str],
                current: str | None, parent: dict, heldout: list[tuple[Path, str]], r: int,
                console: Console) -> tuple[dict | None, Policy | None]:
    """Distil the dataset into a new adapter, gate it on held-out games, and write the checkpoint.

    `parent` holds the current policy's held-out evaluation (EVAL_KEYS). Returns the manifest and the
    candidate policy it evaluated, or (None, None) if there was nothing to teach. Pruning is the caller's,
    and happens only after a promotion.
    """
    if not records:
        console.print("  no knowledge for these games yet: nothing to consolidate")
        return None, None
    version = registry.next_version()
    console.print(f"  consolidating {len(records)} prefixes with {len(knowledge_ids) or 'raw-trajectory'} "
                  f"knowledge into {version}")
    with consolidation_lock(run_dir):
        started = time.time()
        for stale in run_dir.glob(".consolidate-*"):  # left by a run killed mid-training
            shutil.rmtree(stale, ignore_errors=True)
        with tempfile.TemporaryDirectory(prefix=".consolidate-", dir=run_dir) as tmp:
            student = load_policy(cfg, registry, current)  # a fresh copy: LoRA is injected into it in place
            training = distill(student, records, cfg, Path(tmp))
            del student
            distill_s = time.time() - started
            candidate = Policy.load(cfg.model, adapters=[*registry.lineage(current), Path(tmp) / "adapter"],
                                    name=f"{cfg.model}+{version}")
            after = summary(evaluate(candidate, heldout, cfg, desc=f"eval {version}"))
            promoted = after["success_no_memory"] >= parent["success_no_memory"] - cfg.gate_tolerance
            manifest = {
                "version": version, "parent": current, "status": "promoted" if promoted else "rejected",
                "round": r, "base_model": cfg.model, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "knowledge_ids": knowledge_ids,
                "dataset": {"fingerprint": fingerprint(records), "prefixes": len(records),
                            "teacher_context": cfg.teacher_context},
                "eval": {"before": {k: parent[k] for k in EVAL_KEYS}, "after": after},
                "gate": {"tolerance": cfg.gate_tolerance,
                         "reason": f"held-out success {after['success_no_memory']:.1%} vs parent "
                                   f"{parent['success_no_memory']:.1%} - {cfg.gate_tolerance:.1%}"},
                "training": training,
                "timings": {"distill_s": round(distill_s, 1), "eval_s": round(time.time() - started - distill_s, 1)},
                "config": cfg.to_dict(),
            }
            registry.write(Path(tmp) / "adapter", manifest)
    console.print(f"  gate: {manifest['gate']['reason']} -> {manifest['status']} {version}")
    return manifest, candidate


def summary(evaluation: dict) -> dict:
    """The held-out figures a round row and a checkpoint manifest keep. `wins` is each game's outcome (1/0)
    in the held-out order, so two policies can be compared game by game (a paired test)."""
    return {"success_no_memory": evaluation["success"], "ci95": evaluation["ci95"], "steps": evaluation["steps"],
            "tokens_per_episode": evaluation["tokens_per_episode"], "n_games": evaluation["n_games"],
            "wins": evaluation["wins"]}


def append_row(run_dir: Path, r: int, policy_name: str, evaluation: dict, memory: Memory, gate: str,
               in_context: dict | None = None) -> dict:
    # `wins` is optional: rows and manifests written before it was recorded lack it.
    row = {"round": r, "policy": policy_name, **{k: evaluation[k] for k in EVAL_KEYS},
           **({"wins": evaluation["wins"]} if "wins" in evaluation else {}), **(in_context or {}),
           "memory_active": memory.count("active"), "memory_consolidated": memory.count("consolidated"), "gate": gate}
    path = run_dir / "reports" / "rounds.jsonl"
    with open_append(path) as f:
        f.write(json.dumps(row) + "\n")
    return row


def consolidate_once(run_dir: str | Path, console: Console | None = None) -> dict | None:
    """`oel consolidate`: distil everything logged so far with the active memory, once.

    Idempotent: if the newest checkpoint was trained on exactly this dataset (same fingerprint), or there
    is no active knowledge left, it does nothing. Returns the new manifest, or None.
    """
    console = console or Console()
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    registry = Registry(run_dir / "checkpoints")
    games_file = run_dir / "games.json"
    if not games_file.is_file():
        raise OELError(f"{games_file} is missing: run `oel play` or `oel loop` on {run_dir} to create it")
    games = json.loads(games_file.read_text())
    heldout = [(Path(g), f) for g, f in games["heldout"]]
    episodes = load_trajectories(sorted((run_dir / "trajectories").glob("*.jsonl")))
    if not episodes:
        raise OELError(f"no trajectories in {run_dir}: play first (`oel play` or `oel loop`)")
    with open_memory(cfg, run_dir) as memory:
        records, knowledge_ids = build_dataset(episodes, memory, cfg.retrieve_k, cfg.teacher_context)
        manifests = registry.manifests()
        if records and manifests and manifests[-1]["dataset"]["fingerprint"] == fingerprint(records):
            console.print(f"nothing new: {manifests[-1]['version']} was trained on exactly this data")
            return None
        current = registry.current()
        parent = current_eval(registry, read_rounds(run_dir))
        if parent is None and records:
            console.print(f"evaluating the current policy on {len(heldout)} held-out games (no earlier result)")
            parent = summary(evaluate(load_policy(cfg, registry, current), heldout, cfg, desc="eval parent"))
        manifest, _ = consolidate(cfg, run_dir, registry, records, knowledge_ids, current, parent, heldout,
                                  max(e["round"] for e in episodes), console)
        if manifest and manifest["status"] == "promoted":
            memory.mark_consolidated(manifest["knowledge_ids"], manifest["version"])
        return manifest
