"""The memory through LangGraph's store API (`runtime.store`), on a real Chroma memory."""

from dataclasses import dataclass, field

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from memory.langgraph_store import KnowledgeStore
from memory.store import Memory
from oel.errors import OELError

COIN = ("knowledge", "tw-coin_collector")


@pytest.fixture
def store(tmp_path):
    with Memory(tmp_path / "memory") as memory:
        memory.add("Go east twice, then take the coin.", env="tw-coin_collector", source="r1-a", outcome="won",
                   round=1, created_by="test")
        memory.add("Open the chest before you look for the key.", env="tw-treasure_hunter", source="r1-b",
                   outcome="lost", round=1, created_by="test")
        yield KnowledgeStore(memory)


def test_a_graph_node_reads_the_memory_through_runtime_store(store):
    @dataclass
    class Ask:
        question: str = ""
        answers: list[str] = field(default_factory=list)

    def recall(state: Ask, runtime: Runtime) -> dict:
        found = runtime.store.search(COIN, query=state.question, limit=2)
        return {"answers": [item.value["text"] for item in found]}

    builder = StateGraph(Ask)
    builder.add_node("recall", recall)
    builder.add_edge(START, "recall")
    builder.add_edge("recall", END)
    out = builder.compile(store=store).invoke({"question": "where is the coin?"})
    assert out["answers"] == ["Go east twice, then take the coin."]  # only its family's items


def test_put_get_search_list_and_delete(store):
    store.put(COIN, "my-lesson", {"text": "Take the coin as soon as you see it.", "kind": "insight"})
    got = store.get(COIN, "my-lesson")
    assert got.value["text"] == "Take the coin as soon as you see it." and got.value["status"] == "active"
    assert store.get(("knowledge", "tw-treasure_hunter"), "my-lesson") is None  # another family's namespace
    hits = store.search(COIN, query="take the coin", limit=5)
    assert hits[0].key == "my-lesson" and 0 < hits[0].score <= 1 and len(hits) == 2
    assert [i.value["text"] for i in store.search(COIN, filter={"source": "langgraph-store"})] == [got.value["text"]]
    assert store.list_namespaces(prefix=("knowledge",)) == [COIN, ("knowledge", "tw-treasure_hunter")]
    store.put(COIN, "my-lesson", {"text": "Take the coin at once."})  # the key now holds the new text
    assert store.get(COIN, "my-lesson").value["text"] == "Take the coin at once."
    with pytest.raises(OELError, match="already holds an item of tw-coin_collector"):
        store.put(("knowledge", "tw-treasure_hunter"), "my-lesson", {"text": "Open the chest."})
    store.delete(COIN, "my-lesson")
    assert store.get(COIN, "my-lesson") is None


@pytest.mark.parametrize("namespace,key,value,message", [
    (COIN, "../escape", {"text": "x"}, "id '../escape' must be letters"),
    (COIN, "k1", {"text": ""}, "text is empty"),
    (("users", "alice"), "k1", {"text": "x"}, "is not ('knowledge', game family)"),
])
def test_bad_puts_are_one_line_errors_and_change_nothing(store, namespace, key, value, message):
    before = store.memory.export()
    with pytest.raises(OELError, match=message.replace("(", r"\(").replace(")", r"\)")):
        store.put(namespace, key, value)
    assert store.memory.export() == before
