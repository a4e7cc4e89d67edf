"""The memory as a LangChain retriever, for use in any LangChain chain or agent."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever


class MemoryRetriever(BaseRetriever):
    """Returns the nearest active knowledge items as Documents, with their metadata."""

    memory: Any
    env: str | None = None
    k: int = 4

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        found = self.memory.search(query, self.k, "active", self.env)
        return [Document(page_content=item.text, metadata={**item.to_dict(), "distance": distance}, id=item.id)
                for item, distance in found]
