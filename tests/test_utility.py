"""Utility of memory items, measured with a real (tiny) policy on logged prefixes, stored in real Chroma."""

import pytest

from agent.prompts import acting_messages
from consolidation.utility import action_logprob, measure_utilities, sample_prefixes
from memory.store import Memory
from oel.config import OELConfig

ENV = "tw-coin_collector"


def episode(i: int, won: bool) -> dict:
    turns = [{"prefix": acting_messages(f"Objective: find the coin.\nNow: room {i}-{n}.\nValid commands: go east, "
                                        "go west, take coin\nYour command:"),
              "action": "take coin" if n == 2 else "go east", "output": "go east",
              "admissible": ["go east", "go west", "take coin"]} for n in range(3)]
    return {"id": f"e{i}", "env": ENV, "won": won, "turns": turns}


def test_prefixes_are_balanced_between_won_and_lost_and_seeded():
    episodes = [episode(0, True), episode(1, False), episode(2, False)]
    chosen = sample_prefixes(episodes, 4, seed=0)
    assert [sign for _, sign in chosen] == [1, 1, -1, -1]
    assert chosen == sample_prefixes(episodes, 4, seed=0)
    assert len(sample_prefixes([episode(0, True)], 4, seed=0)) == 3  # fewer prefixes than asked: all of them


def test_utility_is_the_signed_mean_change_in_the_logged_actions_log_probability(tmp_path, tiny_policy):
    cfg = OELConfig(model="tiny", utility_prefixes=6)  # every prefix: the flip below is exact
    episodes = [episode(0, True), episode(1, False)]
    with Memory(tmp_path / "m") as memory:
        item, _ = memory.add("Take the coin as soon as you see it.", env=ENV, source="e0", outcome="won", round=1,
                             created_by="t")
        other, _ = memory.add("Explore every room.", env="tw-simple", source="x", outcome="won", round=1,
                              created_by="t")
        assert measure_utilities(tiny_policy, memory, episodes, cfg) == 1  # only the families that were played
        stored = memory.get(item)
        assert memory.get(other).utility is None
        expected = []
        for turn, sign in sample_prefixes(episodes, 6, cfg.seed):
            with_item = action_logprob(tiny_policy, turn, [stored.text], "choose", cfg.temperature)
            expected.append(sign * (with_item - action_logprob(tiny_policy, turn, [], "choose", cfg.temperature)))
        assert stored.utility_n == 6
        assert stored.utility == pytest.approx(sum(expected) / 6, abs=1e-3)
        # The same episodes with the outcomes swapped give the opposite utility.
        flipped = [{**e, "won": not e["won"]} for e in episodes]
        measure_utilities(tiny_policy, memory, flipped, cfg)
        assert memory.get(item).utility == pytest.approx(-stored.utility, abs=2e-3)


def test_no_measurement_when_turned_off(tmp_path, tiny_policy):
    with Memory(tmp_path / "m") as memory:
        item, _ = memory.add("Take the coin.", env=ENV, source="e0", outcome="won", round=1, created_by="t")
        assert measure_utilities(tiny_policy, memory, [episode(0, True)], OELConfig(utility_prefixes=0)) == 0
        assert memory.get(item).utility is None
