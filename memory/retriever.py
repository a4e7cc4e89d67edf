"""The memory as a LangChain retriever, for use in any LangChain chain or agent.

It takes the settings a LangChain `VectorStoreRetriever` takes, so code written for one works with the
other: `search_type` ("similarity", "mmr" or "similarity_score_threshold") and `search_kwargs` (`k`,
`fetch_k` and `lambda_mult` for MMR, `score_threshold`), plus the memory's own filters in `search_kwargs`:
`env`, `status` (default "active"; "consolidated" or "all" reach what is already in the weights), `kind`,
`round` and `min_support`. `k` may also be given per call: `retriever.invoke(query, k=2)`.

Each Document carries the item's metadata (provenance, support, status, kind, utility), its cosine
`distance`, and `relevance_score` = 1 - distance, LangChain's relevance for cosine distance (1 = the same
direction).
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, model_validator

from oel.errors import OELError

FILTERS = ("env", "status", "kind", "round", "min_support")
SEARCH_KWARGS = ("k", "fetch_k", "lambda_mult", "score_threshold", *FILTERS)


class MemoryRetriever(BaseRetriever):
    """Returns the nearest knowledge items as Documents, with their metadata and relevance."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    memory: Any
    env: str | None = None
    k: int = 4
    search_type: Literal["similarity", "mmr", "similarity_score_threshold"] = "similarity"
    search_kwargs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_search_kwargs(self) -> MemoryRetriever:
        unknown = sorted(set(self.search_kwargs) - set(SEARCH_KWARGS))
        if unknown:
            raise ValueError(f"unknown search_kwargs {unknown}; use {', '.join(SEARCH_KWARGS)}")
        if self.search_type == "similarity_score_threshold" and "score_threshold" not in self.search_kwargs:
            raise ValueError("search_type='similarity_score_threshold' needs search_kwargs={'score_threshold': x}")
        return self

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: int | None = None, **search_kwargs: Any) -> list[Document]:
        settings = {**self.search_kwargs, **search_kwargs}
        unknown = sorted(set(settings) - set(SEARCH_KWARGS))
        if unknown:
            raise OELError(f"unknown retriever arguments {unknown}; use {', '.join(SEARCH_KWARGS)}")
        k = k if k is not None else settings.get("k", self.k)
        filters = {"env": self.env, **{f: settings[f] for f in FILTERS if f in settings}}
        filters.setdefault("status", "active")
        fetch = max(k, settings.get("fetch_k", 20)) if self.search_type == "mmr" else k
        found = self.memory.search(query, fetch, **filters)
        if self.search_type == "mmr":
            found = mmr(query, found, k, settings.get("lambda_mult", 0.5))
        threshold = settings.get("score_threshold")
        return [as_document(item, distance) for item, distance in found
                if threshold is None or 1.0 - distance >= threshold]


def as_document(item, distance: float | None = None) -> Document:
    """An item as a Document: its text, id and metadata, with its distance and relevance when searched."""
    metadata = item.to_dict()
    if distance is not None:
        metadata.update(distance=distance, relevance_score=1.0 - distance)
    return Document(page_content=item.text, id=item.id, metadata=metadata)


def mmr(query: str, found: list, k: int, lambda_mult: float) -> list:
    """Maximal marginal relevance (LangChain's own implementation) over the nearest `found` items."""
    if not found:
        return []
    import numpy as np
    from langchain_core.vectorstores.utils import maximal_marginal_relevance

    from memory.store import embed

    vectors = embed([query] + [item.text for item, _ in found])
    chosen = maximal_marginal_relevance(np.array(vectors[0]), vectors[1:], lambda_mult=lambda_mult, k=k)
    return [found[i] for i in chosen]
