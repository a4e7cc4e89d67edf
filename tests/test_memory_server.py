"""A real Chroma server (`chroma run`) on localhost, shared by 4 concurrent writer processes."""

import subprocess
import sys

import pytest

from memory.store import Memory
from tests.conftest import free_port

pytestmark = pytest.mark.slow  # real model, subprocesses or servers: `make test-fast` leaves it out

WRITER = """
import sys
import oel
from memory.store import Memory
url, worker = sys.argv[1], int(sys.argv[2])
memory = Memory(url=url)
for n in range(10):
    memory.add(f"Worker {worker} lesson {n}: " + ["open", "take", "go", "examine", "unlock"][n % 5] + f" thing {worker * 100 + n}",
               env="tw-test", source=f"w{worker}", outcome="won", round=worker, created_by="test", merge_distance=0.0)
"""


def test_four_concurrent_writers_lose_nothing(chroma_server, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    writers = [subprocess.Popen([sys.executable, str(script), chroma_server, str(w)], stderr=subprocess.PIPE, text=True)
               for w in range(4)]
    for w in writers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err[-1500:]
    memory = Memory(url=chroma_server)
    items = memory.list("all")
    assert len(items) == 40
    assert sorted({i.source for i in items}) == ["w0", "w1", "w2", "w3"]


def test_unreachable_server_is_one_clear_error():
    from oel.errors import OELError

    with pytest.raises(OELError, match="cannot reach Chroma server"):
        Memory(url=f"http://127.0.0.1:{free_port()}")


def test_query_retries_only_the_transient_index_not_ready_error():
    """The shared server's race (see memory.store._query) is retried; any other error surfaces at once."""
    from memory.store import _query

    class Collection:
        def __init__(self, error):
            self.error, self.calls = error, 0

        def query(self, **kwargs):
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError(self.error)
            return {"ids": [["k-1"]]}

    racing = Collection("Error executing plan: Internal error: Error creating hnsw segment reader: Nothing found on disk")
    assert _query(racing, n_results=1) == {"ids": [["k-1"]]} and racing.calls == 2
    broken = Collection("Collection expecting embedding with dimension of 384, got 3")
    with pytest.raises(RuntimeError, match="dimension"):
        _query(broken, n_results=1)
    assert broken.calls == 1
