"""Many workers, one consolidation: three `oel play --worker` processes on one run directory and a real
Chroma server (`chroma run`), then one `oel consolidate` that reads every worker's log."""

import json
import subprocess
import sys

import pytest

from consolidation.dataset import load_trajectories
from memory.store import Memory

pytestmark = pytest.mark.slow  # real model, subprocesses or servers: `make test-fast` leaves it out


def oel(*args, cwd):
    return subprocess.run([sys.executable, "-m", "oel", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=900)


def test_three_workers_feed_one_consolidation(chroma_server, tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    config = tmp_path / "run.toml"
    config.write_text(f'model = "{tiny_model_dir}"\nchallenges = ["tw-coin_collector:1"]\n'
                      f'memory_url = "{chroma_server}"\nvalidation_games = 1\ntest_games = 1\nmax_steps = 3\n'
                      "distill_steps = 1\ndistill_batch_size = 2\nutility_prefixes = 0\nreflection_samples = 1\n")
    workers = [subprocess.Popen([sys.executable, "-m", "oel", "play", "--run-dir", str(run), "--config", str(config),
                                 "--worker", f"w{w}", "--challenge", "tw-coin_collector:1", "--seed", str(100 + 10 * w),
                                 "--games", "2"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True) for w in range(3)]
    for w in workers:
        _, err = w.communicate(timeout=900)
        assert w.returncode == 0, err[-1500:]

    logs = sorted((run / "trajectories").glob("*.jsonl"))
    assert [p.name for p in logs] == ["round_1.w0.jsonl", "round_1.w1.jsonl", "round_1.w2.jsonl"]
    episodes = load_trajectories(logs)
    ids = [e["id"] for e in episodes]
    assert len(ids) == 6 == len(set(ids)) and {e["round"] for e in episodes} == {1}
    assert len({e["game"] for e in episodes}) == 6  # each worker played its own games

    memory = Memory(url=chroma_server)
    sources = {i.source for i in memory.list("all")}
    assert sources == set(ids)  # every episode's reflection reached the shared memory, and nothing else did
    memory.add("Take the coin as soon as you see it.", env="tw-coin_collector", source="hand", outcome="won",
               round=1, created_by="test")  # knowledge the teacher sees, whatever the tiny model wrote

    done = oel("consolidate", "--run-dir", run, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-1500:]
    [manifest] = [json.loads(p.read_text()) for p in (run / "checkpoints").glob("*/manifest.json")]
    # One record per logged turn of every worker's episodes: none lost, none counted twice.
    assert manifest["dataset"]["prefixes"] == sum(len(e["turns"]) for e in episodes)
    assert manifest["round"] == 1
    again = oel("consolidate", "--run-dir", run, cwd=tmp_path)  # the same logs are never distilled twice
    assert again.returncode == 0 and "no new checkpoint" in again.stdout
    assert len(list((run / "checkpoints").glob("*/manifest.json"))) == 1


def test_a_worker_name_is_checked_before_anything_runs(tmp_path):
    bad = oel("play", "--run-dir", tmp_path / "run", "--worker", "../escape", "--challenge", "tw-coin_collector:1",
              cwd=tmp_path)
    assert bad.returncode != 0 and bad.stderr.strip().count("\n") == 0 and "--worker must be" in bad.stderr
    same = oel("play", "--run-dir", tmp_path / "run", "--worker", "w0", cwd=tmp_path)
    assert same.returncode != 0 and "a worker plays games of its own" in same.stderr
    assert not (tmp_path / "run" / "config.json").exists()
