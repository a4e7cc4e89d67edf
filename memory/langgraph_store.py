"""The memory as a LangGraph store: `runtime.store` in any graph, as LangMem-style apps use it.

    from langgraph.graph import StateGraph
    from memory.langgraph_store import KnowledgeStore

    app = builder.compile(store=KnowledgeStore(memory))
    # in a node: runtime.store.search(("knowledge", "tw-coin_collector"), query="find the coin", limit=4)

Namespaces are `("knowledge", env)`: one per game family. Keys are item ids. Values are the item's fields
(`text`, `kind`, `status`, `support`, `utility`, `source`, ...), so a graph reads what `oel memory show`
shows.

- `search` with a `query` is the memory's own semantic search (MiniLM cosine distance; the score is
  1 - distance); without one it lists the namespace's items, oldest first. `filter` matches value fields
  (equality); `filter={"status": ...}` picks a status other than `active` (quarantined items are found
  only so).
- `put(ns, key, {"text": ..., ...})` stores the text under that key as a new active item (replacing an item
  of that key); optional value fields: `kind`, `source`, `outcome`, `round`, `created_by`. It goes through
  the same validation as `oel memory import`, so the key and the text are checked and sanitised. Items
  are never merged here: a key given by the caller is an identity the caller keeps.
- `delete` removes the item for good, as `oel memory delete` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime, timezone

from langgraph.store.base import (BaseStore, GetOp, Item, ListNamespacesOp, Op, PutOp, Result, SearchItem,
                                  SearchOp)

from memory.store import Memory, validated_item
from oel.errors import OELError

ROOT = "knowledge"
"""The first label of every namespace this store holds."""


class KnowledgeStore(BaseStore):
    def __init__(self, memory: Memory):
        self.memory = memory

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        return [self._one(op) for op in ops]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await asyncio.to_thread(self.batch, list(ops))

    def _one(self, op: Op) -> Result:
        if isinstance(op, GetOp):
            return self._get(op)
        if isinstance(op, SearchOp):
            return self._search(op)
        if isinstance(op, PutOp):
            return self._put(op)
        if isinstance(op, ListNamespacesOp):
            return self._namespaces(op)
        raise OELError(f"unsupported store operation {type(op).__name__}")

    def _stored(self, key: str):
        """The item stored under `key`, whatever its family, or None."""
        try:
            return self.memory.get(key)
        except OELError:  # no such item
            return None

    def _get(self, op: GetOp) -> Item | None:
        env = env_of(op.namespace)
        item = self._stored(op.key)
        if item is None or item.env != env:
            return None
        created = datetime.fromisoformat(item.created_at)
        return Item(value=value_of(item), key=item.id, namespace=(ROOT, env), created_at=created, updated_at=created)

    def _search(self, op: SearchOp) -> list[SearchItem]:
        env = env_of(op.namespace_prefix, prefix=True)
        wanted = dict(op.filter or {})
        status = wanted.pop("status", "active")
        if op.query:
            found = self.memory.search(op.query, k=op.limit + op.offset + 8 * bool(wanted), status=status, env=env)
            pairs = [(item, 1.0 - distance) for item, distance in found]
        else:
            pairs = [(item, None) for item in self.memory.list(status, env=env)]
        pairs = [(item, score) for item, score in pairs if all(value_of(item).get(k) == v for k, v in wanted.items())]
        return [as_store_item(item, score) for item, score in pairs[op.offset:op.offset + op.limit]]

    def _put(self, op: PutOp) -> None:
        env = env_of(op.namespace)
        old = self._stored(op.key)
        if old is not None and old.env != env:  # ids are unique across families
            raise OELError(f"key {op.key!r} already holds an item of {old.env}, not {env}")
        if op.value is None:
            if old is not None:
                self.memory.delete([old.id])
            return None
        value = dict(op.value)
        row = {"id": op.key, "text": value.get("text"), "env": env, "source": value.get("source", "langgraph-store"),
               "outcome": value.get("outcome", "unknown"), "round": value.get("round", 0),
               "created_by": value.get("created_by", "langgraph-store"),
               "created_at": datetime.now(timezone.utc).isoformat(timespec="microseconds"), "support": 1,
               "status": "active", "consolidated_in": "", "kind": value.get("kind", "insight")}
        validated_item(row, f"store put {op.key!r}")  # every problem before the old item goes
        if old is not None:
            self.memory.delete([old.id])
        self.memory.import_items([row])
        return None

    def _namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        spaces = sorted({(ROOT, item.env) for item in self.memory.list("all")})
        for condition in op.match_conditions or ():
            size = len(condition.path)
            part = (lambda ns: ns[:size]) if condition.match_type == "prefix" else (lambda ns: ns[-size:])
            spaces = [ns for ns in spaces if len(ns) >= size and all(p in ("*", q) for p, q in zip(condition.path, part(ns)))]
        if op.max_depth is not None:
            spaces = sorted(set(ns[:op.max_depth] for ns in spaces))
        return spaces[op.offset:op.offset + op.limit]


def env_of(namespace: tuple[str, ...], prefix: bool = False) -> str | None:
    """The game family a namespace names; None for the root when searching by prefix."""
    if prefix and tuple(namespace) in ((), (ROOT,)):
        return None
    if len(namespace) != 2 or namespace[0] != ROOT:
        raise OELError(f"namespace {namespace!r} is not ({ROOT!r}, game family)")
    return namespace[1]


def value_of(item) -> dict:
    return {k: v for k, v in item.to_dict().items() if k not in ("id", "env")}


def as_store_item(item, score: float | None) -> SearchItem:
    created = datetime.fromisoformat(item.created_at)
    return SearchItem(namespace=(ROOT, item.env), key=item.id, value=value_of(item), created_at=created,
                      updated_at=created, score=score)
