"""The LangGraph agent playing a real TextWorld game with a tiny model."""

import pytest

from agent.envs import TextWorldEnv
from agent.graph import graph, play_episode
from agent.state import Context
from tests.conftest import THINKING_TEMPLATE


def test_episode_logs_every_turn_and_step_limit_is_not_a_win(tiny_policy, coin_game):
    env = TextWorldEnv(coin_game, family="tw-coin_collector", max_steps=50)
    reflected = []
    ctx = Context(env=env, policy=tiny_policy, max_steps=3, seed=0,
                  reflect=lambda state, context: reflected.append(state.outcome) or ["k-1"])
    state = play_episode(ctx)
    assert state.outcome and 1 <= state.steps <= 3 and len(state.turns) == state.steps
    for turn in state.turns:
        assert turn["prefix"][-1]["role"] == "user" and turn["action"] and "feedback" in turn
    if not state.won:
        assert state.outcome in ("step_limit", "lost")
    assert reflected == [state.outcome] and state.knowledge_written == ["k-1"]
    assert state.tokens > 0


def test_chat_prompt_grows_by_one_move_and_the_turn_cache_reuses_it(tiny_policy, coin_game):
    """The `chat` acting prompt on a real game: each move's prompt holds the previous one and adds the move
    (assistant) and the game's answer (user), so the turn cache encodes only those."""
    env = TextWorldEnv(coin_game, family="tw-coin_collector", max_steps=50)
    tiny_policy.prompt_tokens = {"reused": 0, "encoded": 0}
    state = play_episode(Context(env=env, policy=tiny_policy, max_steps=4, seed=0, acting_prompt="chat"))
    prefixes = [t["prefix"] for t in state.turns]
    for n in range(1, len(prefixes)):
        assert prefixes[n][:len(prefixes[n - 1])] == prefixes[n - 1]
        assert prefixes[n][-2] == {"role": "assistant", "content": state.turns[n - 1]["action"]}
        assert prefixes[n][-1]["content"].startswith(state.turns[n - 1]["feedback"])
    assert len(prefixes) >= 2 and tiny_policy.prompt_tokens["reused"] > tiny_policy.prompt_tokens["encoded"]


def test_generate_mode_counts_invalid_outputs(tiny_policy, coin_game):
    env = TextWorldEnv(coin_game, family="tw-coin_collector", max_steps=50)
    state = play_episode(Context(env=env, policy=tiny_policy, mode="generate", max_steps=2, max_new_tokens=6))
    assert state.steps == 2
    assert state.invalid == sum(not t["valid"] for t in state.turns)


def test_graph_is_a_runnable():
    assert hasattr(graph, "invoke") and hasattr(graph, "stream")
    assert {"reset", "act", "step", "reflect"} <= set(graph.get_graph().nodes)


def test_acting_with_memory_retrieves_per_situation(tiny_policy, coin_game, tmp_path):
    from agent.rollout import play_games
    from memory.store import Memory
    from oel.config import OELConfig

    cfg = OELConfig(model="tiny", max_steps=2)
    with Memory(tmp_path / "m") as memory:
        memory.add("Take the coin as soon as you see it.", env="tw-coin_collector", source="s", outcome="won",
                   round=1, created_by="test")
        [with_memory] = play_games(tiny_policy, [(coin_game, "tw-coin_collector")], cfg, 0, seed_base=0, memory=memory)
        [without] = play_games(tiny_policy, [(coin_game, "tw-coin_collector")], cfg, 0, seed_base=0)
    assert all("Take the coin as soon as you see it." in t["prefix"][-1]["content"] for t in with_memory["turns"])
    assert not any("Take the coin" in t["prefix"][-1]["content"] for t in without["turns"])


def test_policy_is_a_langchain_chat_model(tiny_policy):
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    chat = tiny_policy.as_chat_model(max_new_tokens=4)
    reply = chat.invoke([SystemMessage("Play."), HumanMessage("Your command:")])
    assert isinstance(reply, AIMessage) and reply.usage_metadata["output_tokens"] <= 4


def test_any_chat_model_can_act_in_generate_mode(coin_game):
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    # A scripted chat model stands in for a hosted one: the graph must ground and count its replies.
    replies = iter([AIMessage("> go east"), AIMessage("I think I will dance"), AIMessage("look")] * 5)
    env = TextWorldEnv(coin_game, family="tw-coin_collector", max_steps=50)
    state = play_episode(Context(env=env, chat_model=GenericFakeChatModel(messages=replies), mode="generate",
                                 max_steps=3))
    assert [t["output"] for t in state.turns] == ["> go east", "I think I will dance", "look"]
    assert [t["valid"] for t in state.turns][1] is False and state.invalid >= 1


def test_choose_mode_without_a_policy_is_a_clear_error(coin_game):

    from oel.errors import OELError

    env = TextWorldEnv(coin_game, family="tw-coin_collector", max_steps=50)
    with pytest.raises(OELError, match="choose mode needs a local policy"):
        play_episode(Context(env=env, mode="choose"))


def test_thinking_mode_for_templates_that_have_it(tiny_model_dir, coin_game):

    from agent.policy import Policy
    from oel.errors import OELError

    plain = Policy.load(str(tiny_model_dir), name="tiny")
    with pytest.raises(OELError, match="no thinking mode"):
        plain.render([{"role": "user", "content": "hi"}], thinking=True)
    thinker = Policy.load(str(tiny_model_dir), name="tiny-thinker")
    thinker.tokenizer.chat_template = THINKING_TEMPLATE
    assert thinker.supports_thinking and not plain.supports_thinking
    assert "<think>\n\n</think>" in thinker.render([{"role": "user", "content": "hi"}], thinking=False)
    assert "</think>" not in thinker.render([{"role": "user", "content": "hi"}], thinking=True)
    env = TextWorldEnv(coin_game, family="tw-coin_collector", max_steps=50)
    state = play_episode(Context(env=env, policy=thinker, mode="generate", max_steps=2, max_new_tokens=6,
                                 thinking=True))
    assert state.steps == 2 and state.invalid == sum(not t["valid"] for t in state.turns)


def test_a_nul_byte_from_a_chat_model_never_reaches_the_game(coin_game):
    """It crashed the interpreter (SIGSEGV), and a lone NUL hung it: run in a child process, so a crash
    fails this test instead of killing the suite."""
    import subprocess
    import sys

    script = f"""
import oel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from agent.envs import TextWorldEnv
from agent.graph import play_episode
from agent.state import Context

replies = iter([AIMessage("go east\\x00"), AIMessage("\\x00"), AIMessage("\\x1b[2J" + "x" * 10000)])
env = TextWorldEnv({str(coin_game)!r}, family="tw-coin_collector", max_steps=50)
state = play_episode(Context(env=env, chat_model=GenericFakeChatModel(messages=replies), mode="generate", max_steps=3))
print(state.steps, state.invalid)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-1000:]
    assert done.stdout.split() == ["3", "3"]  # played to the step limit; the three replies counted invalid


def test_a_resumed_round_skips_logged_games_by_name_wherever_the_cache_is(tiny_policy, coin_game, tmp_path):
    import shutil

    from agent.rollout import play_games
    from oel.config import OELConfig

    moved = tmp_path / "other-cache"
    moved.mkdir()
    for sidecar in coin_game.parent.glob(coin_game.stem + ".*"):  # the game and its .json/.ni files
        shutil.copy(sidecar, moved / sidecar.name)
    cfg = OELConfig(model="tiny", max_steps=2)
    games = [(moved / coin_game.name, "tw-coin_collector")]
    assert play_games(tiny_policy, games, cfg, 1, seed_base=0, skip=frozenset({coin_game.name})) == []
    assert len(play_games(tiny_policy, games, cfg, 1, seed_base=0)) == 1


def test_an_illegal_textarena_move_in_generate_mode_counts_as_invalid(tmp_path):
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    from agent.arena import open_env
    from agent.games import GameSpec, make_game

    env = open_env(make_game(GameSpec.parse("ta-frozenlake", 0), cache_dir=tmp_path), "ta-frozenlake", 10)
    replies = iter([AIMessage("[right]"), AIMessage("[up]")])  # legal, then up from the top row: a wall
    state = play_episode(Context(env=env, chat_model=GenericFakeChatModel(messages=replies), mode="generate",
                                 max_steps=2))
    assert [t["valid"] for t in state.turns] == [True, False] and state.invalid == 1
    assert state.turns[1]["admissible"] == ["[down]", "[left]", "[right]"]


def test_the_graph_shows_its_users_an_episode_not_its_acting_state():
    """Input: nothing (the game and settings come in the context). Output: the episode, without the acting
    state (observation, valid commands, the pending action)."""
    inputs, outputs = graph.get_input_jsonschema(), graph.get_output_jsonschema()
    assert inputs["properties"] == {}
    assert set(outputs["properties"]) == {"objective", "outcome", "won", "reason", "score", "max_score", "steps",
                                          "tokens", "invalid", "turns", "knowledge_written"}


def test_an_episode_resumes_from_a_checkpointer_with_a_fresh_env(tiny_policy):
    """A run cut off mid-episode resumes from its checkpoint with a new env object, as a new process has:
    the env is brought to the checkpoint's position by replaying the logged commands, so the episode goes
    on exactly as an uninterrupted one does."""
    from langgraph.checkpoint.memory import InMemorySaver

    from agent.games import GameSpec, make_game
    from agent.graph import builder

    game = make_game(GameSpec("tw-coin_collector", 3, 424242))

    def context():
        return Context(env=TextWorldEnv(game, family="tw-coin_collector", max_steps=50), policy=tiny_policy,
                       max_steps=6, seed=0)

    whole = play_episode(context())
    saved = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "episode-1"}, "recursion_limit": 30}
    first = saved.invoke({}, config, context=context(), interrupt_after=["step"])  # stops after one step
    assert len(first["turns"]) == 1
    final = saved.invoke(None, config, context=context())  # a fresh env, never reset
    assert [t["action"] for t in final["turns"]] == [t["action"] for t in whole.turns]
    assert [t["feedback"] for t in final["turns"]] == [t["feedback"] for t in whole.turns]
    assert (final["outcome"], final["steps"]) == (whole.outcome, whole.steps)


RESUME = """
import json, sys
import oel
from agent.envs import TextWorldEnv
from agent.graph import resumable_graph
from agent.policy import Policy
from agent.state import Context

db, game, model, stop = sys.argv[1:5]
context = Context(env=TextWorldEnv(game, family="tw-coin_collector", max_steps=50), policy=Policy.load(model),
                  max_steps=6, seed=0)
config = {"configurable": {"thread_id": "game-1"}, "recursion_limit": 30}
graph = resumable_graph(db)
if stop == "stop":  # the first process: one step, then it ends, as a crash would end it
    out = graph.invoke({}, config, context=context, interrupt_after=["step"])
else:  # a later process resumes the thread from the database
    out = graph.invoke(None, config, context=context)
print(json.dumps({"actions": [t["action"] for t in out["turns"]], "outcome": out.get("outcome", "")}))
"""


@pytest.mark.slow
def test_an_interrupted_episode_resumes_in_a_new_process(tiny_model_dir, tmp_path):
    import json
    import subprocess
    import sys

    from agent.games import GameSpec, make_game
    from agent.policy import Policy

    game = make_game(GameSpec("tw-coin_collector", 3, 424242))
    script = tmp_path / "resume.py"
    script.write_text(RESUME)

    def run(stop):
        done = subprocess.run([sys.executable, str(script), str(tmp_path / "episodes.sqlite"), str(game),
                               str(tiny_model_dir), stop], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    first, resumed = run("stop"), run("go")
    whole = play_episode(Context(env=TextWorldEnv(game, family="tw-coin_collector", max_steps=50),
                                 policy=Policy.load(str(tiny_model_dir)), max_steps=6, seed=0))
    assert len(first["actions"]) == 1
    assert resumed["actions"] == [t["action"] for t in whole.turns] and resumed["outcome"] == whole.outcome


def test_one_line_asks_a_chat_model_to_stop_at_the_first_line_break_unless_it_thinks(coin_game):
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    stops = []

    class Recording(GenericFakeChatModel):
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            stops.append(stop)
            return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    for one_line, thinking, stop in [(True, False, ["\n"]), (False, False, None), (True, True, None)]:
        stops.clear()
        env = TextWorldEnv(coin_game, family="tw-coin_collector", max_steps=50)
        play_episode(Context(env=env, chat_model=Recording(messages=iter([AIMessage("look")] * 2)), mode="generate",
                             max_steps=2, one_line=one_line, thinking=thinking))
        assert stops == [stop, stop]


@pytest.mark.slow
def test_a_one_line_response_is_the_first_line_of_the_whole_one():
    """The embedded model, greedy, on an acting prompt: ended at its first line break, by acting's stop string
    or by the SDFT student's end tokens alike, its response is the whole response's first line, in fewer tokens."""
    from agent.policy import Policy
    from agent.prompts import acting_messages, situation_text
    from agent.templates import line_end_ids

    policy = Policy.load()
    prompt = policy.render(acting_messages(situation_text(
        "Find the coin and take it.", [], "-= Cellar =-\nYou are in a cellar. There is an exit to the east.",
        ["go east", "look", "inventory"])))
    [(whole, n_whole)] = policy.generate([prompt], 48, greedy=True)
    [(line, n_line)] = policy.generate([prompt], 48, greedy=True, stop=["\n"])
    assert "\n" in whole.strip() and line == whole.split("\n")[0] and n_line < n_whole
    # The stop-string matcher is built once and reused: a second call ends at the same token.
    assert policy.generate([prompt], 48, greedy=True, stop=["\n"]) == [(line, n_line)]
    assert policy.stop_matcher(["\n"]) is policy.stop_matcher(["\n"])
    tok = policy.tokenizer
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
    ended = policy.model.generate(**ids, max_new_tokens=48, do_sample=False, pad_token_id=tok.pad_token_id,
                                  eos_token_id=[*policy.end_ids, *line_end_ids(tok)])[0, ids.input_ids.shape[1]:]
    assert len(ended) == n_line and tok.decode(ended) == line + "\n"
