"""bench/rollout.py's multi-process path: the games are played over several processes, each with its own model,
and a process that fails is an error, never a hang (the others wait for it at a barrier)."""

import math

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
