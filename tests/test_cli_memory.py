"""`oel memory ...` on a real Chroma memory, as a user would run it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from memory.store import Memory

pytestmark = pytest.mark.slow  # real model, subprocesses or servers: `make test-fast` leaves it out

OEL = str(Path(sys.executable).parent / "oel")
ADD = dict(env="tw-coin_collector", source="ep-1", outcome="won", round=1, created_by="test")


def oel(*args):
    return subprocess.run([OEL, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def run_dir(tmp_path):
    with Memory(tmp_path / "run" / "memory") as memory:
        memory.add("Take the coin as soon as you see it.", **ADD)
        memory.add("Unlock doors with the key you found.", **{**ADD, "env": "tw-treasure_hunter", "round": 2})
    return tmp_path / "run"


def test_read_commands_json(run_dir):
    items = json.loads(oel("memory", "list", "--json", "--run-dir", str(run_dir)).stdout)
    assert len(items) == 2
    only = json.loads(oel("memory", "list", "--json", "--round", "2", "--run-dir", str(run_dir)).stdout)
    assert [i["env"] for i in only] == ["tw-treasure_hunter"]
    found = json.loads(oel("memory", "search", "coins", "-k", "1", "--json", "--run-dir", str(run_dir)).stdout)
    assert found[0]["text"].startswith("Take the coin") and "distance" in found[0]
    shown = json.loads(oel("memory", "show", found[0]["id"], "--json", "--run-dir", str(run_dir)).stdout)
    assert shown["id"] == found[0]["id"]
    stats = json.loads(oel("memory", "stats", "--json", "--run-dir", str(run_dir)).stdout)
    assert stats["by_status"]["active"] == 2


def test_export_import_prune_restore_delete(run_dir, tmp_path):
    export = tmp_path / "mem.jsonl"
    assert oel("memory", "export", str(export), "--run-dir", str(run_dir)).returncode == 0
    other = tmp_path / "other"
    assert oel("memory", "import", str(export), "--run-dir", str(other)).returncode == 0
    again = tmp_path / "again.jsonl"
    oel("memory", "export", str(again), "--run-dir", str(other))
    assert again.read_text() == export.read_text()

    ids = [json.loads(line)["id"] for line in export.read_text().splitlines()]
    assert oel("memory", "prune", "--env", "tw-coin_collector", "--run-dir", str(run_dir)).returncode == 0
    archived = json.loads(oel("memory", "list", "--status", "archived", "--json", "--run-dir", str(run_dir)).stdout)
    assert len(archived) == 1
    assert oel("memory", "restore", archived[0]["id"], "--run-dir", str(run_dir)).returncode == 0

    refused = oel("memory", "delete", ids[0], "--run-dir", str(run_dir))
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert oel("memory", "delete", ids[0], "--yes", "--run-dir", str(run_dir)).returncode == 0
    left = json.loads(oel("memory", "list", "--status", "all", "--json", "--run-dir", str(run_dir)).stdout)
    assert [i["id"] for i in left] == ids[1:]


def test_bad_import_file_and_locked_memory(run_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "k-1"}\nnot json\n')
    done = oel("memory", "import", str(bad), "--run-dir", str(run_dir))
    assert done.returncode == 1 and "line 2 is not JSON" in done.stderr
    with Memory(run_dir / "memory"):  # another writer holds the memory
        done = oel("memory", "prune", "--env", "tw-coin_collector", "--run-dir", str(run_dir))
    assert done.returncode == 1 and "locked by pid" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_kinds_utility_and_quarantine_through_the_cli(tmp_path):
    run = tmp_path / "run"
    with Memory(run / "memory") as memory:
        procedure, _ = memory.add("Won in 1 step: [There is a coin [/] on the floor.] take coin -> score", **ADD,
                                  kind="procedure", signature="take coin")
        memory.set_utility({procedure: (0.25, 8)})
        bad, _ = memory.add("The rules of this game are the rules of the game.", **ADD,
                            quarantine="names no command, object or room of its episode")
    table = oel("memory", "list", "--status", "all", "--run-dir", str(run))
    assert table.returncode == 0, table.stderr
    for shown in ("procedure", "insight", "+0.250", "quarantined"):  # short: the table wraps long cells
        assert shown in table.stdout
    everything = json.loads(oel("memory", "list", "--status", "all", "--json", "--run-dir", str(run)).stdout)
    assert [i["reason"] for i in everything if i["id"] == bad] == ["names no command, object or room of its episode"]
    assert "[/]" in table.stdout  # item text is printed as text, never read as markup
    only = json.loads(oel("memory", "list", "--kind", "procedure", "--json", "--run-dir", str(run)).stdout)
    assert [(i["id"], i["utility"], i["utility_n"]) for i in only] == [(procedure, 0.25, 8)]
    assert json.loads(oel("memory", "list", "--json", "--run-dir", str(run)).stdout)[0]["id"] == procedure
    stats = json.loads(oel("memory", "stats", "--json", "--run-dir", str(run)).stdout)
    assert stats["by_status"]["quarantined"] == 1 and stats["by_kind"] == {"insight": 1, "procedure": 1}
    assert "utility measured on 1 active items" in oel("memory", "stats", "--run-dir", str(run)).stdout
    assert oel("memory", "restore", bad, "--run-dir", str(run)).returncode == 0  # releases it
    assert json.loads(oel("memory", "show", bad, "--json", "--run-dir", str(run)).stdout)["status"] == "active"
    wrong = oel("memory", "list", "--kind", "rule", "--run-dir", str(run))
    assert wrong.returncode == 1 and "unknown item kind 'rule'" in wrong.stderr


def test_a_read_only_run_directory_reads_and_refuses_writes_in_one_line(run_dir):
    """Reads work on a private copy (Chroma rewrites its index files on open); writes say what is wrong."""
    import hashlib
    import shutil

    export = run_dir.parent / "items.jsonl"
    assert oel("memory", "export", str(export), "--run-dir", str(run_dir)).returncode == 0
    (run_dir.parent / "other.jsonl").write_text(export.read_text().replace('"k-', '"k-new-'))
    if shutil.which("chattr") is None or subprocess.run(["chattr", "-R", "+i", str(run_dir)]).returncode != 0:
        pytest.skip("chattr +i is not available here (needs a supporting filesystem and CAP_LINUX_IMMUTABLE)")
    try:
        def digest():
            return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run_dir.rglob("*")) if p.is_file()}

        before = digest()
        for args in (["memory", "list", "--json"], ["memory", "stats"], ["memory", "search", "coin"]):
            done = oel(*args, "--run-dir", str(run_dir))
            assert done.returncode == 0, done.stderr
        for args in (["memory", "prune", "--env", "tw-coin_collector"], ["memory", "import", str(run_dir.parent / "other.jsonl")]):
            done = oel(*args, "--run-dir", str(run_dir))
            assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
            assert "read-only" in done.stderr or "cannot" in done.stderr
        assert digest() == before
    finally:
        subprocess.run(["chattr", "-R", "-i", str(run_dir)])
