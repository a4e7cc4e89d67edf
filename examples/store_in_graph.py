"""Read an agent's memory from your own LangGraph app through `runtime.store` (LangMem style).

Run after `make demo`:  .venv/bin/python examples/store_in_graph.py [runs/demo] ["how do I find the coin?"]

The run's memory is opened read-only and given to the graph as its store (`memory.langgraph_store`);
a node searches the knowledge of one game family and answers with what it found.
"""

import sys
from dataclasses import dataclass, field
from pathlib import Path

import oel  # noqa: F401  (offline settings)
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from memory import Memory
from memory.langgraph_store import KnowledgeStore
from oel.errors import one_line_errors
from oel.rundir import RunDir


@dataclass
class Question:
    text: str = ""
    family: str = "tw-coin_collector"
    found: list[str] = field(default_factory=list)


def recall(state: Question, runtime: Runtime) -> dict:
    hits = runtime.store.search(("knowledge", state.family), query=state.text, limit=3)
    return {"found": [f"{hit.score:.2f}  [{hit.value['kind']}] {hit.value['text']}" for hit in hits]}


builder = StateGraph(Question)
builder.add_node("recall", recall)
builder.add_edge(START, "recall")
builder.add_edge("recall", END)


def main(run_dir: Path, question: str) -> None:
    with Memory(RunDir(run_dir).memory, read_only=True) as memory:
        answer = builder.compile(store=KnowledgeStore(memory)).invoke({"text": question})
    print("\n".join(answer["found"]) or "nothing in the memory for this family")


if __name__ == "__main__":
    with one_line_errors():
        main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/demo"),
             sys.argv[2] if len(sys.argv) > 2 else "how do I find the coin?")
