"""Utility of memory items, measured with a real (tiny) policy on logged prefixes, stored in real Chroma."""

import pytest

from consolidation.utility import action_logprob, labelled_turns, measure_utilities, sample_prefixes
from memory.store import Memory
from oel.config import OELConfig

ENV = "tw-coin_collector"


def test_labels_the_path_that_won_and_the_moves_that_went_nowhere(episode, WANDERING):
    won = episode(WANDERING)
    signs = {won["turns"].index(turn): sign for turn, sign in labelled_turns(won)}
    # go west, go north, take coin reached the coin; the walk back, the examine and the first trip north
    # (undone by going south again) went nowhere.
    assert signs == {2: 1, 6: 1, 7: 1, 0: -1, 1: -1, 3: -1, 4: -1, 5: -1}
    fatal = WANDERING[:4] + [("eat coin", "You eat the coin.\n*** You lost! ***")]
    lost = episode(fatal, won=False)
    assert labelled_turns(lost)[-1] == (lost["turns"][-1], -1)  # the command that lost
    assert all(sign == -1 for _, sign in labelled_turns(lost))  # a lost episode's path did not win


def test_prefixes_are_balanced_and_seeded(episode, WANDERING):
    episodes = [{**episode(WANDERING), "id": f"e{i}"} for i in range(3)]
    chosen = sample_prefixes(episodes, 6, seed=0)
    assert [sign for _, sign, _ in chosen] == [1, 1, 1, -1, -1, -1]
    assert chosen == sample_prefixes(episodes, 6, seed=0)
    assert len(sample_prefixes(episodes[:1], 100, seed=0)) == 8  # fewer than asked: all of them


def test_utility_is_the_signed_mean_change_in_the_logged_actions_log_probability(tmp_path, tiny_policy, episode,
                                                                                  WANDERING):
    cfg = OELConfig(model="tiny", utility_prefixes=6)
    episodes = [{**episode(WANDERING), "id": "e1"}, {**episode(WANDERING[:4], won=False), "id": "e2"}]
    with Memory(tmp_path / "m") as memory:
        item, _ = memory.add("Take the coin as soon as you see it.", env=ENV, source="e1", outcome="won", round=1,
                             created_by="t")
        other, _ = memory.add("Explore every room.", env="tw-simple", source="x", outcome="won", round=1,
                              created_by="t")
        assert measure_utilities(tiny_policy, memory, episodes, cfg) == 1  # only the families that were played
        stored = memory.get(item)
        assert memory.get(other).utility is None
        expected = []
        for turn, sign, source in sample_prefixes(episodes, 6, cfg.seed):
            if source == "e1":
                continue  # never measured on its own episode
            with_item = action_logprob(tiny_policy, turn, [stored.text], "choose", cfg.temperature)
            expected.append(sign * (with_item - action_logprob(tiny_policy, turn, [], "choose", cfg.temperature)))
        assert stored.utility_n == len(expected) > 0
        assert stored.utility == pytest.approx(sum(expected) / len(expected), abs=1e-3)
        # An item whose only family episode is its own source has nothing to be measured on.
        lonely, _ = memory.add("Go north twice.", env="tw-simple", source="s1", outcome="won", round=1, created_by="t")
        measure_utilities(tiny_policy, memory, [{**episode(WANDERING), "id": "s1", "env": "tw-simple"}], cfg)
        assert memory.get(lonely).utility is None


def test_no_measurement_when_turned_off(tmp_path, tiny_policy, episode, WANDERING):
    with Memory(tmp_path / "m") as memory:
        item, _ = memory.add("Take the coin.", env=ENV, source="e0", outcome="won", round=1, created_by="t")
        assert measure_utilities(tiny_policy, memory, [episode(WANDERING)], OELConfig(utility_prefixes=0)) == 0
        assert memory.get(item).utility is None
