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
