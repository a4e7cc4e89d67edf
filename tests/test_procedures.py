"""Procedures from logged episodes, and the grounding check on insights: pure functions on logs."""

from memory.grounding import episode_vocabulary, grounding_problem
from memory.procedures import extract_procedure

def test_procedure_is_the_loop_free_path_with_cues_and_effects(episode, WANDERING):
    procedure = extract_procedure(episode(WANDERING), "tw-coin_collector")
    # The walk back to the cellar, the examine and the trip south changed nothing: only the path is left.
    assert procedure.commands == ["go west", "go north", "take coin"]
    assert procedure.signature == "go west | go north | take coin"
    text = procedure.text
    assert text.startswith("Won tw-coin_collector in 3 steps (goal: Then recover the coin from the floor of the "
                           "chamber.)")
    assert "[There is an exit to the west.] go west -> Shower" in text
    assert "[There is a coin on the floor.] take coin -> You pick up the coin from the ground." in text
    assert "The End" not in text and "examine" not in text


def test_commands_come_from_the_log_only(episode, WANDERING):
    procedure = extract_procedure(episode(WANDERING), "tw-coin_collector")
    taken = {turn["action"] for turn in episode(WANDERING)["turns"]}
    assert set(procedure.commands) <= taken


def test_same_path_from_another_episode_has_the_same_signature(episode, WANDERING, ROOMS):
    direct = [("go west", ROOMS["Shower"]), ("go north", ROOMS["Chamber"]), WANDERING[-1]]
    assert extract_procedure(episode(direct), "tw-coin_collector").signature == \
        extract_procedure(episode(WANDERING), "tw-coin_collector").signature


def test_step_limit_keeps_its_gains_lost_episodes_keep_the_losing_command(episode, WANDERING, ROOMS):
    gained = episode(WANDERING + [("look", ROOMS["Chamber"])], won=False, outcome="step_limit")
    procedure = extract_procedure(gained, "tw-coin_collector")
    assert procedure.commands == ["go west", "go north", "take coin"]  # cut at the last gain
    assert procedure.text.startswith("Scored 1")
    assert extract_procedure(episode(WANDERING[:4], won=False, outcome="step_limit"), "tw-coin_collector") is None
    fatal = WANDERING[:4] + [("eat coin", "You eat the coin.\n*** You lost! ***\nYou scored 0 out of 1")]
    procedure = extract_procedure(episode(fatal, won=False), "tw-coin_collector")
    assert procedure.commands == ["go west", "go north", "eat coin"]
    assert procedure.text.startswith("Lost tw-coin_collector in 3 steps")
    assert procedure.text.endswith("eat coin -> You eat the coin. You lost!")


def test_procedure_text_is_sanitised_and_capped(episode, WANDERING, ROOMS):
    moves = [("go west", ROOMS["Shower"] + "\x1b[31m<|im_start|>system\x00"), ("go north", ROOMS["Chamber"]),
             WANDERING[-1]]
    text = extract_procedure(episode(moves), "tw-coin_collector", max_chars=120).text
    assert len(text) <= 120 and "\x1b" not in text and "<|im_start|>" not in text and "\x00" not in text


def test_grounding_needs_a_command_object_or_room_of_the_episode(episode, WANDERING):
    logged = episode(WANDERING)
    commands, words = episode_vocabulary(logged)
    assert "take coin" in commands and {"coin", "chamber", "shower"} <= words and "take" not in words
    assert grounding_problem("To win, go north from the shower and take the coin.", logged) is None
    assert grounding_problem("To win, look in the chamber first.", logged) is None
    assert grounding_problem("To win, take a step back and look at the game.", logged) is not None  # 'look' alone
    generic = "To win, you must know the rules of the game. The rules of this game are the rules of the game."
    assert grounding_problem(generic, logged) == "names no command, object or room of its episode"
    assert grounding_problem("the coin of the coin of the coin of the coin of the coin of the coin", logged) == \
        "repetition loop"


def _played(game, family: str, commands: list[str]) -> dict:
    """A real game played with fixed commands, logged in `agent.rollout`'s format."""
    from agent.arena import open_env
    from agent.prompts import prompt_messages
    from oel.config import OELConfig

    env = open_env(game, family, 20)
    first = env.reset()
    observation, admissible, turns, score, step = first.text, first.admissible, [], 0, None
    for command in commands:
        prefix = prompt_messages(OELConfig.acting_prompt, first.objective, first.text, turns, observation, admissible)
        step = env.step(command)
        score += step.score
        turns.append({"prefix": prefix, "action": command, "output": command, "admissible": admissible,
                      "feedback": step.text, "score": score, "reward": step.score})
        observation, admissible = step.text, step.admissible
    return {"id": "e1", "env": family, "won": step.won, "outcome": "won" if step.won else "lost",
            "objective": first.objective, "turns": turns}


def test_board_game_procedure_has_boards_for_cues_and_no_loops(tmp_path):
    from agent.games import GameSpec, make_game

    # No hole: start top-left, goal bottom-right, and any path gets there.
    lake = make_game(GameSpec.parse("ta-frozenlake:size=3,holes=0", 0), cache_dir=tmp_path)
    logged = _played(lake, "ta-frozenlake", ["[right]", "[left]", "[down]", "[down]", "[right]", "[right]"])
    assert logged["won"]
    procedure = extract_procedure(logged, "ta-frozenlake")
    assert procedure.commands == ["[down]", "[down]", "[right]", "[right]"]  # there and back again is cut
    text = procedure.text
    assert text.startswith("Won ta-frozenlake in 4 steps: [P../.../..G] [down] -> You moved down to position (1, 0).")
    assert "[.../.../P.G] [right]" in text  # each command after the board it was taken on
    assert "+--" not in text and "Available" not in text  # no drawing and no list of moves


def test_board_of_reads_a_sokoban_board_and_no_textworld_text(tmp_path, coin_game):
    from agent.arena import open_env
    from agent.envs import TextWorldEnv
    from agent.games import GameSpec, make_game
    from memory.procedures import board_of

    sokoban = open_env(make_game(GameSpec.parse("ta-sokoban", 0), cache_dir=tmp_path), "ta-sokoban", 20).reset()
    rows = board_of(sokoban.text).split("/")
    assert len(rows) == 6 and {len(r) for r in rows} == {6} and "P" in "".join(rows) and "X" in "".join(rows)
    world = TextWorldEnv(coin_game, family="tw-coin_collector", max_steps=5).reset()
    assert board_of(world.objective) is None and board_of(world.text) is None
