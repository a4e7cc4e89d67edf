"""A checkpoint's life, in one place: the gate promotes or rejects it; a promotion prunes the knowledge it
absorbed from the active memory; a rollback retires it and gives that knowledge back. The loop, `oel
consolidate`, `oel checkpoints promote|rollback` and `oel memory restore --checkpoint` all call these.

Statuses: `promoted` (in the lineage; the newest is the policy in force), `rejected` (turned down by the
gate, or never promoted), `rolled_back` (retired by hand), `tainted` (trained on an item that was later
forgotten, or on top of such a checkpoint: never promoted again). Items absorbed by a promoted checkpoint
are `consolidated` into it; they stay stored, with provenance, and `restore` makes them active again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from consolidation.checkpoints import Registry
from memory.store import Memory, no_memory_at, open_memory
from oel.config import OELConfig, load_run_config
from oel.errors import OELError
from oel.jsonl import open_append, read_jsonl
from oel.rundir import RunDir
from oel.text import sanitize


def passes_gate(after: float, before: float, tolerance: float) -> bool:
    """The gate: a candidate is promoted if its validation success is no worse than the policy in force's
    beyond `tolerance` (a fraction, like the successes)."""
    return after >= before - tolerance


def gate_status(after: float, before: float, tolerance: float) -> str:
    """The status a new checkpoint is written with."""
    return "promoted" if passes_gate(after, before, tolerance) else "rejected"


def prune_absorbed(registry: Registry, memory: Memory, version: str) -> list[str]:
    """After a promotion: the knowledge `version` absorbed leaves the active memory, marked consolidated into
    it. Idempotent, so a resumed loop simply does it again. Returns the item ids."""
    ids = registry.manifest(version)["knowledge_ids"]
    memory.mark_consolidated(ids, version)
    return ids


def promote(registry: Registry, memory: Memory, version: str) -> list[str]:
    """Make `version` the policy in force (overriding the gate), and prune what it absorbed."""
    if registry.manifest(version)["status"] == "tainted":
        raise OELError(f"{version} is tainted (trained on forgotten knowledge) and can never be promoted again; "
                       "consolidate afresh with `oel consolidate`")
    registry.set_status(version, "promoted")
    return prune_absorbed(registry, memory, version)


def restore(memory: Memory, version: str) -> list[str]:
    """Every item consolidated into `version` becomes active again. Returns their ids."""
    return memory.restore(version)


def rollback(registry: Registry, memory: Memory) -> tuple[str, list[str]] | None:
    """Retire the policy in force: its parent takes over, and what it absorbed is active again. Returns the
    retired version and the restored ids, or None when the base model is in force."""
    current = registry.current()
    if current is None:
        return None
    registry.set_status(current, "rolled_back")
    return current, restore(memory, current)


def forget(registry: Registry, memory: Memory, item_ids: list[str], reason: str = "forgotten",
           ledger: Path | None = None) -> dict:
    """Take items out of the memory and out of the weights.

    Every checkpoint trained with one of them (whatever the gate said), and every checkpoint trained on top of
    those, is marked `tainted` with the reason and the time, so the policy in force becomes the newest
    untainted promoted checkpoint (the base model if there is none), as a rollback makes it. The other items
    those checkpoints absorbed become active again, so nothing but the forgotten items is lost, and the next
    consolidation (`oel consolidate`, a loop round) distils them again; its manifest names the checkpoints it
    replaces. With `ledger` (the run's `forgotten.jsonl`), each item's id, source episodes, reason and time
    (never its text) are appended there first: a resumed round never reflects on those episodes again, so a
    forgotten item cannot come back. The items are deleted last, so a forget that was cut off is finished by
    running it again. Returns what changed: `tainted`, `restored` (item ids), `in_force`."""
    items = [memory.get(i) for i in item_ids]  # an unknown id fails here, before anything changes
    ids = {i.id for i in items}
    trained = {m["version"] for m in registry.manifests() if ids & set(m["knowledge_ids"])}
    tainted = sorted(registry.descendants(trained), key=lambda v: int(v[1:]))
    at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if ledger is not None:
        with open_append(ledger) as f:
            for item in items:
                f.write(json.dumps({"id": item.id, "sources": item.sources, "reason": reason, "at": at}) + "\n")
    for version in tainted:
        registry.set_status(version, "tainted", tainted={"reason": reason, "at": at, "items": sorted(ids)})
    restored = [i for version in tainted for i in restore(memory, version) if i not in ids]
    memory.delete(sorted(ids))
    return {"tainted": tainted, "restored": restored, "in_force": registry.current()}


def forget_in_run(run_dir: str | Path, item_ids: list[str], reason: str = "forgotten") -> dict:
    """`forget` on the run at `run_dir`: its checkpoints, its memory (with the writer lock) and its ledger.
    What `oel memory forget` and the inspector page's forget button both call."""
    run = RunDir(run_dir)
    registry = Registry(run.checkpoints)
    with open_memory(load_run_config(run_dir), run_dir) as memory:
        return forget(registry, memory, item_ids, reason=sanitize(reason, 200) or "forgotten", ledger=run.forgotten)


def open_run_memory(run_dir: str | Path, memory_url: str | None = None, write: bool = False,
                    create: bool = False) -> Memory:
    """The memory of the run at `run_dir`, with the run's own settings (its Chroma server if it uses one),
    or `memory_url` instead. What the CLI's `oel memory` commands and the inspector page open: reading takes
    a snapshot, writing takes the writer lock. Only `create` (an import) makes a memory where there is none:
    a mistyped --run-dir is an error, never a new empty memory."""
    cfg_path = RunDir(run_dir).config
    cfg = OELConfig.from_file(cfg_path) if cfg_path.is_file() else OELConfig()
    if memory_url:
        cfg.memory_url = memory_url
    path = RunDir(run_dir).memory
    if write and not cfg.memory_url:
        if create:
            path.mkdir(parents=True, exist_ok=True)
        elif not path.is_dir():
            raise no_memory_at(path)
    return open_memory(cfg, run_dir, read_only=not write)


def replaced(registry: Registry) -> list[str]:
    """The tainted checkpoints that no later checkpoint replaces yet: the next one made replaces them."""
    manifests = registry.manifests()
    done = {v for m in manifests for v in m.get("replaces", [])}
    return [m["version"] for m in manifests if m["status"] == "tainted" and m["version"] not in done]


def forgotten_sources(ledger: Path) -> set[str]:
    """The episodes whose items were forgotten (`forget`'s ledger): never reflected on again."""
    return {source for row in read_jsonl(ledger) for source in row.get("sources", [])}

