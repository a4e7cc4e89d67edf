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
from memory.store import Memory
from oel.errors import OELError
from oel.jsonl import open_append, read_jsonl


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


def replaced(registry: Registry) -> list[str]:
    """The tainted checkpoints that no later checkpoint replaces yet: the next one made replaces them."""
    manifests = registry.manifests()
    done = {v for m in manifests for v in m.get("replaces", [])}
    return [m["version"] for m in manifests if m["status"] == "tainted" and m["version"] not in done]


def forgotten_sources(ledger: Path) -> set[str]:
    """The episodes whose items were forgotten (`forget`'s ledger): never reflected on again."""
    return {source for row in read_jsonl(ledger) for source in row.get("sources", [])}

