import json

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
