"""Consolidation as a user runs it: `oel loop` killed and resumed, `oel consolidate`, `oel schedule`,
`oel checkpoints ...`, and `accelerate launch`. A tiny random model keeps it fast; TextWorld, Chroma and
TRL are real. The memory is seeded by hand because a random model writes no usable knowledge."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memory.store import Memory

pytestmark = pytest.mark.slow  # real model, subprocesses or servers: `make test-fast` leaves it out

BIN = Path(sys.executable).parent
OEL = str(BIN / "oel")


def oel(*args, timeout=600):
    return subprocess.run([OEL, *args], capture_output=True, text=True, timeout=timeout)


def make_run(tmp_path, tiny_model_dir, rounds=1, train_games=3):
    config = tmp_path / "tiny.toml"
    config.write_text(f'model = "{tiny_model_dir}"\nchallenges = ["tw-coin_collector:1"]\ntrain_games = {train_games}\n'
                      f"validation_games = 2\ntest_games = 2\nmax_steps = 3\nrounds = {rounds}\ndistill_steps = 2\ndistill_batch_size = 2\n"
                      "reflection_max_new_tokens = 8\n")
    run_dir = tmp_path / "run"
    with Memory(run_dir / "memory") as memory:
        for text in ("Take the coin as soon as you see it.", "Go through every unblocked exit to explore."):
            memory.add(text, env="tw-coin_collector", source="seed", outcome="won", round=0, created_by="hand")
    return config, run_dir


def lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def kill_when(proc, ready, limit=300):
    deadline = time.time() + limit
    while time.time() < deadline and proc.poll() is None:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("stage", ["play", "consolidate"])
def test_loop_killed_mid_stage_resumes_without_loss_or_duplicates(tmp_path, tiny_model_dir, stage):
    config, run_dir = make_run(tmp_path, tiny_model_dir, rounds=2)
    args = [OEL, "loop", "--config", str(config), "--run-dir", str(run_dir)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = run_dir / "trajectories" / "round_1.jsonl"
    if stage == "play":
        ready = lambda: log.is_file() and len(lines(log)) >= 1  # noqa: E731
    else:
        ready = lambda: any(run_dir.glob(".consolidate-*/trainer"))  # noqa: E731
    assert kill_when(proc, ready), "the loop finished before it could be killed"

    done = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = lines(run_dir / "reports" / "rounds.jsonl")
    assert [r["round"] for r in rows] == [0, 1, 2]
    for r in (1, 2):
        episodes = lines(run_dir / "trajectories" / f"round_{r}.jsonl")
        assert len(episodes) == 3 and len({e["game"] for e in episodes}) == 3  # none lost, none twice
    manifests = json.loads(oel("checkpoints", "list", "--json", "--run-dir", str(run_dir)).stdout)
    assert sorted(m["round"] for m in manifests) == [1, 2]  # one checkpoint per round, no half-written one
    assert not list(run_dir.glob(".consolidate-*")) and not list((run_dir / "checkpoints").glob(".tmp-*"))
    items = json.loads(oel("memory", "list", "--status", "all", "--json", "--run-dir", str(run_dir)).stdout)
    sources = {e["id"] for r in (1, 2) for e in lines(run_dir / "trajectories" / f"round_{r}.jsonl")} | {"seed"}
    assert all(i["source"] in sources for i in items)  # logged first: no item names an unlogged episode
    assert len([i for i in items if i["source"] == "seed"]) == 2


def test_ctrl_c_says_where_the_loop_stopped_and_resuming_goes_on(tmp_path, tiny_model_dir):
    config, run_dir = make_run(tmp_path, tiny_model_dir, rounds=1)
    args = [OEL, "loop", "--config", str(config), "--run-dir", str(run_dir)]
    # As a terminal starts it: a shell's background job (CI under `cmd &`) ignores SIGINT, and a child
    # inherits that, so Ctrl-C would never reach it. The user's Ctrl-C is what this test is about.
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log = run_dir / "trajectories" / "round_1.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (log.is_file() and lines(log)):
        time.sleep(0.05)
    assert proc.poll() is None, "the loop finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    stderr = proc.communicate(timeout=300)[1]
    assert proc.returncode == 130, stderr[-3000:]
    # Progress bars share stderr; the message is one line of its own, after them.
    [line] = [part for part in stderr.replace("\r", "\n").splitlines() if part.startswith("oel:")]
    assert stderr.rstrip().endswith(line)
    assert "stopped during round 1" in line and "run the same command to resume" in line
    assert "Traceback" not in stderr
    done = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    episodes = lines(log)
    assert len(episodes) == 3 and len({e["game"] for e in episodes}) == 3


def test_consolidate_is_idempotent_locked_and_checkpoints_roll_back(tmp_path, tiny_model_dir):
    config, run_dir = make_run(tmp_path, tiny_model_dir)
    assert oel("play", "--config", str(config), "--run-dir", str(run_dir), "--games", "2", "--no-reflect").returncode == 0

    from oel.lock import DirectoryLock

    with DirectoryLock(run_dir / "consolidate.lock", "test"):
        held = oel("consolidate", "--run-dir", str(run_dir))
    assert held.returncode == 1 and "locked by pid" in held.stderr

    first = oel("consolidate", "--run-dir", str(run_dir))
    assert first.returncode == 0, first.stderr[-2000:]
    [manifest] = json.loads(oel("checkpoints", "list", "--json", "--run-dir", str(run_dir)).stdout)
    assert manifest["version"] == "v1" and len(manifest["knowledge_ids"]) == 2
    assert json.loads(oel("checkpoints", "show", "v1", "--json", "--run-dir", str(run_dir)).stdout) == manifest

    again = oel("consolidate", "--run-dir", str(run_dir))
    assert again.returncode == 0
    assert len(json.loads(oel("checkpoints", "list", "--json", "--run-dir", str(run_dir)).stdout)) == 1

    assert oel("checkpoints", "promote", "v1", "--run-dir", str(run_dir)).returncode == 0
    active = json.loads(oel("memory", "list", "--json", "--run-dir", str(run_dir)).stdout)
    assert active == []
    rolled = oel("checkpoints", "rollback", "--run-dir", str(run_dir))
    assert rolled.returncode == 0 and "base model" in rolled.stdout
    assert len(json.loads(oel("memory", "list", "--json", "--run-dir", str(run_dir)).stdout)) == 2
    nothing = oel("checkpoints", "rollback", "--run-dir", str(run_dir))
    assert nothing.returncode == 1 and "nothing to roll back" in nothing.stderr


def test_schedule_survives_a_failed_run(tmp_path, tiny_model_dir):
    config, run_dir = make_run(tmp_path, tiny_model_dir)
    oel("play", "--config", str(config), "--run-dir", str(run_dir), "--games", "1", "--no-reflect")
    (run_dir / "games.json").write_text("{not json")  # every run now fails: the run's games are unreadable
    done = oel("schedule", "--every", "1s", "--max-runs", "2", "--run-dir", str(run_dir), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("failed") == 2  # both attempts ran: the first failure did not stop it
    bad = oel("schedule", "--cron", "not a cron", "--run-dir", str(run_dir))
    assert bad.returncode == 1 and "cron" in bad.stderr


def test_accelerate_launch_single_cpu_process(tmp_path, tiny_model_dir):
    config, run_dir = make_run(tmp_path, tiny_model_dir)
    oel("play", "--config", str(config), "--run-dir", str(run_dir), "--games", "1", "--no-reflect")
    done = subprocess.run([str(BIN / "accelerate"), "launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
                           "--mixed_precision", "no", "--dynamo_backend", "no",
                           "-m", "oel.cli", "consolidate", "--run-dir", str(run_dir)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (run_dir / "checkpoints" / "v1" / "manifest.json").is_file()


@pytest.mark.parametrize("objective", ["choices", "tokens"])
def test_two_processes_train_one_checkpoint(tmp_path, tiny_model_dir, objective):
    """`torchrun` (what `accelerate launch` starts on GPUs) with two CPU processes: both train, DDP over
    gloo; the leader alone writes the checkpoint and prunes; a second call finds nothing new."""
    config, run_dir = make_run(tmp_path, tiny_model_dir)
    with open(config, "a") as f:
        f.write(f'distill_objective = "{objective}"\ndistill_max_new_tokens = 8\n')
    oel("play", "--config", str(config), "--run-dir", str(run_dir), "--games", "1", "--no-reflect")
    launch = [str(BIN / "torchrun"), "--nproc_per_node", "2", "-m", "oel.cli", "consolidate", "--run-dir", str(run_dir)]
    done = subprocess.run(launch, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("consolidating") == 1 and "no new checkpoint" not in done.stdout
    [m] = json.loads(oel("checkpoints", "list", "--json", "--run-dir", str(run_dir)).stdout)
    steps = [row for row in m["training"]["log"] if "loss" in row]
    # Each step took a batch on each process: the 4 prefixes (2 steps x batch 2) are one epoch per step.
    assert [row["epoch"] for row in steps] == [1.0, 2.0]
    if objective == "tokens":
        assert all(0 <= row["completions/valid_fraction"] <= 1 for row in steps)
    items = json.loads(oel("memory", "list", "--status", "all", "--json", "--run-dir", str(run_dir)).stdout)
    if m["status"] == "promoted":
        assert sorted(i["status"] for i in items) == ["consolidated", "consolidated"]
    again = subprocess.run(launch, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(json.loads(oel("checkpoints", "list", "--json", "--run-dir", str(run_dir)).stdout)) == 1


def test_forget_takes_an_item_out_of_the_memory_and_the_weights(tmp_path, tiny_model_dir):
    config, run_dir = make_run(tmp_path, tiny_model_dir)
    run = ["--run-dir", str(run_dir)]
    assert oel("play", "--config", str(config), *run, "--games", "2", "--no-reflect").returncode == 0
    assert oel("consolidate", *run).returncode == 0
    assert oel("checkpoints", "promote", "v1", *run).returncode == 0  # v1 absorbed both seeded items
    assert oel("consolidate", *run).returncode == 0  # nothing active: nothing new
    items = json.loads(oel("memory", "list", "--status", "all", "--json", *run).stdout)
    gone, kept = sorted(items, key=lambda i: i["text"])
    assert {i["status"] for i in items} == {"consolidated"}

    refused = oel("memory", "forget", gone["id"], *run)  # not a terminal, no --yes: nothing happens
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert json.loads(oel("memory", "list", "--status", "all", "--json", *run).stdout) == items

    done = oel("memory", "forget", gone["id"], "--yes", "--reason", "private", *run)
    assert done.returncode == 0, done.stderr[-2000:]
    [v1] = json.loads(oel("checkpoints", "list", "--json", *run).stdout)
    assert v1["status"] == "tainted" and v1["tainted"]["reason"] == "private" and v1["tainted"]["items"] == [gone["id"]]
    assert "base model" in done.stdout  # the policy before v1 is in force again
    [ledger] = lines(run_dir / "forgotten.jsonl")  # a resumed round never reflects on its episode again
    assert ledger["id"] == gone["id"] and ledger["sources"] == ["seed"] and ledger["reason"] == "private"
    assert gone["text"] not in (run_dir / "forgotten.jsonl").read_text()  # the ledger keeps no text
    after = json.loads(oel("memory", "list", "--status", "all", "--json", *run).stdout)
    assert [(i["id"], i["status"]) for i in after] == [(kept["id"], "active")]  # the other item is given back
    exported = tmp_path / "export.jsonl"
    assert oel("memory", "export", str(exported), *run).returncode == 0
    assert gone["id"] not in exported.read_text() and gone["text"] not in exported.read_text()
    promote = oel("checkpoints", "promote", "v1", *run)
    assert promote.returncode == 1 and "tainted" in promote.stderr

    again = oel("consolidate", *run)  # consolidates the remaining item; the new checkpoint replaces v1
    assert again.returncode == 0, again.stderr[-2000:]
    v2 = json.loads(oel("checkpoints", "show", "v2", "--json", *run).stdout)
    assert v2["replaces"] == ["v1"] and v2["knowledge_ids"] == [kept["id"]] and v2["parent"] is None
    unknown = oel("memory", "forget", "k-nothing", "--yes", *run)
    assert unknown.returncode == 1 and len(unknown.stderr.strip().splitlines()) == 1
