"""The memory on a real Chroma PersistentClient with real MiniLM embeddings."""

import pytest

from memory.store import Memory
from oel.errors import OELError

ADD = dict(env="tw-coin_collector", source="ep-1", outcome="won", round=1, created_by="test")


def test_add_merge_search_and_metadata(tmp_path):
    with Memory(tmp_path / "m") as memory:
        a, merged_a = memory.add("Take the coin as soon as you see it.", **ADD)
        b, merged_b = memory.add("Pick up the coin as soon as you see it.", **ADD)
        c, _ = memory.add("Open containers before looking for keys.", **ADD)
        assert (merged_a, merged_b, a == b) == (False, True, True)
        assert memory.get(a).support == 2
        assert {i.id for i in memory.list()} == {a, c}
        [(best, distance)] = memory.search("grab the coin", k=1)
        assert best.id == a and 0 <= distance < 0.5
        item = memory.get(c).to_dict()
        for key in ("id", "text", "env", "source", "outcome", "round", "created_by", "created_at", "support",
                    "status", "consolidated_in"):
            assert key in item


def test_same_text_in_another_env_is_not_merged(tmp_path):
    with Memory(tmp_path / "m") as memory:
        a, _ = memory.add("Explore every exit.", **ADD)
        b, merged = memory.add("Explore every exit.", **{**ADD, "env": "tw-simple"})
        assert not merged and a != b
        assert [i.id for i in memory.retrieve("exits", env="tw-simple", k=5)] == [b]


def test_prune_keeps_items_and_restore_reverses_it(tmp_path):
    with Memory(tmp_path / "m") as memory:
        a, _ = memory.add("Take the coin.", **ADD)
        b, _ = memory.add("Go east when the west is blocked.", **ADD)
        memory.mark_consolidated([a], "v3")
        assert [i.id for i in memory.list("active")] == [b]
        assert memory.get(a).status == "consolidated" and memory.get(a).consolidated_in == "v3"
        assert memory.count("all") == 2
        assert memory.restore("v3") == [a]
        assert memory.count("active") == 2


def test_items_survive_reopening(tmp_path):
    with Memory(tmp_path / "m") as memory:
        a, _ = memory.add("Take the coin.", **ADD)
    with Memory(tmp_path / "m", read_only=True) as memory:
        assert memory.get(a).text == "Take the coin."
        with pytest.raises(OELError, match="read-only"):
            memory.add("x" * 20, **ADD)


def test_second_writer_is_refused_with_holder(tmp_path):
    with Memory(tmp_path / "m"):
        with pytest.raises(OELError, match=r"locked by pid \d+ on .+ since"):
            Memory(tmp_path / "m")
    Memory(tmp_path / "m").close()  # released once the first writer closes


def test_missing_memory_for_reading(tmp_path):
    with pytest.raises(OELError, match="no memory"):
        Memory(tmp_path / "nowhere", read_only=True)


def test_filters_export_import_round_trip(tmp_path):
    with Memory(tmp_path / "a") as memory:
        a, _ = memory.add("Take the coin as soon as you see it.", **ADD)
        memory.add("Take the coin as soon as you see it!", **ADD)  # merged: support 2
        b, _ = memory.add("Unlock doors with the key you found.", **{**ADD, "round": 2, "env": "tw-treasure_hunter"})
        c, _ = memory.add("Read the objective before moving.", **{**ADD, "round": 2})
        memory.mark_consolidated([c], "v1")
        assert [i.id for i in memory.list("active", round=2)] == [b]
        assert [i.id for i in memory.list("active", min_support=2)] == [a]
        assert [i.id for i in memory.list("all", env="tw-coin_collector", round=2)] == [c]
        exported = memory.export()
    with Memory(tmp_path / "b") as copy:
        assert copy.import_items(exported) == (3, 0)
        assert copy.import_items(exported) == (0, 3)
        assert copy.export() == exported
        assert copy.search("grab coins", k=1)[0][0].id == a


def test_archive_delete_and_stats(tmp_path):
    with Memory(tmp_path / "m") as memory:
        a, _ = memory.add("Take the coin as soon as you see it.", **ADD)
        b, _ = memory.add("Unlock doors with the key you found.", **ADD)
        memory.archive([a])
        assert memory.get(a).status == "archived" and memory.count("active") == 1
        memory.unarchive([a])
        memory.delete([b])
        with pytest.raises(OELError, match="no memory item"):
            memory.get(b)
        with pytest.raises(OELError, match="no memory item"):
            memory.delete(["k-missing"])
        stats = memory.stats()
        assert stats["items"] == 1 and stats["by_env"]["tw-coin_collector"]["active"] == 1


def test_retrieve_respects_k_env_and_token_budget(tmp_path):
    with Memory(tmp_path / "m") as memory:
        for n in range(5):
            memory.add(f"Lesson {n}: " + "explore carefully and " * (n + 1) + "win.", **ADD, merge_distance=0.0)
        memory.add("Other family lesson about keys.", **{**ADD, "env": "tw-treasure_hunter"})
        assert len(memory.retrieve("explore", env="tw-coin_collector", k=3)) == 3
        tight = memory.retrieve("explore", env="tw-coin_collector", k=5, max_tokens=20)
        assert sum(len(i.text) // 4 + 1 for i in tight) <= 20
        assert all(i.env == "tw-coin_collector" for i in memory.retrieve("keys", env="tw-coin_collector", k=5))


def test_langchain_retriever(tmp_path):
    from langchain_core.documents import Document

    with Memory(tmp_path / "m") as memory:
        a, _ = memory.add("Take the coin as soon as you see it.", **ADD)
        memory.add("Unlock doors with the key you found.", **ADD)
        docs = memory.as_retriever(k=1).invoke("pick up coins")
        assert isinstance(docs[0], Document) and docs[0].id == a
        assert docs[0].metadata["env"] == "tw-coin_collector" and "distance" in docs[0].metadata
