"""Real TextWorld games through textworld.gym."""

import pytest

from agent.envs import TextWorldEnv
from agent.games import GameSpec, suite_specs
from oel.errors import OELError


def test_reset_and_step_a_real_game(coin_game):
    env = TextWorldEnv(coin_game, family="tw-coin_collector", max_steps=50)
    first = env.reset()
    assert first.objective and first.text and first.admissible
    assert not first.text.lstrip().startswith(">")
    step = env.step(first.admissible[0])
    assert isinstance(step.score, int) and not step.won
    env.close()


def test_a_long_non_ascii_response_reaches_the_game_cut_at_a_character_not_as_a_crash(coin_game):
    """Jericho cut a command over 198 bytes in the middle of a character and raised while warning about it."""
    from agent.envs import MAX_COMMAND_BYTES, safe_command

    response = "go to the café " * 20  # 300 bytes, with a two-byte character across the cut
    command = safe_command(response)
    assert len(command.encode()) <= MAX_COMMAND_BYTES and response.startswith(command)
    env = TextWorldEnv(coin_game, family="tw-coin_collector", max_steps=50)
    env.reset()
    assert env.step(response).text


def test_missing_and_corrupt_game_files(tmp_path, coin_game):
    with pytest.raises(OELError, match="game file not found"):
        TextWorldEnv(tmp_path / "nope.z8")
    garbage = tmp_path / "garbage.z8"
    garbage.write_bytes(b"\x00garbage" * 10)
    truncated = tmp_path / "truncated.z8"
    truncated.write_bytes(coin_game.read_bytes()[:5000])
    flipped = tmp_path / "flipped.z8"
    data = bytearray(coin_game.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    for bad in (garbage, truncated, flipped):
        # Must be an error we raise: frotz itself would exit() the whole process.
        with pytest.raises(OELError, match=f"{bad.name} is corrupt"):
            TextWorldEnv(bad)


def test_train_rounds_validation_and_test_seeds_are_disjoint():
    from agent.games import split_specs

    challenges = ["tw-coin_collector:1", "tw-simple"]
    rounds = [{s.name for s in split_specs(challenges, 20, 0, "train", r)} for r in (1, 2, 3)]
    validation = {s.name for s in split_specs(challenges, 20, 0, "validation")}
    test = {s.name for s in split_specs(challenges, 20, 0, "test")}
    sets = [*rounds, validation, test]
    assert all(not a & b for i, a in enumerate(sets) for b in sets[i + 1:])  # no game is in two sets
    assert GameSpec.parse("tw-simple", 3).name == "tw-simple_s3"
    with pytest.raises(OELError, match="unknown challenge"):
        GameSpec.parse("tw-zork", 1)


@pytest.mark.parametrize("family", ["ta-frozenlake", "ta-sokoban"])
def test_textarena_games_through_the_same_protocol(family, tmp_path):
    from agent.arena import open_env
    from agent.games import make_game

    game = make_game(GameSpec.parse(family, 3), cache_dir=tmp_path)
    assert game.suffix == ".ta" and make_game(GameSpec.parse(family, 3), cache_dir=tmp_path) == game
    env = open_env(game, family, 30)
    first = env.reset()
    assert first.objective and "Current Board" in first.text and set(first.admissible) <= {"[up]", "[down]", "[left]", "[right]"}
    step = env.step(first.admissible[0])
    assert not step.text.startswith("[down]")
    for _ in range(40):  # wander until the game ends: a hole/turn limit is a loss, never a win by default
        if step.done:
            break
        step = env.step(step.admissible[_ % len(step.admissible)])
    assert not (step.won and step.lost)


def test_textarena_offers_only_legal_moves(tmp_path):
    from agent.arena import open_env
    from agent.games import make_game

    lake = open_env(make_game(GameSpec.parse("ta-frozenlake", 0), cache_dir=tmp_path), "ta-frozenlake", 30)
    assert lake.reset().admissible == ["[down]", "[right]"]  # the top-left corner: up and left are walls
    for seed in range(6):
        env = open_env(make_game(GameSpec.parse("ta-sokoban", seed), cache_dir=tmp_path), "ta-sokoban", 30)
        offered = env.reset().admissible
        for n in range(12):  # every offered move is taken without a wall bump ending the game
            step = env.step(offered[(seed + n) % len(offered)])
            assert "wall" not in step.text.lower(), step.text
            if step.done or not step.admissible:
                break
            offered = step.admissible


def test_frozenlake_win_is_detected(tmp_path):
    from agent.arena import open_env
    from agent.games import make_game

    for seed in range(20):  # find a layout where down, down, right, right is safe
        env = open_env(make_game(GameSpec.parse("ta-frozenlake", seed), cache_dir=tmp_path), "ta-frozenlake", 30)
        env.reset()
        for command in ("[down]", "[down]", "[right]", "[right]"):
            step = env.step(command)
            if step.done:
                break
        if step.won:
            assert step.done and not step.lost
            return
    pytest.fail("no seed among 20 gave a safe down-down-right-right path")


def test_scripted_reference_policies_on_a_lake_without_holes(tmp_path):
    """bench/boards.py's scripted references: on a 2x2 lake with no hole, [down] or [right] first always wins
    in two moves, and no policy wins in one."""
    from agent.games import make_game
    from bench.boards import SCRIPTED, scripted_success

    games = [(make_game(GameSpec.parse("ta-frozenlake:size=2,holes=0", 0), cache_dir=tmp_path), "ta-frozenlake")]
    down_right = SCRIPTED["random legal move, [down] or [right] first"]
    assert scripted_success(games, down_right, plays=5, max_steps=2) == 1.0
    assert scripted_success(games, SCRIPTED["random legal move"], plays=5, max_steps=1) == 0.0


def test_ood_suite_holds_whole_challenge_types_apart():
    from agent.games import ood_specs

    trained = ["tw-coin_collector:3", "tw-treasure_hunter:2"]
    specs = ood_specs(["ta-frozenlake", "tw-simple"], trained, 4, seed=0)
    train_seeds = {s.seed for s in suite_specs(trained, 100, 0)}
    assert {s.challenge for s in specs} == {"ta-frozenlake", "tw-simple"} and not train_seeds & {s.seed for s in specs}
    with pytest.raises(OELError, match="tw-coin_collector is in both"):
        ood_specs(["tw-coin_collector:5"], trained, 2, seed=0)
    assert GameSpec.parse("tw-coin_collector:5", 0).env_family == "tw-coin_collector"


def test_a_directory_or_a_game_without_its_sidecar_is_refused_before_play(coin_game, tmp_path):
    import shutil

    with pytest.raises(OELError, match="is a directory, not a game file"):
        TextWorldEnv(tmp_path)
    lonely = tmp_path / coin_game.name
    shutil.copy(coin_game, lonely)  # the story file without its .json
    with pytest.raises(OELError, match=rf"has no {lonely.stem}.json beside it"):
        TextWorldEnv(lonely)


def test_a_directory_in_the_game_cache_is_an_error_and_leaves_no_litter(tmp_path):
    from agent.games import make_game

    spec = GameSpec.parse("tw-coin_collector:1", 7)
    (tmp_path / f"{spec.name}.z8").mkdir()
    with pytest.raises(OELError, match="is in the game cache but is not a file"):
        make_game(spec, cache_dir=tmp_path)
    assert not list(tmp_path.glob(".tmp-*"))


def test_random_bytes_behind_a_plausible_header_are_refused_not_run(tmp_path, coin_game):
    """frotz crashed (SIGSEGV) on such a file: a child process plays it, so a crash fails this test."""
    import random
    import subprocess
    import sys

    bad = tmp_path / "plausible.z8"
    rng = random.Random(0)
    header = bytearray(rng.randbytes(64))
    header[0] = 5
    header[0x1A:0x1E] = bytes(4)  # length and checksum fields 0: the old check skipped both
    bad.write_bytes(bytes(header) + rng.randbytes(60_000))
    (tmp_path / "plausible.json").write_bytes(coin_game.with_suffix(".json").read_bytes())
    script = ("import oel\nfrom agent.envs import TextWorldEnv\nfrom oel.errors import OELError\n"
              f"try:\n    TextWorldEnv({str(bad)!r}).reset()\nexcept OELError as err:\n    print(err)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert "plausible.z8 is corrupt" in done.stdout


def test_sampling_seed_streams_keep_their_values_and_never_collide():
    """The values every recorded result was measured with: changing them would change every figure."""
    from agent.rollout import seed_base

    assert seed_base(0, evaluation=True) == 0 and seed_base(3, evaluation=True) == 3000
    assert seed_base(3, round=2) == 3 * 7919 + 202 and seed_base(3) == 3 * 7919  # round 0 is `oel play`
    workers = {seed_base(0, worker=f"w{i}") for i in range(8)}
    assert len(workers) == 8 and not workers & {seed_base(0, round=r) for r in range(100)}
