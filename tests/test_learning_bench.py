"""bench/learning.py end to end on a tiny random model (real TextWorld, TextArena, Chroma and TRL): every
arm runs, each round's teacher is evaluated, and the JSON, PNG and docs section are written."""

import json
import shutil

import pytest

import bench.learning as bench
from bench.arms import OOD, OOD_TRAIN
from bench.common import write_docs
from oel.stats import paired_p, wilson

pytestmark = pytest.mark.slow  # real model, subprocesses or servers: `make test-fast` leaves it out


def test_wilson_interval():
    assert wilson(0, 8) == [0.0, pytest.approx(0.3244, abs=1e-4)]  # never a zero-width interval at 0%
    low, high = wilson(9, 16)
    assert low < 9 / 16 < high and 0 <= low and high <= 1
    assert wilson(16, 16)[1] == 1.0


def test_paired_p_uses_only_the_games_that_changed():
    assert paired_p([0, 1, 1, 0], [0, 1, 1, 0]) == 1.0  # nothing changed
    assert paired_p([0] * 8, [1] * 8) == pytest.approx(2 / 2 ** 8, abs=1e-4)  # 8 of 8 discordant gained
    # Shared wins and losses add nothing: the same 3 gains and 1 loss give the same p with 20 more ties.
    assert paired_p([0, 0, 0, 1], [1, 1, 1, 0]) == paired_p([0, 0, 0, 1] + [1] * 20, [1, 1, 1, 0] + [1] * 20)
    assert paired_p(None, [1]) is None and paired_p([1], [1, 0]) is None


def test_docs_section_is_replaced_and_hand_written_text_kept(tmp_path):
    docs = tmp_path / "RESULTS.md"
    docs.write_text("# Results\n\nBy hand, before.\n")
    write_docs(docs, f"{bench.SECTION[0]}\nfirst\n{bench.SECTION[1]}", bench.SECTION)
    docs.write_text(docs.read_text() + "\nBy hand, after.\n")
    write_docs(docs, f"{bench.SECTION[0]}\nsecond\n{bench.SECTION[1]}", bench.SECTION)
    text = docs.read_text()
    assert "By hand, before." in text and "By hand, after." in text
    assert "second" in text and "first" not in text and text.count(bench.SECTION[0]) == 1


def test_quick_bench_runs_every_arm(tmp_path, tiny_model_dir):
    writer = tmp_path / "writer-model"
    shutil.copytree(tiny_model_dir, writer)
    out = tmp_path / "results" / "learning.json"
    result = bench.main(["--quick", "--model", str(tiny_model_dir), "--knowledge-model", str(writer),
                         "--runs-dir", str(tmp_path / "runs"), "--out", str(out), "--docs", str(tmp_path / "R.md"),
                         "--set", "distill_steps=1", "--set", "distill_batch_size=2",
                         "--set", "reflection_max_new_tokens=12"])
    saved = json.loads(out.read_text())
    assert saved["rounds"] == result["rounds"] and {"baselines", "ood", "config", "command", "targets"} <= set(saved)
    for row in saved["rounds"]:
        assert {"round", "success_no_memory", "success_in_context", "tokens_per_episode", "steps", "n_games",
                "ci95"} <= set(row)
    assert [r["round"] for r in saved["rounds"]] == [0, 1] and saved["rounds"][0]["success_in_context"] is None
    assert saved["arms"]["frozenlake"]["rounds"][1]["n_games"] == 3  # --frozenlake-test-games
    assert saved["arms"]["sokoban"]["rounds"][1]["n_games"] == 3  # --sokoban-test-games
    assert saved["targets"]["sokoban_gain_points"]["met"] is None  # reported, with no threshold
    # OOD: trained on coin collector alone, tested on treasure hunter, never the other way round.
    assert saved["ood"]["trained_on"] == OOD_TRAIN and saved["ood"]["challenges"] == OOD
    assert saved["ood"]["round0"]["n_games"] == 2 and "drop_points" in saved["ood"] and "paired_p" in saved["ood"]
    # Per-game outcomes were kept, so round 0 and the last round get a paired test.
    assert len(saved["rounds"][0]["wins"]) == 2 and saved["targets"]["gain_points"]["paired_p"] is not None
    for name in ("knowledge_only", "raw_trajectories", "sft_on_teacher_samples", "other_model_knowledge"):
        assert len(saved["baselines"][name]["rounds"]) == 2
    # The recheck replays the loop's held-out games first, with the same seeds, so those outcomes repeat
    # exactly; then it adds new held-out games.
    recheck = saved["heldout_recheck"]
    assert recheck["round0"]["n_games"] == 3 and recheck["round0"]["wins"][:2] == saved["rounds"][0]["wins"]
    assert recheck["final"]["wins"][:2] == saved["rounds"][-1]["wins"]
    assert {"gain_points_recheck", "steps_ratio_recheck", "final_success_recheck"} <= set(saved["targets"])
    assert saved["teacher_context"] == "memory"
    # Each round's teacher was evaluated once and saved, so a resumed bench does not redo it.
    teacher = tmp_path / "runs" / "textworld" / "reports" / "in_context.jsonl"
    assert [json.loads(line)["round"] for line in teacher.read_text().splitlines()] == [1]
    # The other model wrote that baseline's knowledge; the policy wrote the method's.
    items = json.loads((tmp_path / "runs" / "baseline-other_model_knowledge" / "trajectories" / "round_1.jsonl")
                       .read_text().splitlines()[0])
    assert items["policy"] == str(tiny_model_dir)
    from memory.store import Memory

    with Memory(tmp_path / "runs" / "baseline-other_model_knowledge" / "memory", read_only=True) as memory:
        assert all(i.created_by == str(writer) for i in memory.list("all"))
    assert out.with_suffix(".png").stat().st_size > 0
    assert "### Targets" in (tmp_path / "R.md").read_text()
    assert "min: round 0's evaluations" in (tmp_path / "R.md").read_text()  # where each arm's time went
    assert saved["rounds"][1]["timings"]["play_s"] > 0 and "consolidate_s" in saved["rounds"][1]["timings"]
    assert {"frozenlake_base_success", "frozenlake_gain_points"} <= set(saved["targets"])
    # Parts can be left out of a later invocation: the finished arms resume from their artifacts, and
    # what was left out reads "not measured", never a number.
    again = bench.main(["--quick", "--model", str(tiny_model_dir), "--runs-dir", str(tmp_path / "runs"), "--out",
                        str(out), "--docs", str(tmp_path / "R.md"), "--set", "distill_steps=1", "--set",
                        "distill_batch_size=2", "--set", "reflection_max_new_tokens=12", "--skip", "ood", "baselines"])
    assert again["ood"] is None and again["targets"]["ood_drop_points"]["value"].startswith("not measured")
    assert again["rounds"] == saved["rounds"] and "Not run in this invocation" in (tmp_path / "R.md").read_text()


def test_board_arm_alone_without_the_textworld_arm(tmp_path, tiny_model_dir):
    """`--skip textworld`: one board arm and its targets, no recheck; skipping every arm is a one-line error."""
    from oel.errors import OELError

    common = ["--quick", "--model", str(tiny_model_dir), "--runs-dir", str(tmp_path / "runs"), "--docs",
              str(tmp_path / "R.md"), "--set", "distill_steps=1", "--set", "distill_batch_size=2",
              "--set", "reflection_max_new_tokens=12", "--out", str(tmp_path / "learning.json")]
    result = bench.main(common + ["--skip", "textworld", "ood", "baselines", "sokoban"])
    assert set(result["arms"]) == {"frozenlake"} and result["heldout_recheck"] is None and result["rounds"] == []
    assert set(result["targets"]) == {"ood_drop_points", "frozenlake_base_success", "frozenlake_gain_points"}
    assert not (tmp_path / "runs" / "textworld").exists()
    docs = (tmp_path / "R.md").read_text()
    assert "### frozenlake" in docs and "Not run in this invocation (`--skip textworld`)" in docs
    with pytest.raises(OELError, match="no arm to run"):
        bench.main(common + ["--skip", "textworld", "frozenlake", "sokoban"])
    # Written to the default files, the boards alone would replace the full bench's results there.
    with pytest.raises(OELError, match="files of their own"):
        bench.main(["--quick", "--skip", "textworld", "ood", "baselines", "sokoban"])


def test_wordings_change_only_the_words_of_the_acting_prompt():
    from agent.prompts import acting_messages, situation_text
    from bench.wording import STRICT, WORDINGS, worded

    commands = ["go east", "take coin"]
    base = acting_messages(situation_text("get the coin", [], "A room.", commands))
    assert worded(base, commands, WORDINGS["base"]) == base
    listed = worded(base, commands, WORDINGS["strict+list"])
    assert listed[0]["content"] == STRICT["system"] and "Valid commands:\ngo east\ntake coin\n" in listed[1]["content"]
    assert listed[1]["content"].endswith("exactly as written:") and "Your command:" not in listed[1]["content"]
    only = worded(base, commands, WORDINGS["only"])[1]["content"]
    assert only == base[1]["content"].removesuffix("Your command:") + "Reply with the command only:"


def test_generate_targets_read_the_recheck():
    recheck = {"round0": {"invalid_per_episode": 10.0, "tokens_per_episode": 900.0},
               "final": {"invalid_per_episode": 4.0, "tokens_per_episode": 700.0}, "change_points": 12.5, "paired_p": 0.2}
    t = bench.generate_targets(recheck)
    assert t["generate_invalid_ratio"] == {"value": 0.4, "target": "<= 0.5", "met": True}
    assert t["generate_tokens_ratio"]["value"] == 0.778 and not t["generate_tokens_ratio"]["met"]
    assert t["generate_gain_points"]["met"] and t["generate_gain_points"]["paired_p"] == 0.2
    # An evaluation made before invalid responses were kept has no ratio, and says so.
    del recheck["round0"]["invalid_per_episode"]
    assert bench.generate_targets(recheck)["generate_invalid_ratio"] == {"value": None, "target": "<= 0.5", "met": False}


@pytest.mark.parametrize("mode", ["choose", "generate"])
def test_rounds_table_shows_invalid_responses_in_generate_mode(tmp_path, mode):
    row = {"round": 0, "policy": "p", "success_no_memory": 0.5, "ci95": [0.1, 0.9], "success_in_context": None,
           "ci95_in_context": None, "steps": 3.0, "tokens_per_episode": 10.0, "memory_active": 1,
           "memory_consolidated": 0, "gate": "-", "invalid_per_episode": 2.5, "n_games": 4}
    evaluation = {"success": 0.5, "ci95": [0, 1], "n_games": 4, "steps": 3.0, "tokens_per_episode": 10.0,
                  "invalid_per_episode": 2.5}
    result = {"command": "c", "measured_at": "d", "machine": "m", "wall_s": 60, "ood": None, "baselines": {},
              "config": {"textworld": {"teacher_context": "memory", "action_mode": mode}},
              "arms": {"textworld": {"rounds": [row], "run_dir": "r", "wall_s": 60}},
              "heldout_recheck": {"final_policy": None, "round0": evaluation, "final": evaluation, "change_points": 0,
                                  "paired_p": 1.0},
              "targets": {"gain_points": {"value": 0, "target": "x", "met": False, "paired_p": None}}}
    lines = bench.markdown(result, tmp_path / "l.png", tmp_path / "R.md").splitlines()
    header = next(line for line in lines if line.startswith("| round"))
    separator, first = lines[lines.index(header) + 1], lines[lines.index(header) + 2]
    assert header.count("|") == separator.count("|") == first.count("|")  # a well-formed table either way
    assert ("invalid/ep" in header) == ("| 2.5 |" in first) == (mode == "generate")


def test_ood_lever_bench_keeps_one_row_per_run_and_reevaluates_on_new_games(tmp_path, tiny_model_dir):
    import bench.ood as ood

    out, docs = tmp_path / "levers.jsonl", tmp_path / "R.md"
    docs.write_text("# Results\n\nBy hand.\n")
    common = ["--model", str(tiny_model_dir), "--rounds", "1", "--train-games", "2", "--validation-games", "2", "--test-games", "2",
              "--max-steps", "3", "--out", str(out), "--docs", str(docs), "--set", "distill_steps=1",
              "--set", "distill_batch_size=2", "--set", "reflection_max_new_tokens=12"]
    first = ood.main(["--runs-dir", str(tmp_path / "a"), "--ood-games", "2", *common])
    assert first["ood_n"] == 2 and len(first["in_distribution"]) == 2
    assert first["settings"] == {"distill_steps": 1, "distill_batch_size": 2, "reflection_max_new_tokens": 12}
    # The same run with more OOD games: the loop resumes (nothing retrained) and the saved OOD evaluation,
    # made on 2 games, is not reused for 3.
    again = ood.main(["--runs-dir", str(tmp_path / "a"), "--ood-games", "3", *common])
    assert again["ood_n"] == 3 and again["in_distribution"] == first["in_distribution"]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["ood_n"] == 3  # one row per run directory
    text = docs.read_text()
    assert "By hand." in text and text.count(ood.SECTION[0]) == 1 and "(3)" in text


def test_teacher_and_candidates_benches_on_one_run(tmp_path, tiny_model_dir, monkeypatch):
    from consolidation.loop import run_loop
    from memory.store import Memory
    from oel.config import OELConfig
    from oel.errors import OELError

    import bench.teacher as teacher

    run_dir = tmp_path / "run"
    with Memory(run_dir / "memory") as memory:  # a random model writes no usable knowledge: seed it
        memory.add("Take the coin as soon as you see it.", env="tw-coin_collector", source="seed", outcome="won",
                   round=1, created_by="hand")
    run_loop(OELConfig(model=str(tiny_model_dir), challenges=["tw-coin_collector:1"], train_games=2, validation_games=2, test_games=2,
                       max_steps=3, rounds=1, distill_steps=1, distill_batch_size=2, reflection_max_new_tokens=8),
             run_dir)
    with Memory(run_dir / "memory", read_only=True) as memory:
        before = memory.export()
    args = ["--run-dir", str(run_dir), "--games", "3", "--out", str(tmp_path / "t.json"), "--docs", str(tmp_path / "R.md")]
    result = teacher.main([*args, "--contexts", "knowledge+trajectories"])
    rows = result["contexts"]
    assert list(rows) == ["none", "knowledge+trajectories"]  # `none`, the reference, is always played
    assert all(row["n_games"] == 3 and len(row["wins"]) == 3 for row in rows.values())
    # The loop's own held-out games come first, with the same seeds: the base model repeats its outcomes.
    loop_round0 = json.loads((run_dir / "reports" / "rounds.jsonl").read_text().splitlines()[0])
    assert rows["none"]["wins"][:2] == loop_round0["wins"]
    # Saved evaluations are reused: a second call with one more context only plays that one.
    again = teacher.main([*args, "--contexts", "knowledge,knowledge+trajectories"])
    assert again["contexts"]["none"] == rows["none"] and set(again["contexts"]) == {"none", "knowledge",
                                                                                    "knowledge+trajectories"}
    with Memory(run_dir / "memory", read_only=True) as memory:
        assert memory.export() == before  # the knowledge was read from a copy; the run's memory is untouched
    assert "| knowledge+trajectories |" in (tmp_path / "R.md").read_text()
    with pytest.raises(OELError, match="round 2"):
        teacher.main([*args, "--round", "2"])
    # The same contexts in generate mode are played afresh (a --set is part of what is saved), and its table
    # counts the responses that were no command.
    generated = teacher.main([*args, "--contexts", "knowledge", "--set", 'action_mode="generate"',
                              "--set", "max_new_tokens=4"])
    assert generated["action_mode"] == "generate" and set(generated["contexts"]) == {"none", "knowledge"}
    assert all(len(row["wins"]) == 3 and "invalid_per_episode" in row for row in generated["contexts"].values())
    assert "| invalid/ep | tokens/ep |" in (tmp_path / "R.md").read_text()
    saved = json.loads((run_dir / "reports" / "teacher_r1.json").read_text())
    assert len([key for key in saved if key.startswith("none|")]) == 2  # the choose-mode row and the generate-mode one
    assert teacher.main([*args, "--contexts", "knowledge"])["contexts"]["none"] == rows["none"]

    # The acting prompt formats on validation games, alone and with the round's memory, paired.
    import bench.prompts as prompts

    formats = prompts.main(["--run-dir", str(run_dir), "--games", "2", "--out", str(tmp_path / "p.json")])["rows"]
    assert list(formats) == ["chat", "transcript", "chat + memory", "transcript + memory"]
    assert formats["transcript"]["vs_transcript"] is None and sum(formats["chat"]["vs_transcript"]["gained_lost"]) <= 2
    assert formats["chat + memory"]["prompt_tokens"] > formats["chat"]["prompt_tokens"]  # the memory is in the prompt
    assert all(0 < row["encoded_tokens"] <= row["prompt_tokens"] for row in formats.values())

    # Float32 against bfloat16 weights on validation games, alone and with the round's memory, paired.
    import bench.precision as precision

    weights = precision.main(["--run-dir", str(run_dir), "--games", "2", "--out", str(tmp_path / "w.json")])["rows"]
    assert list(weights) == ["float32", "float32 + memory", "bfloat16", "bfloat16 + memory"]
    assert weights["float32"]["vs_float32"] is None and sum(weights["bfloat16"]["vs_float32"]["gained_lost"]) <= 2
    assert all(row["n_games"] == 2 and row["seconds"] > 0 for row in weights.values())

    # Generate-mode levers on validation games, alone and as the teacher with the round's memory, paired.
    import bench.generate as generate

    compared = generate.main(["--run-dir", str(run_dir), "--games", "2", "--levers", "whole_response",
                              "--concurrency", "2", "--out", str(tmp_path / "g.json")])
    assert compared["base"]["one_line"] is True and compared["levers"]["whole_response"] == {"one_line": False}
    levers = compared["rows"]
    assert list(levers) == ["base", "whole_response", "base + memory", "whole_response + memory"]
    assert levers["base"]["vs_base"] is None and sum(levers["whole_response"]["vs_base"]["gained_lost"]) <= 2
    assert all(row["n_games"] == 2 and row["invalid_per_episode"] <= row["steps"] for row in levers.values())
    with pytest.raises(SystemExit):  # an unknown lever is a usage error, before anything is played
        generate.main(["--run-dir", str(run_dir), "--levers", "louder"])

    # Acting prompt wordings: every wording samples the same situations, paired response by response.
    import bench.wording as wording

    worded = wording.main(["--run-dir", str(run_dir), "--games", "2", "--samples", "2", "--out", str(tmp_path / "wd.json")])
    assert list(worded["rows"]) == list(wording.WORDINGS) and 2 <= worded["situations"] <= 4
    assert all(row["responses"] == 2 * worded["situations"] and 0 <= row["valid"] <= 1 for row in worded["rows"].values())
    assert worded["rows"]["base"]["vs_base"] is None and sum(worded["rows"]["only"]["vs_base"]["gained_lost"]) <= 8

    # Every checkpoint on more test games, promoted or not, paired with the base model.
    import bench.arms
    import bench.candidates as candidates

    found = candidates.main(["--run-dir", str(run_dir), "--games", "3", "--json"])
    [row] = found["checkpoints"]  # one round: one checkpoint, whatever the gate said
    assert row["version"] == "v1" and row["gained"] + row["lost"] <= 3 and 0 <= row["success"] <= 1
    saved = json.loads((run_dir / "reports" / "candidates.json").read_text())
    assert saved["base"]["wins"][:2] == loop_round0["wins"]  # the loop's test games, the same seeds
    monkeypatch.setattr(bench.arms, "evaluate", lambda *a, **k: pytest.fail("a saved evaluation was replayed"))
    assert candidates.main(["--run-dir", str(run_dir), "--games", "3", "--json"]) == found
    assert row["gate_here"] is None  # the test games decide nothing, not even in a what-if
    monkeypatch.undo()
    validation = candidates.main(["--run-dir", str(run_dir), "--games", "3", "--split", "validation", "--json"])
    [what_if] = validation["checkpoints"]
    assert what_if["gate_here"] in ("promoted", "rejected") and validation["split"] == "validation"
    assert (run_dir / "reports" / "candidates-validation.json").is_file()
    with pytest.raises(OELError, match="not a run directory"):
        candidates.main(["--run-dir", str(tmp_path / "nothing")])



def test_sdft_levers_bench_on_a_run(tmp_path, tiny_model_dir):
    """Generate mode's SDFT on a run's prefixes: teacher against student there, then one consolidation per
    setting, each paired with the base model on validation situations; the run itself is left as it was."""
    from consolidation.loop import run_loop
    from memory.store import Memory
    from oel.config import OELConfig
    from oel.errors import OELError

    import bench.sdft_levers as levers

    run_dir = tmp_path / "run"
    with Memory(run_dir / "memory") as memory:  # a random model writes no usable knowledge: seed it
        memory.add("Take the coin as soon as you see it.", env="tw-coin_collector", source="seed", outcome="won",
                   round=1, created_by="hand")
    run_loop(OELConfig(model=str(tiny_model_dir), challenges=["tw-coin_collector:1"], train_games=2, validation_games=2,
                       test_games=2, max_steps=3, rounds=1, distill_steps=1, distill_batch_size=2, action_mode="generate",
                       max_new_tokens=6, distill_max_new_tokens=6, reflection_max_new_tokens=8), run_dir)
    with Memory(run_dir / "memory", read_only=True) as memory:
        before = memory.export()
    args = ["--run-dir", str(run_dir), "--games", "2", "--prefixes", "3", "--samples", "2", "--out", str(tmp_path / "s.json")]
    result = levers.main([*args, "--setting", "learning_rate=0.5"])
    rows = result["rows"]
    assert list(rows) == ["student, train prefixes", "teacher, train prefixes", "base model, validation",
                          "after SDFT: run's settings", "after SDFT: learning_rate=0.5"]
    assert rows["student, train prefixes"]["responses"] == rows["teacher, train prefixes"]["responses"] == 2 * result["prefixes"]
    assert sum(rows["teacher, train prefixes"]["vs"]["gained_lost"]) <= 2 * result["prefixes"]
    for name in ("after SDFT: run's settings", "after SDFT: learning_rate=0.5"):
        row = rows[name]
        assert row["responses"] == rows["base model, validation"]["responses"] == 2 * result["situations"]
        assert row["training"]["loss"] is not None and sum(row["vs"]["gained_lost"]) <= row["responses"]
    assert rows["after SDFT: learning_rate=0.5"]["setting"] == {"learning_rate": 0.5}
    assert json.loads((tmp_path / "s.json").read_text())["rows"].keys() == rows.keys()
    with Memory(run_dir / "memory", read_only=True) as memory:
        assert memory.export() == before
    with pytest.raises(OELError, match="unknown setting"):  # checked before anything is sampled or trained
        levers.main([*args, "--setting", "learning_rat=1e-3"])
    with pytest.raises(OELError, match="run `oel play` there first"):  # round 0 is what `oel play` logged
        levers.main([*args, "--round", "0"])
