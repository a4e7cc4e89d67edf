"""The memory as a LangChain VectorStore: writes go through Memory (merging, provenance), reads are its
search, with relevance scores, MMR, filters and a retriever."""

import pytest

from memory.store import Memory
from memory.vectorstore import MemoryVectorStore, MiniLMEmbeddings
from oel.errors import OELError


@pytest.fixture
def memory(tmp_path):
    with Memory(tmp_path / "memory") as memory:
        yield memory


def test_texts_added_through_the_store_are_memory_items_and_merge(memory):
    store = memory.as_vectorstore(env="tw-coin_collector")
    first = store.add_texts(["Go east to find the coin.", "Open the chest with the key."],
                            metadatas=[{"source": "r1-a", "outcome": "won"}, {"kind": "insight"}])
    [again] = store.add_texts(["Move east to get the coin."])  # a paraphrase: it merges (support + 1)
    assert again == first[0] and memory.get(first[0]).support == 2
    assert memory.get(first[0]).source == "r1-a" and memory.get(first[1]).source == "langchain"
    with pytest.raises(OELError, match="without ids"):
        store.add_texts(["x"], ids=["mine"])
    with pytest.raises(OELError, match="needs an env"):
        memory.as_vectorstore().add_texts(["Take the coin."])


def test_search_relevance_mmr_filters_and_retriever(memory):
    store = MemoryVectorStore.from_texts(
        ["Go east to find the coin.", "Go east, then north, to find the coin.", "Unlock the chest with the key.",
         "Look for the coin in the kitchen."], memory=memory, env="tw-coin_collector")
    memory.add("Take the coin in the cellar.", env="tw-treasure_hunter", source="s", outcome="won", round=1,
               created_by="test")
    [(doc, distance)] = store.similarity_search_with_score("where is the coin? go east", k=1)
    assert doc.page_content.startswith("Go east") and 0 <= distance < 1
    scored = store.similarity_search_with_relevance_scores("find the coin", k=3)
    assert [s for _, s in scored] == sorted((s for _, s in scored), reverse=True) and all(0 < s <= 1 for _, s in scored)
    assert all(d.metadata["env"] == "tw-coin_collector" for d, _ in scored)  # the store's env only
    diverse = store.max_marginal_relevance_search("find the coin", k=2, fetch_k=4, lambda_mult=0.1)
    assert len({d.id for d in diverse}) == 2
    assert store.similarity_search("coin", k=4, kind="procedure") == []
    docs = store.as_retriever(search_kwargs={"k": 2}).invoke("find the coin")
    assert len(docs) == 2 and store.get_by_ids([docs[0].id])[0].page_content == docs[0].page_content
    store.delete([docs[0].id])
    assert store.get_by_ids([docs[0].id]) == []


def test_embeddings_are_the_memorys_own():
    from memory.store import embed

    assert MiniLMEmbeddings().embed_query("find the coin") == embed(["find the coin"])[0]
