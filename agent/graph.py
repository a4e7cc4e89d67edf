"""The acting graph: reset -> act -> step -> (act | reflect) -> END.

`graph` is compiled at import and can be used as a Runnable or embedded as a node in a larger graph;
pass a `Context` at invoke time. Each episode takes 2 graph steps per game step, so give
`recursion_limit` of at least 2 * max_steps + 5 (`play_episode` does).
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Literal

import torch
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from agent.prompts import ground_response, prompt_messages, retrieval_query, with_knowledge
from agent.state import Context, Episode, EpisodeStart, State
from agent.templates import response_stop
from oel.errors import OELError


# How many steps each live env has taken in this process. A run resumed from a checkpointer (after a crash,
# or in another process) brings a fresh env whose game has not started: `step` replays the logged commands
# into it first, so the game is where the restored state says it is.
_positions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def reset(state: State, runtime: Runtime[Context]) -> dict:
    first = runtime.context.env.reset()
    _positions[runtime.context.env] = 0
    return {"objective": first.objective, "start": first.text, "observation": first.text, "admissible": first.admissible,
            "score": first.score, "max_score": first.max_score}


def act(state: State, runtime: Runtime[Context]) -> dict:
    ctx = runtime.context
    plain = prompt_messages(ctx.acting_prompt, state.objective, state.start, state.turns, state.observation,
                            state.admissible)
    knowledge = ctx.knowledge(retrieval_query(plain)) if callable(ctx.knowledge) else ctx.knowledge
    messages = with_knowledge(plain, knowledge)
    if ctx.mode == "choose":
        generator = torch.Generator().manual_seed(ctx.seed + state.steps) if ctx.seed is not None else None
        choice = ctx.policy.choose(ctx.policy.render(messages), state.admissible, ctx.temperature, ctx.greedy, generator)
        output, action, valid, tokens = choice.command, choice.command, True, choice.n_tokens
    else:
        stop = response_stop(ctx.one_line, ctx.thinking)
        if ctx.chat_model is not None:  # any LangChain chat model
            reply = ctx.chat_model.invoke(messages, stop=stop)
            output = reply.text if isinstance(reply.text, str) else str(reply.content)
            tokens = (reply.usage_metadata or {}).get("output_tokens", len(output.split()))
        else:
            [(output, tokens)] = ctx.policy.generate([ctx.policy.render(messages, thinking=ctx.thinking)],
                                                     ctx.max_new_tokens, ctx.temperature, ctx.greedy, stop=stop)
        action, valid = ground_response(output, state.admissible)
    # admissible is logged because choose-mode consolidation scores these commands again.
    pending = {"prefix": messages, "output": output, "action": action, "valid": valid, "tokens": tokens,
               "admissible": list(state.admissible)}
    return {"pending": pending, "tokens": state.tokens + tokens, "invalid": state.invalid + (not valid)}


def catch_up(env, state: State) -> None:
    """Bring a fresh env to the restored state's position by replaying its logged commands."""
    if _positions.get(env) == state.steps:
        return
    env.reset()
    for turn in state.turns:
        replayed = env.step(turn["action"])
        if replayed.text != turn["feedback"]:
            raise OELError(f"cannot resume this episode: replaying {turn['action']!r} gave other feedback than "
                           "the checkpoint holds (is it the same game file?)")
    _positions[env] = state.steps


def step(state: State, runtime: Runtime[Context]) -> dict:
    ctx, pending = runtime.context, state.pending
    catch_up(ctx.env, state)
    result = ctx.env.step(pending["action"])
    _positions[ctx.env] += 1
    steps = state.steps + 1
    turn = {**pending, "feedback": result.text, "score": result.score, "reward": result.score - state.score}
    update = {"turns": [turn], "pending": None, "observation": result.text, "admissible": result.admissible,
              "score": result.score, "steps": steps}
    # done is not won: only `won` counts as success; the step limit is a loss.
    if result.won:
        update.update(done=True, won=True, outcome="won", reason=f"won in {steps} steps, score {result.score}")
    elif result.lost or result.done and not result.won:
        update.update(done=True, outcome="lost", reason=f"lost after {steps} steps: {result.text[:120]}")
    elif steps >= ctx.max_steps:
        update.update(done=True, outcome="step_limit",
                      reason=f"step limit {ctx.max_steps} reached with score {result.score}/{state.max_score}")
    elif not result.admissible:
        update.update(done=True, outcome="lost", reason="no admissible command left")
    return update


def route_after_step(state: State, runtime: Runtime[Context]) -> Literal["act", "reflect", "__end__"]:
    if not state.done:
        return "act"
    return "reflect" if runtime.context.reflect is not None else END


def reflect(state: State, runtime: Runtime[Context]) -> dict:
    return {"knowledge_written": runtime.context.reflect(state, runtime.context)}


builder = StateGraph(State, context_schema=Context, input_schema=EpisodeStart, output_schema=Episode)
builder.add_node("reset", reset)
builder.add_node("act", act)
builder.add_node("step", step)
builder.add_node("reflect", reflect)
builder.add_edge(START, "reset")
builder.add_edge("reset", "act")
builder.add_edge("act", "step")
builder.add_conditional_edges("step", route_after_step, ["act", "reflect", END])
builder.add_edge("reflect", END)
graph = builder.compile()


def resumable_graph(path: str | Path):
    """The acting graph with a SQLite checkpointer at `path`: every step is saved under the run's thread id,
    so a game cut off mid-episode goes on from its last step in any later process (pass a fresh env of the
    same game file; `step` replays the logged commands into it)."""
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    return builder.compile(checkpointer=SqliteSaver(sqlite3.connect(str(path), check_same_thread=False)))


def play_episode(context: Context) -> Episode:
    """Play one game to the end and return the episode."""
    final = graph.invoke({}, context=context, config={"recursion_limit": 2 * context.max_steps + 5})
    return Episode(**final)
