"""The examples run as a user runs them: missing inputs are one line on stderr, never a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

from memory.store import Memory

pytestmark = pytest.mark.slow  # real model, subprocesses or servers: `make test-fast` leaves it out

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(*args, cwd):
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("example,args", [("inspect_memory.py", ["missing-run"]),
                                          ("scheduled_consolidation.py", ["missing-run"]),
                                          ("store_in_graph.py", ["missing-run"]),
                                          ("embed_agent.py", ["--game", "missing.z8"])])
def test_missing_inputs_are_one_line_errors(example, args, tmp_path):
    done = run(EXAMPLES / example, *args, cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "missing" in done.stderr


def test_a_graph_reads_a_runs_memory_through_runtime_store(tmp_path):
    with Memory(tmp_path / "run" / "memory") as memory:
        memory.add("Go east twice, then take the coin.", env="tw-coin_collector", source="r1-a", outcome="won",
                   round=1, created_by="test")
    done = run(EXAMPLES / "store_in_graph.py", tmp_path / "run", "where is the coin?", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-1500:]
    assert "[insight] Go east twice, then take the coin." in done.stdout
