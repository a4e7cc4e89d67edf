"""Inspect what an agent's memory holds, from Python and as a LangChain retriever.

Run after `make demo`:  .venv/bin/python examples/inspect_memory.py [runs/demo]
"""

import sys
from pathlib import Path

import oel  # noqa: F401  (offline settings)
from memory import Memory
from oel.errors import one_line_errors
from oel.rundir import RunDir


def main(run_dir: Path) -> None:
    with Memory(RunDir(run_dir).memory, read_only=True) as memory:  # read-only: no writer lock needed
        stats = memory.stats()
        print(f"{stats['items']} items: {stats['by_status']}, {stats['by_kind']}")
        for item in memory.list("all")[:10]:
            utility = "-" if item.utility is None else f"{item.utility:+.3f}"
            print(f"[{item.status:12}] {item.kind:9} {item.env:20} support={item.support} utility={utility}  "
                  f"{item.text[:80]}" + (f"  (quarantined: {item.reason})" if item.reason else ""))

        print("\nNearest items to 'how do I find the coin?':")
        for item, distance in memory.search("how do I find the coin?", k=3, status="all"):
            print(f"  {distance:.2f}  {item.text[:80]}")

        # The same memory inside any LangChain pipeline:
        retriever = memory.as_retriever(k=2)
        for doc in retriever.invoke("unlock the door"):
            print(f"retriever: {doc.page_content[:80]}  ({doc.metadata['env']})")


if __name__ == "__main__":
    with one_line_errors():
        main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/demo"))
