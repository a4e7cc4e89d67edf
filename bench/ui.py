"""Inspector page benchmark: how fast `oel ui` answers over a large memory.

    .venv/bin/python -m bench.ui --items 100000 [--json]

Builds a run whose memory holds N synthetic items (bench.memory_store's lessons, over 4 game families; 70%
active, 20% consolidated, 5% archived, 5% quarantined), then asks the page, in process (Starlette's test
client, so no network in the figures):
- `open`: the first request after start, which takes the read-only snapshot of the memory (a copy);
- `first_page`: the memory view's first page (active items), the page a user lands on;
- `first_page_all` and `first_page_quarantined`: the same with a status filter;
- `search`: a semantic search (the memory's own retrieval; embedding the query included);
- `item`: an item's page (its provenance chain; no checkpoint or episode here).
Each figure but `open` is the median and 95th percentile of `--repeats` requests.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from starlette.testclient import TestClient
from tqdm import tqdm

from bench.common import print_result
from bench.memory_store import OBJECTS, PLACES, VERBS, synthetic_items
from consolidation.loop import write_run_config
from memory.store import Memory
from oel.config import OELConfig
from oel.rundir import RunDir
from oel.ui import create_app

STATUS_MIX = ["active"] * 14 + ["consolidated"] * 4 + ["archived", "quarantined"]


def build_run(run_dir: Path, items: int, quiet: bool) -> list[str]:
    write_run_config(OELConfig(), run_dir)
    rows = synthetic_items(random.Random(0), items)
    for n, row in enumerate(rows):
        status = row["status"] = STATUS_MIX[n % 20]
        row["consolidated_in"] = "v1" if status == "consolidated" else ""
        row["reason"] = "names nothing from its episode" if status == "quarantined" else ""
    with Memory(RunDir(run_dir).memory) as memory:
        for i in tqdm(range(0, len(rows), 1000), desc="build memory", unit="k items", disable=quiet):
            memory.import_items(rows[i:i + 1000])
    return [r["id"] for r in rows]


def timed(page: TestClient, urls: list[str], expect: str = 'href="/items/') -> dict:
    """Each URL asked once: the median and 95th percentile of the request times."""
    latencies = []
    for url in urls:
        start = time.perf_counter()
        response = page.get(url)
        latencies.append(1000 * (time.perf_counter() - start))
        assert response.status_code == 200 and expect in response.text, f"{url} did not show {expect!r}"
    return {"p50_ms": round(statistics.median(latencies), 1), "p95_ms": round(statistics.quantiles(latencies, n=20)[18], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="oel-bench-ui-") as tmp:
        run_dir = Path(tmp) / "run"
        ids = build_run(run_dir, args.items, args.json)
        page = TestClient(create_app(run_dir))
        start = time.perf_counter()
        assert page.get("/memory").status_code == 200
        open_ms = 1000 * (time.perf_counter() - start)
        page.get("/memory?q=warm+up")  # loads the embedding model once, as a running server has
        queries = [f"/memory?q=how+do+I+{rng.choice(VERBS)}+the+{rng.choice(OBJECTS)}+in+the+{rng.choice(PLACES)}"
                   for _ in range(args.repeats)]
        result = {"items": args.items, "open_ms": round(open_ms, 1),
                  "first_page": timed(page, ["/memory"] * args.repeats),
                  "first_page_all": timed(page, ["/memory?status=all"] * args.repeats),
                  "first_page_quarantined": timed(page, ["/memory?status=quarantined"] * args.repeats),
                  "search": timed(page, queries),
                  "item": timed(page, [f"/items/{ids[len(ids) // 2]}"] * args.repeats, expect="Status history")}
    print_result(result, args.json)


if __name__ == "__main__":
    main()
