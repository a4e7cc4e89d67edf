"""bench/rollout.py's multi-process path: the games are played over several processes, each with its own model,
and a process that fails is an error, never a hang (the others wait for it at a barrier)."""

import math
import os
import signal

import pytest

from bench.rollout import processes_steps_per_s
from oel.config import OELConfig
from oel.errors import OELError

pytestmark = pytest.mark.slow  # spawned interpreters, each loading torch and a model


def test_games_are_played_over_processes(tiny_model_dir, coin_game):
    games = [(coin_game, "tw-coin_collector")] * 3  # 2 processes: a block of 2 games (batched) and one of 1
    rate = processes_steps_per_s(games, OELConfig(max_steps=3), 2, "cpu", "float32", model=str(tiny_model_dir))
    assert math.isfinite(rate) and rate > 0


def test_a_process_that_fails_is_an_error_not_a_hang(coin_game, tmp_path):
    with pytest.raises(OELError, match="multi-process path failed"):
        processes_steps_per_s([(coin_game, "tw-coin_collector")] * 2, OELConfig(max_steps=2), 2, "cpu", "float32",
                              model=str(tmp_path / "no-such-model"))


def killed_before_the_start(games, cfg, seed_base, model, device, dtype, threads, ready, results):
    os.kill(os.getpid(), signal.SIGKILL)  # no Python cleanup runs: the barrier is never aborted from here


def killed_after_the_start(games, cfg, seed_base, model, device, dtype, threads, ready, results):
    ready.wait()
    os.kill(os.getpid(), signal.SIGKILL)  # no result is ever posted


@pytest.mark.parametrize("share", [killed_before_the_start, killed_after_the_start])
def test_a_process_killed_by_a_signal_is_an_error_not_a_hang(coin_game, share):
    with pytest.raises(OELError, match="multi-process path failed"):
        processes_steps_per_s([(coin_game, "tw-coin_collector")] * 2, OELConfig(max_steps=2), 2, "cpu", "float32",
                              share=share)
