"""Embed the OEL acting graph inside your own LangGraph program and play one TextWorld game.

Run:  .venv/bin/python examples/embed_agent.py [--game path/to/game.z8]

Your app has its own state and nodes; the compiled `agent.graph.graph` is just another Runnable you call
from a node, with its run settings passed as a `Context`. Here a parent graph picks a game, lets the
agent play it with the embedded SmolLM2-135M model, then summarises the episode with a plain
langchain-core Runnable.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import oel  # noqa: F401  (offline settings)
from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, StateGraph

from agent.envs import TextWorldEnv
from agent.games import GameSpec, make_game
from agent.graph import graph as agent_graph
from agent.policy import Policy
from agent.state import Context
from oel.errors import one_line_errors


@dataclass
class AppState:
    game_file: str = ""
    episode: dict = field(default_factory=dict)
    summary: str = ""


POLICY = None


def play(state: AppState) -> dict:
    """A node of *your* graph that delegates to the OEL agent graph."""
    global POLICY
    POLICY = POLICY or Policy.load()  # the embedded default model
    env = TextWorldEnv(state.game_file, family="tw-coin_collector")
    context = Context(env=env, policy=POLICY, max_steps=10, seed=0)
    final = agent_graph.invoke({}, context=context, config={"recursion_limit": 30})
    return {"episode": {k: final[k] for k in ("outcome", "reason", "steps", "score", "tokens")}
            | {"actions": [t["action"] for t in final["turns"]]}}


summarise = RunnableLambda(lambda ep: f"{ep['outcome']} after {ep['steps']} steps ({ep['reason']}); "
                                      f"actions: {', '.join(ep['actions'])}")


def report(state: AppState) -> dict:
    return {"summary": summarise.invoke(state.episode)}


app = StateGraph(AppState)
app.add_node("play", play)
app.add_node("report", report)
app.add_edge(START, "play")
app.add_edge("play", "report")
app.add_edge("report", END)
app = app.compile()

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--game", type=Path, help="a TextWorld .z8 file (default: generate a coin-collector game)")
    args = parser.parse_args()
    with one_line_errors():
        game = args.game or make_game(GameSpec("tw-coin_collector", 1, 7))
        result = app.invoke({"game_file": str(game)})
        print(result["summary"])
