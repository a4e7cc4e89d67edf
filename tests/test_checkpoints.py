import json
import os

import pytest

from consolidation.checkpoints import Registry
from oel.errors import OELError


def fake_adapter(path):
    path.mkdir()
    (path / "adapter_config.json").write_text("{}")
    return path


def test_write_list_lineage_current(tmp_path):
    reg = Registry(tmp_path / "ckpt")
    assert reg.versions() == [] and reg.current() is None and reg.next_version() == "v1"
    reg.write(fake_adapter(tmp_path / "a1"), {"version": "v1", "parent": None, "status": "promoted"})
    reg.write(fake_adapter(tmp_path / "a2"), {"version": "v2", "parent": "v1", "status": "rejected"})
    reg.write(fake_adapter(tmp_path / "a3"), {"version": "v3", "parent": "v1", "status": "promoted"})
    assert reg.versions() == ["v1", "v2", "v3"]
    assert reg.current() == "v3"
    assert [p.name for p in reg.lineage("v3")] == ["v1", "v3"]
    with pytest.raises(OELError, match="already exists"):
        reg.write(fake_adapter(tmp_path / "a4"), {"version": "v3", "parent": None, "status": "promoted"})


def test_half_written_checkpoint_is_invisible(tmp_path):
    reg = Registry(tmp_path / "ckpt")
    (tmp_path / "ckpt" / ".tmp-v1-123").mkdir(parents=True)  # a crash mid-write leaves this behind
    (tmp_path / "ckpt" / "v9").mkdir()  # no manifest: never completed
    assert reg.versions() == [] and reg.current() is None


def test_corrupt_manifest_is_a_clear_error(tmp_path):
    reg = Registry(tmp_path / "ckpt")
    reg.write(fake_adapter(tmp_path / "a1"), {"version": "v1", "parent": None, "status": "promoted"})
    (tmp_path / "ckpt" / "v1" / "manifest.json").write_text("{not json")
    with pytest.raises(OELError, match="corrupt"):
        reg.manifest("v1")


def test_set_status_rewrites_only_the_status(tmp_path):
    reg = Registry(tmp_path / "ckpt")
    reg.write(fake_adapter(tmp_path / "a1"), {"version": "v1", "parent": None, "status": "promoted", "eval": {"x": 1}})
    reg.set_status("v1", "rejected")
    manifest = json.loads((tmp_path / "ckpt" / "v1" / "manifest.json").read_text())
    assert manifest == {"version": "v1", "parent": None, "status": "rejected", "eval": {"x": 1}}
    assert reg.current() is None


def _manifest(version, parent=None):
    return {"version": version, "parent": parent, "status": "promoted", "round": 1, "knowledge_ids": [],
            "dataset": {"fingerprint": "f", "prefixes": 1}, "eval": {"before": {}, "after": {}}}


def test_versions_are_names_in_this_registry_never_paths(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    other = Registry(tmp_path / "other" / "checkpoints")
    other.write(adapter, _manifest("v1"))
    here = Registry(tmp_path / "here" / "checkpoints")
    before = (tmp_path / "other" / "checkpoints" / "v1" / "manifest.json").read_text()
    for bad in (str(tmp_path / "other" / "checkpoints" / "v1"), "../../other/checkpoints/v1", "v1/..", "latest"):
        with pytest.raises(OELError, match="not a name like v1"):
            here.set_status(bad, "promoted")
    assert (tmp_path / "other" / "checkpoints" / "v1" / "manifest.json").read_text() == before


def test_an_incomplete_registry_is_refused_with_how_to_repair_it(tmp_path):
    root = tmp_path / "checkpoints"
    (root / "v1").mkdir(parents=True)  # an adapter directory whose manifest never got written
    with pytest.raises(OELError, match=r"v1 has no manifest.json .* move that directory out"):
        Registry(root)
    (root / "v1" / "manifest.json").write_text(json.dumps({"version": "v1", "status": "promoted"}))
    with pytest.raises(OELError, match="lacks parent, round, knowledge_ids, dataset, eval"):
        Registry(root)


def test_a_killed_write_leaves_no_litter_on_the_next_open(tmp_path):
    root = tmp_path / "checkpoints"
    dead = root / ".tmp-v1-999999999"  # no such process
    dead.mkdir(parents=True)
    live = root / f".tmp-v2-{os.getpid()}"  # a write in progress
    live.mkdir()
    registry = Registry(root)
    assert not dead.exists() and live.exists() and registry.next_version() == "v1"


def test_gate_promotes_within_the_tolerance_and_rejects_beyond_it():
    from consolidation.lifecycle import gate_status

    assert gate_status(0.75, 0.75, 0.0) == "promoted"  # no worse is enough
    assert gate_status(0.6875, 0.75, 0.0) == "rejected"
    assert gate_status(0.6875, 0.75, 0.0625) == "promoted"  # one game of 16 within the tolerance
    assert gate_status(0.625, 0.75, 0.0625) == "rejected"


def test_promote_prunes_what_it_absorbed_and_rollback_gives_it_back(tmp_path):
    from consolidation import lifecycle
    from memory.store import Memory

    registry = Registry(tmp_path / "checkpoints")
    with Memory(tmp_path / "memory") as memory:
        kept, _ = memory.add("Take the coin as soon as you see it.", env="tw-coin_collector", source="e1",
                          outcome="won", round=1, created_by="hand")
        other, _ = memory.add("Go east when the room has an exit to the east.", env="tw-coin_collector", source="e2",
                           outcome="won", round=1, created_by="hand")
        registry.write(fake_adapter(tmp_path / "a1"), {"version": "v1", "parent": None, "status": "rejected", "round": 1,
                                                        "knowledge_ids": [kept], "dataset": {}, "eval": {}})
        assert registry.current() is None
        assert lifecycle.promote(registry, memory, "v1") == [kept]
        assert registry.current() == "v1"
        assert [i.id for i in memory.list("active")] == [other]
        assert memory.get(kept).consolidated_in == "v1"
        assert lifecycle.rollback(registry, memory) == ("v1", [kept])
        assert registry.current() is None and registry.manifest("v1")["status"] == "rolled_back"
        assert sorted(i.id for i in memory.list("active")) == sorted([kept, other])
        assert lifecycle.rollback(registry, memory) is None  # the base model is in force: nothing to retire


def test_forget_taints_what_was_trained_on_the_item_and_everything_built_on_it(tmp_path):
    from consolidation import lifecycle
    from memory.store import Memory

    registry = Registry(tmp_path / "checkpoints")
    with Memory(tmp_path / "memory") as memory:
        bad, _ = memory.add("Take the coin as soon as you see it.", env="tw-coin_collector", source="e1",
                            outcome="won", round=1, created_by="hand")
        good, _ = memory.add("Go east when the room has an exit to the east.", env="tw-coin_collector", source="e2",
                             outcome="won", round=1, created_by="hand")
        later, _ = memory.add("Open the chest before you take the key.", env="tw-treasure_hunter", source="e3",
                              outcome="won", round=2, created_by="hand")
        for n, (version, parent, ids) in enumerate([("v1", None, [bad, good]), ("v2", "v1", [later]),
                                                    ("v3", "v1", [])], 1):
            registry.write(fake_adapter(tmp_path / f"a{n}"), {"version": version, "parent": parent, "status": "rejected",
                                                              "round": n, "knowledge_ids": ids, "dataset": {}, "eval": {}})
        lifecycle.promote(registry, memory, "v1")
        lifecycle.promote(registry, memory, "v2")
        done = lifecycle.forget(registry, memory, [bad], reason="wrong")
        # v2 and v3 hold v1's adapter (their parent): all three are tainted; the base model is in force again
        assert done == {"tainted": ["v1", "v2", "v3"], "restored": [good, later], "in_force": None}
        assert sorted(i.id for i in memory.list("all")) == sorted([good, later])
        assert {i.status for i in memory.list("all")} == {"active"}
        with pytest.raises(OELError, match="tainted"):
            lifecycle.promote(registry, memory, "v2")
        assert lifecycle.replaced(registry) == ["v1", "v2", "v3"]
