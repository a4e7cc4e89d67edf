"""A real miniature round: the embedded SmolLM2-135M, real TextWorld games, real Chroma, real TRL.

Runs `oel loop` as a user would, then reads everything back through the CLI.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real model, subprocesses or servers: `make test-fast` leaves it out

OEL = str(Path(sys.executable).parent / "oel")


def test_one_real_round_from_the_cli(tmp_path):
    run_dir = tmp_path / "run"
    config = tmp_path / "mini.toml"
    config.write_text('challenges = ["tw-coin_collector:1"]\ntrain_games = 2\nvalidation_games = 2\ntest_games = 2\nmax_steps = 8\n'
                      "rounds = 1\ndistill_steps = 2\ndistill_batch_size = 2\ndistill_max_new_tokens = 16\n"
                      "reflection_max_new_tokens = 48\n"
                      # TRL's SDFT trainer on the real model; the choose-mode trainer is covered by the kill tests.
                      'distill_objective = "tokens"\n')
    done = subprocess.run([OEL, "loop", "--config", str(config), "--run-dir", str(run_dir)],
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Online experiential learning, per round" in done.stdout

    rows = [json.loads(line) for line in (run_dir / "reports" / "rounds.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [0, 1]
    for row in rows:
        assert 0 <= row["success_no_memory"] <= 1 and row["n_games"] == 2 and row["steps"] > 0
        assert row["invalid_per_episode"] == 0  # choose mode acts with admissible commands only
    # Each row says where its round's time went.
    assert set(rows[0]["timings"]) == {"eval_s"}
    assert {"play_s", "utility_s", "teacher_eval_s", "consolidate_s"} <= set(rows[1]["timings"])
    assert rows[1]["timings"]["play_s"] > 0
    assert (run_dir / "reports" / "learning_curve.png").stat().st_size > 1000

    games = json.loads((run_dir / "games.json").read_text())
    train, validation, test = ({g for g, _ in games["train"]["1"]}, {g for g, _ in games["validation"]},
                               {g for g, _ in games["test"]})
    assert len(train | validation | test) == 6  # disjoint

    episodes = [json.loads(line) for line in (run_dir / "trajectories" / "round_1.jsonl").read_text().splitlines()]
    assert len(episodes) == 2
    for episode in episodes:
        assert episode["outcome"] in ("won", "lost", "step_limit")
        assert episode["won"] == (episode["outcome"] == "won")
        assert all(t["prefix"] and "output" in t for t in episode["turns"])

    items = json.loads(subprocess.run([OEL, "memory", "list", "--status", "all", "--json", "--run-dir", str(run_dir)],
                                      capture_output=True, text=True, check=True).stdout)
    for item in items:
        assert {"id", "text", "env", "source", "round", "status", "kind", "utility", "utility_n"} <= set(item)
        assert item["source"].startswith("r1-") and item["round"] == 1
        assert item["status"] != "quarantined" or item["reason"]
    # Each won or scoring train episode left its procedure, and its commands are the episode's own.
    for episode in episodes:
        procedures = [i for i in items if i["kind"] == "procedure" and i["source"] == episode["id"]]
        if episode["won"]:
            assert len(procedures) == 1 or any(i["kind"] == "procedure" and i["support"] > 1 for i in items)
        for item in procedures:
            assert set(item["signature"].split(" | ")) <= {t["action"] for t in episode["turns"]}

    manifests = json.loads(subprocess.run([OEL, "checkpoints", "list", "--json", "--run-dir", str(run_dir)],
                                          capture_output=True, text=True, check=True).stdout)
    if items:  # reflection wrote knowledge, so a checkpoint was trained and gated
        [m] = manifests
        assert m["version"] == "v1" and m["parent"] is None and m["status"] in ("promoted", "rejected")
        assert m["knowledge_ids"] and m["eval"]["before"] and m["eval"]["after"] and m["config"]["rounds"] == 1
        assert (run_dir / "checkpoints" / "v1" / "adapter_model.safetensors").is_file()
        assert m["training"]["method"] == "tokens" and any("loss" in row for row in m["training"]["log"])
        # Each step logs what generate-mode consolidation is judged by: KL, response length, commands.
        steps = [row for row in m["training"]["log"] if "loss" in row]
        assert len(steps) == 2 and all(0 <= row["completions/valid_fraction"] <= 1 and
                                       row["completions/mean_length"] > 0 for row in steps)
        report = subprocess.run([OEL, "report", "--run-dir", str(run_dir)], capture_output=True, text=True, check=True)
        assert "Consolidations" in report.stdout and "samples that are commands" in report.stdout
        consolidated = {i["id"] for i in items if i["status"] == "consolidated"}
        assert consolidated == (set(m["knowledge_ids"]) if m["status"] == "promoted" else set())
        if m["status"] == "promoted":
            assert all(i["consolidated_in"] == "v1" for i in items if i["status"] == "consolidated")
        check_chain_and_forget(run_dir, m, episodes, tmp_path)
    else:
        assert manifests == [] and rows[1]["gate"].startswith("skipped")

    # Resuming a finished run redoes nothing and keeps every artifact.
    again = subprocess.run([OEL, "loop", "--config", str(config), "--run-dir", str(run_dir)],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert len((run_dir / "reports" / "rounds.jsonl").read_text().splitlines()) == 2


def check_chain_and_forget(run_dir: Path, v1: dict, episodes: list[dict], tmp_path: Path) -> None:
    """On what the loop wrote: the inspector page's provenance chain resolves, item to episode to checkpoint
    and back; then forgetting one absorbed item takes it out of the memory and the weights."""
    from starlette.testclient import TestClient

    from oel.ui import create_app

    page = TestClient(create_app(run_dir))
    item_id = v1["knowledge_ids"][0]
    item = page.get(f"/items/{item_id}").text
    source = re.findall(r'href="/episodes/([^"]+)"', item)[0]
    assert source in {e["id"] for e in episodes} and 'href="/checkpoints/v1"' in item
    assert item_id in re.findall(r'href="/items/([^"]+)"', page.get(f"/episodes/{source}").text)  # and back
    checkpoint = page.get("/checkpoints/v1").text
    assert item_id in re.findall(r'href="/items/([^"]+)"', checkpoint)
    assert "samples that are commands" in checkpoint  # the SDFT step log's columns

    run = ["--run-dir", str(run_dir)]
    done = subprocess.run([OEL, "memory", "forget", item_id, "--yes", "--reason", "wrong", *run],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    [tainted] = json.loads(subprocess.run([OEL, "checkpoints", "list", "--json", *run], capture_output=True, text=True,
                                          check=True).stdout)
    assert tainted["status"] == "tainted" and "base model" in done.stdout  # the policy before v1 is in force
    items = json.loads(subprocess.run([OEL, "memory", "list", "--status", "all", "--json", *run],
                                      capture_output=True, text=True, check=True).stdout)
    assert item_id not in {i["id"] for i in items}
    others = set(v1["knowledge_ids"]) - {item_id}
    assert {i["status"] for i in items if i["id"] in others} <= {"active"}  # given back
    exported = tmp_path / "export.jsonl"
    subprocess.run([OEL, "memory", "export", str(exported), *run], check=True, capture_output=True)
    assert item_id not in exported.read_text()
    again = subprocess.run([OEL, "consolidate", *run], capture_output=True, text=True, timeout=1200)
    assert again.returncode == 0, again.stderr[-2000:]
    if others:  # something was left to learn: a new checkpoint, without the forgotten item
        v2 = json.loads(subprocess.run([OEL, "checkpoints", "show", "v2", "--json", *run], capture_output=True,
                                       text=True, check=True).stdout)
        assert v2["replaces"] == ["v1"] and item_id not in v2["knowledge_ids"]
