from memory.reflection import parse_items, reflection_messages
from oel.text import sanitize


def test_parser_keeps_marker_lines_and_drops_junk():
    text = "KNOWLEDGE: Take coins as soon as you see them.\nrandom chatter\nKNOWLEDGE: ??\nKNOWLEDGE: Explore every exit."
    assert parse_items(text) == ["Take coins as soon as you see them.", "Explore every exit."]


def test_parser_never_crashes_on_junk():
    for junk in ["", "<|im_end|>" * 100, "KNOWLEDGE:", "\x00\x01\x02", "KNOWLEDGE: " + "a" * 10_000]:
        items = parse_items(junk, max_chars=80)
        assert all(len(i) <= 80 for i in items)


def test_caps_and_repeats():
    text = "\n".join(f"KNOWLEDGE: lesson number {i} is useful" for i in range(5))
    assert len(parse_items(text, max_items=2)) == 2
    assert parse_items("KNOWLEDGE: Open the door first.\nKNOWLEDGE: open the door first.") == ["Open the door first."]


def test_sanitize_strips_escape_sequences_and_controls():
    assert sanitize("\x1b[31mred\x1b[0m text\x07 here\n\tnow", 100) == "red text here now"


def test_prompt_shows_scoring_commands():
    turns = [{"action": "go east", "feedback": "You move.", "reward": 0},
             {"action": "take coin", "feedback": "Taken!", "reward": 1}]
    messages = reflection_messages("tw-coin_collector", "get the coin", turns, "won", "won in 2 steps")
    assert "Commands that raised the score: take coin" in messages[-1]["content"]


def test_repetition_loops_are_kept_for_quarantine_without_taking_a_place():
    from memory.grounding import grounding_problem

    loop = "KNOWLEDGE: The game of the game of the game of the game of the game of the game."
    money = "KNOWLEDGE: I will give you the money, and I will give you the money, and I will give you the money"
    good = "KNOWLEDGE: Take the coin as soon as you see it, then stop exploring."
    items = parse_items("\n".join([loop, money, good]), max_items=1)
    assert items[0] == "Take the coin as soon as you see it, then stop exploring." and len(items) == 2
    assert grounding_problem(items[1], None) == "repetition loop"
    assert grounding_problem(items[0], None) is None


class ScriptedWriter:
    """Stands in for the policy's sampling: returns fixed answers, so the selection rule can be checked."""

    def __init__(self, answers):
        self.answers = answers

    def render(self, messages, prefill=""):
        return prefill

    def generate(self, prompts, max_new_tokens, temperature=0.7, stop=None, seed=None):
        from agent.templates import cut_at_stop

        assert len(prompts) == len(self.answers)  # all samples in one batched call
        return [(cut_at_stop(text, stop), 5) for text in self.answers]  # as Policy.generate ends at a stop string


def reflect_with(answers, tmp_path, logged):
    from types import SimpleNamespace

    from memory.reflection import Reflector
    from memory.store import Memory
    from oel.config import OELConfig

    state = SimpleNamespace(turns=logged["turns"], won=True, outcome="won", objective=logged["objective"],
                            reason="won in 8 steps")
    context = SimpleNamespace(env=SimpleNamespace(family="tw-coin_collector"), extra={"episode_id": "r1-x", "round": 1})
    cfg = OELConfig(reflection_samples=len(answers))
    with Memory(tmp_path / "m") as memory:
        ids = Reflector(ScriptedWriter(answers), memory, cfg, "writer")(state, context)
        return [memory.get(i) for i in ids]


def test_reflection_keeps_grounded_lessons_and_the_procedure(tmp_path, episode, WANDERING):
    items = reflect_with([" the rules, follow the rules of the game.", " a coin, take coin at once.",
                          " the shower, go north to the chamber.", " a coin, take coin at once."], tmp_path,
                         episode(WANDERING))
    insights = [i for i in items if i.kind == "insight"]
    assert [i.text for i in insights] == ["When you see a coin, take coin at once.",
                                          "When you see the shower, go north to the chamber."]
    assert all(i.status == "active" and i.source == "r1-x" and i.round == 1 for i in items)
    [procedure] = [i for i in items if i.kind == "procedure"]
    assert procedure.signature == "go west | go north | take coin"


def test_a_lesson_is_the_answer_s_first_line(tmp_path, episode, WANDERING):
    """Each answer ends at its first line break: a marker line the model writes after it is not stored."""
    items = reflect_with([" a coin, take coin at once.\nKNOWLEDGE: go north to the chamber from the shower."],
                         tmp_path, episode(WANDERING))
    assert [i.text for i in items if i.kind == "insight"] == ["When you see a coin, take coin at once."]


def test_a_reflection_that_names_nothing_real_is_quarantined_and_counted(tmp_path, episode, WANDERING):
    items = reflect_with([" the rules, you must know the rules.", " a game, think about what you will do."], tmp_path,
                         episode(WANDERING))
    [insight] = [i for i in items if i.kind == "insight"]
    assert insight.status == "quarantined" and insight.reason.startswith("names no command")
    assert [i.kind for i in items if i.status == "active"] == ["procedure"]


def test_the_prefill_alone_is_not_a_lesson():
    from memory.prompts import PREFILL

    assert parse_items(PREFILL + "<|im_end|><|im_start|>", prefill=PREFILL) == []
    assert parse_items(PREFILL + " a coin.", prefill=PREFILL) == []  # too short: the model wrote 7 characters
    assert parse_items(PREFILL + " a coin on the floor, take it.", prefill=PREFILL) == [
        "When you see a coin on the floor, take it."]


def test_reflection_is_idempotent_by_episode_id(tmp_path, episode, WANDERING):
    """A run resumed after a crash between logging an episode and storing its items reflects on exactly the
    logged episodes that no item names, and storing them once more adds nothing twice."""
    from memory.reflection import Reflector, unreflected
    from memory.store import Memory
    from oel.config import OELConfig

    won = {**episode(WANDERING), "id": "r1-a", "round": 1, "reason": "won in 8 steps"}
    other = {**won, "id": "r1-b"}
    with Memory(tmp_path / "m") as memory:
        reflector = Reflector(None, memory, OELConfig(), "writer")  # procedures only: no model needed
        assert reflector.reflect(won)
        assert unreflected(memory, [won, other]) == [other]
        reflector.reflect(other)  # the same procedure from another episode merges into it (support + 1)
        assert unreflected(memory, [won, other]) == []
        [procedure] = memory.list("active", kind="procedure")
        assert procedure.support == 2


def test_reflection_samples_from_a_seed_of_the_run_the_round_and_the_game(tiny_policy, episode, WANDERING):
    """The process's random state differs from run to run; the lessons must not (the same run, the same memory)."""
    from memory.reflection import Reflector
    from oel.config import OELConfig

    class Recording:
        def __init__(self):
            self.seeds, self.answers = [], []

        def __getattr__(self, name):
            return getattr(tiny_policy, name)

        def generate(self, prompts, *args, seed=None, **kwargs):
            self.seeds.append(seed)
            self.answers.append(tiny_policy.generate(prompts, *args, seed=seed, **kwargs))
            return self.answers[-1]

    logged = {**episode(WANDERING), "round": 1, "reason": "won", "game": "/cache/tw-coin_collector_l3_s0.z8"}
    writer = Recording()
    reflector = Reflector(writer, None, OELConfig(reflection_samples=2, reflection_max_new_tokens=6), "tiny")
    reflector.lessons({**logged, "id": "r1-tw-coin_collector_l3_s0-aaaaaa"})
    reflector.lessons({**logged, "id": "r1-tw-coin_collector_l3_s0-bbbbbb"})  # the same game replayed elsewhere
    reflector.lessons({**logged, "id": "r1-x", "game": "/cache/tw-coin_collector_l3_s1.z8"})
    assert writer.seeds[0] == writer.seeds[1] != writer.seeds[2]
    assert writer.answers[0] == writer.answers[1]  # the same samples, whatever came before
