"""Memory benchmark: bulk insert rate, single-insert rate (with the near-duplicate check), and query
latency at N items. Query time includes embedding the query with MiniLM, as in real retrieval.

    .venv/bin/python -m bench.memory_store --items 100000 [--json]

Items are synthetic lessons built from a seeded vocabulary, spread over 4 game families; queries ask
for one family's active items, exactly as the consolidation teacher does.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time

from tqdm import tqdm

from bench.common import print_result
from memory.store import Memory

VERBS = ["take", "open", "unlock", "examine", "go", "drop", "eat", "put", "close", "insert", "look at", "search"]
OBJECTS = ["coin", "key", "door", "chest", "drawer", "apple", "lamp", "box", "table", "fridge", "map", "sword"]
PLACES = ["kitchen", "cellar", "attic", "garden", "bedroom", "studio", "pantry", "hall", "shed", "vault"]
WHEN = ["first", "before moving on", "as soon as you see it", "when the exit is blocked", "after reading the goal"]
ENVS = ["tw-coin_collector", "tw-treasure_hunter", "tw-simple", "tw-cooking"]


def lesson(rng: random.Random, n: int) -> str:
    return (f"{rng.choice(VERBS).capitalize()} the {rng.choice(OBJECTS)} in the {rng.choice(PLACES)} "
            f"{rng.choice(WHEN)}, then {rng.choice(VERBS)} the {rng.choice(OBJECTS)} (case {n}).")


def synthetic_items(rng: random.Random, count: int) -> list[dict]:
    """`count` active items in the export format, over the 4 families, for `Memory.import_items`."""
    return [{"id": f"k-{n:08d}", "text": lesson(rng, n), "env": ENVS[n % 4], "source": f"ep-{n // 2}",
             "outcome": "won", "round": n % 5, "created_by": "bench", "created_at": f"2026-01-01T00:00:{n:08d}",
             "support": 1, "status": "active", "consolidated_in": ""} for n in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    rng = random.Random(0)
    rows = synthetic_items(rng, args.items)
    with tempfile.TemporaryDirectory() as tmp, Memory(tmp) as memory:
        start = time.perf_counter()
        for i in tqdm(range(0, len(rows), 1000), desc="bulk insert", unit="k items", disable=args.json):
            memory.import_items(rows[i:i + 1000])
        bulk_s = time.perf_counter() - start

        singles = 100
        start = time.perf_counter()
        for n in range(singles):
            memory.add(lesson(rng, args.items + n), env=ENVS[n % 4], source="bench", outcome="won", round=9,
                       created_by="bench")
        add_s = time.perf_counter() - start

        latencies = []
        for n in tqdm(range(args.queries), desc="queries", disable=args.json):
            query = f"How do I {rng.choice(VERBS)} the {rng.choice(OBJECTS)} in the {rng.choice(PLACES)}?"
            start = time.perf_counter()
            found = memory.retrieve(query, env=ENVS[n % 4], k=6)
            latencies.append(1000 * (time.perf_counter() - start))
            assert found, "retrieval returned nothing"
    cuts = statistics.quantiles(latencies, n=20)
    result = {"items": args.items, "insert_per_s": round(args.items / bulk_s, 1),
              "add_with_merge_check_per_s": round(singles / add_s, 1),
              "query_p50_ms": round(statistics.median(latencies), 2), "query_p95_ms": round(cuts[18], 2)}
    print_result(result, args.json)


if __name__ == "__main__":
    main()
