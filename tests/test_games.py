"""Game specs with every option, seeds that give no game, games repeated under another seed, and the
user's own game files: made and played through the real `oel` command line and the real generators."""

import json
import shutil

import pytest

from agent.games import REPLACEMENT_STRIDE, GameSpec, SuiteBook, content_key, make_game, make_suite
from oel.errors import OELError

EVERY_TEXTWORLD_KIND = [f"tw-simple:rewards={r},goal={g}" for r in ("dense", "balanced", "sparse")
                        for g in ("detailed", "brief", "none")] + [
    "tw-coin_collector:2", "tw-treasure_hunter:level=2", "tw-cooking:recipe=2,take=1,go=6,open,cook,cut",
    "custom:world-size=3,nb-objects=6,quest-length=2"]


def test_a_spec_takes_every_tw_make_option_and_refuses_unknown_ones():
    spec = GameSpec.parse("tw-cooking:recipe=2,take=2,go=6,open", 5)
    assert spec.tw_make_args() == ["tw-cooking", "--go", "6", "--open", "--recipe", "2", "--take", "2", "--seed", "5"]
    # Cached by the full option set: the same options in another order are the same game file.
    assert GameSpec.parse("tw-cooking:open,take=2,go=6,recipe=2", 5).name == spec.name != GameSpec.parse("tw-cooking:recipe=2,take=2,go=6", 5).name
    assert GameSpec.parse("tw-cooking:3", 0).settings == (("go", "1"), ("recipe", "3"), ("take", "3"))  # name:level still works
    assert GameSpec.parse("tw-coin_collector:3", 1).name == "tw-coin_collector_l3_s1"  # cached games keep their names
    assert "--quest-length" in GameSpec.parse("custom:world_size=4,quest-length=4", 0).tw_make_args()
    with pytest.raises(OELError, match="has no option 'recipes'; its options: cook, cut, drop, go, open, recipe"):
        GameSpec.parse("tw-cooking:recipes=2", 0)
    with pytest.raises(OELError, match="must be one of 1, 6, 9, 12"):
        GameSpec.parse("tw-cooking:go=7", 0)
    with pytest.raises(OELError, match="tw-simple has no level"):
        GameSpec.parse("tw-simple:3", 0)
    with pytest.raises(OELError, match="letters, digits"):  # a spec names a cache file: never a path
        GameSpec.parse("custom:theme=../../etc", 0)


def test_textarena_settings_are_real_or_refused(tmp_path):
    lake = json.loads(make_game(GameSpec.parse("ta-frozenlake:size=4,holes=3", 0), tmp_path).read_text())
    assert lake["settings"] == {"size": 4, "num_holes": 3, "randomize_start_goal": False}
    assert json.loads(make_game(GameSpec.parse("ta-frozenlake:5", 0), tmp_path).read_text())["settings"]["size"] == 5
    room = json.loads(make_game(GameSpec.parse("ta-sokoban:size=7,boxes=2", 0), tmp_path).read_text())
    assert room["settings"]["dim_room"] == [7, 7] and room["settings"]["num_boxes"] == 2
    with pytest.raises(OELError, match="takes 0 to 6 holes, got 9"):
        GameSpec.parse("ta-frozenlake:holes=9", 0)
    with pytest.raises(OELError, match="has no option 'width'; its options: boxes, max-turns, size"):
        GameSpec.parse("ta-sokoban:width=7", 0)


@pytest.mark.slow
def test_a_seed_that_cannot_be_made_is_skipped_recorded_and_replaced(tmp_path, capsys):
    spec = GameSpec.parse("tw-treasure_hunter:20", 3)  # tw-make: "doesn't permit quest of length: 10"
    book = SuiteBook.empty()
    [game] = make_suite([spec], tmp_path, "train", book)
    assert game.name == f"tw-treasure_hunter_l20_s{3 + REPLACEMENT_STRIDE}.z8"
    assert book.skipped[0]["game"] == "tw-treasure_hunter_l20_s3" and "quest of length" in book.skipped[0]["reason"]
    assert "warning: skipped tw-treasure_hunter_l20_s3 (train)" in capsys.readouterr().err
    skipped = [json.loads(line) for line in (tmp_path / "skipped.jsonl").read_text().splitlines()]
    assert skipped == [{"name": "tw-treasure_hunter_l20_s3", "reason": book.skipped[0]["reason"]}]
    # No seed makes a 5x5 room with 2 boxes: each seed tries one round of rooms (arena.MAKE_ROOM_ROUNDS), not 50.
    with pytest.raises(OELError, match="no ta-sokoban game could be made in 21 seeds from 0: .*fewer boxes"):
        make_suite([GameSpec.parse("ta-sokoban:size=5,boxes=2", 0)], tmp_path)


@pytest.mark.slow
def test_options_tw_make_refuses_stop_the_suite_on_the_second_seed(tmp_path, capsys):
    with pytest.raises(OELError, match=r"tw-make refuses tw-cooking:go=1,recipe=9,take=1: AssertionError: recipe must "
                                       r"have \{1,2,3,4,5\} ingredients. \(the same on two seeds"):
        make_suite([GameSpec.parse("tw-cooking:recipe=9", 0)], tmp_path)
    assert capsys.readouterr().err.count("warning: skipped") == 1  # seed 0; seed 100000 stops it, not 19 more


def test_a_frozenlake_board_met_twice_is_one_game(tmp_path):
    specs = [GameSpec.parse("ta-frozenlake", s) for s in range(6)]
    assert content_key(make_game(specs[3], tmp_path)) == content_key(make_game(specs[1], tmp_path))  # same 3x3 board
    book = SuiteBook.empty()
    test = make_suite(specs[:2], tmp_path, "test", book)
    train = make_suite(specs[2:], tmp_path, "train", book)
    assert f"s{3 + REPLACEMENT_STRIDE}" in train[1].stem  # seed 3 repeats a test board: replaced
    keys = [content_key(p) for p in test + train]
    assert len(set(keys)) == len(keys)
    assert book.skipped[0]["reason"] == "the same game as test: ta-frozenlake_s1"


@pytest.mark.slow
def test_every_textworld_kind_is_made_by_the_cli_and_played_by_oel_play(tmp_path):
    from tests.conftest import oel

    env = {"OEL_CACHE": str(tmp_path / "cache")}
    folder = tmp_path / "mine"
    folder.mkdir()
    for spec in EVERY_TEXTWORLD_KIND:
        made = oel("games", "make", spec, "--seeds", "1", "--json", env=env)
        assert made.returncode == 0, made.stderr
        [game] = json.loads(made.stdout)["games"]
        for f in (game, game.replace(".z8", ".json")):
            shutil.copy(f, folder)
    listed = json.loads(oel("games", "list", "--json", env=env).stdout)
    assert len(listed["games"]) == len(EVERY_TEXTWORLD_KIND)
    run = tmp_path / "run"
    played = oel("play", "--game", str(folder / "*.z8"), "--max-steps", "2", "--no-reflect", "--run-dir", run, env=env)
    assert played.returncode == 0, played.stderr
    assert f"/{len(EVERY_TEXTWORLD_KIND)};" in played.stdout  # "won k/13; ..."
    episodes = [json.loads(line) for line in (run / "trajectories" / "play.jsonl").read_text().splitlines()]
    assert sorted(e["game"] for e in episodes) == sorted(str(p.resolve()) for p in folder.glob("*.z8"))
    assert all(e["steps"] <= 2 for e in episodes)
    assert not (run / "games.json").exists()  # played only what it was asked: no held-out games made


@pytest.mark.slow
def test_oel_play_takes_a_challenge_a_seed_and_a_users_own_game(tmp_path, coin_game):
    from tests.conftest import oel

    env = {"OEL_CACHE": str(tmp_path / "cache")}
    mine = tmp_path / "my games"
    mine.mkdir()
    for f in (coin_game, coin_game.with_suffix(".json")):
        shutil.copy(f, mine / f.name.replace("tw-coin_collector_l1_s424242", "castle"))
    run = tmp_path / "run"
    done = oel("play", "--game", mine / "castle.z8", "--max-steps", "3", "--no-reflect", "--run-dir", run, env=env)
    assert done.returncode == 0, done.stderr
    [episode] = [json.loads(line) for line in (run / "trajectories" / "play.jsonl").read_text().splitlines()]
    assert episode["env"] == "my-games" and episode["game"].endswith("castle.z8")  # family: the game's folder
    done = oel("play", "--challenge", "ta-frozenlake:size=4,holes=3", "--seed", "7", "--games", "2", "--max-steps", "4",
               "--no-reflect", "--run-dir", run, env=env)
    assert done.returncode == 0, done.stderr
    assert "ta-frozenlake_holes=3,size=4_s7.ta" in done.stdout and "ta-frozenlake_holes=3,size=4_s8.ta" in done.stdout
    bad = oel("play", "--challenge", "tw-cooking:recipes=2", "--run-dir", run, env=env)
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "its options:" in bad.stderr


def test_a_run_can_train_and_test_on_the_users_own_game_folders(tmp_path, coin_game):
    from consolidation.loop import Suites, prepare_games
    from oel.config import OELConfig

    folders = {}
    for split in ("train", "test"):
        folders[split] = tmp_path / f"{split}-castles"
        folders[split].mkdir()
        for n in range(3):
            for f in (coin_game, coin_game.with_suffix(".json")):
                shutil.copy(f, folders[split] / f"castle{n}{f.suffix}")
    cfg = OELConfig(train_files=[str(folders["train"])], test_files=[str(folders["test"] / "*.z8")],
                    validation_files=[str(folders["test"] / "castle0.z8")], train_games=2, rounds=2)
    run = tmp_path / "run"
    run.mkdir()
    suites = prepare_games(cfg, run)
    assert [p.name for p, _ in suites.train[1]] == ["castle0.z8", "castle1.z8"]
    assert [p.name for p, _ in suites.train[2]] == ["castle2.z8", "castle0.z8"]  # the next ones, cycling
    assert len(suites.test) == 3 and {f for _, f in suites.test} == {"test-castles"}  # family: the folder
    assert Suites.read(run).test == suites.test  # recorded: a resumed run plays the same games
    with pytest.raises(OELError, match="no game file matches"):
        prepare_games(OELConfig(train_files=[str(tmp_path / "nothing*.z8")]), tmp_path / "other")


def test_without_fresh_games_every_round_replays_round_ones_games(tmp_path, monkeypatch):
    from consolidation.loop import prepare_games
    from oel.config import OELConfig

    monkeypatch.setenv("OEL_CACHE", str(tmp_path / "cache"))
    lake = ["ta-frozenlake:size=4,holes=3"]
    run = tmp_path / "run"
    run.mkdir()
    same = prepare_games(OELConfig(challenges=lake, fresh_games=False, train_games=2, rounds=3,
                                   test_games=1, validation_games=1), run)
    assert same.train[2] == same.train[3] == same.train[1]  # not replaced as repeats of round 1
    assert not [s for s in same.skipped if s["split"].startswith("train round")]
    (tmp_path / "fresh").mkdir()
    fresh = prepare_games(OELConfig(challenges=lake, train_games=2, rounds=2, test_games=1, validation_games=1),
                          tmp_path / "fresh")
    assert not {p for p, _ in fresh.train[1]} & {p for p, _ in fresh.train[2]}
