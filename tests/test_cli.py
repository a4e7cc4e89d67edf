"""The oel command line: bad input gives one line on stderr and a non-zero exit code."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

OEL = [str(Path(sys.executable).parent / "oel")]


def run(*args, cwd=None):
    return subprocess.run(OEL + list(args), capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("args,message", [
    (["loop", "--model", "/no/such/model"], "unknown model"),
    (["loop", "--mode", "dance"], "action_mode"),
    (["loop", "--config", "/no/such.toml"], "config file not found"),
    (["memory", "list"], "no memory"),
    (["report"], "no rounds recorded"),
])
@pytest.mark.slow
def test_errors_are_one_line(tmp_path, args, message):
    done = run(*args, "--run-dir", str(tmp_path / "run"))
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in done.stderr


@pytest.mark.parametrize("args,message", [
    (["loop", "--rounds", "two"], "Invalid value for '--rounds'"),
    (["loop", "--bogus"], "No such option: --bogus"),
    (["memory", "show"], "Missing argument"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (["memory", "search", "coins", "-k", "abc"], "Invalid value for '-k'"),
])
def test_usage_errors_are_one_line_too(tmp_path, args, message):
    done = run(*args)
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("oel: error: ") and message in line and "--help`" in line


@pytest.mark.slow
def test_bad_values_for_memory_and_schedule_commands(tmp_path):
    from memory.store import Memory

    with Memory(tmp_path / "run" / "memory") as memory:
        memory.add("Take the coin.", env="tw-coin_collector", source="s", outcome="won", round=1, created_by="t")
    from oel.config import OELConfig

    (tmp_path / "run" / "config.json").write_text(json.dumps(OELConfig().to_dict()))
    run_dir = ["--run-dir", str(tmp_path / "run")]
    for args, message in ((["memory", "search", "coin", "-k", "0"], "k must be a positive number"),
                          (["memory", "export", str(tmp_path)], "is a directory; give a file name"),
                          (["schedule", "--every", "99999999999d"], "longer than a year")):
        done = run(*args, *run_dir)
        assert done.returncode == 1 and message in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not list(tmp_path.glob(".*.tmp"))  # the failed export left nothing behind


@pytest.mark.slow
def test_settings_that_fail_are_not_written_into_a_new_run(tmp_path):
    run_dir = tmp_path / "run"
    for args in (["--memory-url", "http://127.0.0.1:9"], ["--model", "/no/such/model"]):
        done = run("loop", *args, "--run-dir", str(run_dir))
        assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
        assert not (run_dir / "config.json").exists()  # a retry with the right value is not refused


def test_broken_config_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("rounds = [\n")
    done = run("loop", "--config", str(bad), "--run-dir", str(tmp_path / "run"))
    assert done.returncode == 1 and "not valid TOML" in done.stderr


def test_read_commands_never_answer_an_empty_success_for_a_run_that_does_not_exist(tmp_path):
    for args in (["checkpoints", "list", "--json"], ["checkpoints", "show", "v1"], ["report"],
                 ["memory", "list"]):
        done = run(*args, "--run-dir", str(tmp_path / "nowhere"))
        assert done.returncode == 1 and done.stdout == "", args
        assert len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)


def test_commands_find_the_last_run_without_run_dir(tmp_path):
    from memory.store import Memory
    from oel.config import OELConfig

    run_dir = tmp_path / "runs" / "demo"
    with Memory(run_dir / "memory") as memory:
        memory.add("Take the coin.", env="tw-coin_collector", source="s", outcome="won", round=1, created_by="t")
    (run_dir / "config.json").write_text(json.dumps(OELConfig().to_dict()))
    Path(os.environ["OEL_LAST_RUN"]).write_text(str(run_dir))  # what `oel loop --run-dir runs/demo` records
    items = json.loads(run("memory", "list", "--json", cwd=tmp_path).stdout)
    assert [i["text"] for i in items] == ["Take the coin."]
    assert json.loads(run("checkpoints", "list", "--json", cwd=tmp_path).stdout) == []
