"""A checkpoint's life, in one place: the gate promotes or rejects it; a promotion prunes the knowledge it
absorbed from the active memory; a rollback retires it and gives that knowledge back. The loop, `oel
consolidate`, `oel checkpoints promote|rollback` and `oel memory restore --checkpoint` all call these.

Statuses: `promoted` (in the lineage; the newest is the policy in force), `rejected` (turned down by the
gate, or never promoted), `rolled_back` (retired by hand). Items absorbed by a promoted checkpoint are
`consolidated` into it; they stay stored, with provenance, and `restore` makes them active again.
"""

from __future__ import annotations

from consolidation.checkpoints import Registry
from memory.store import Memory


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
