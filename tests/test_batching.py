"""Batched concurrent play: batched scores equal one-at-a-time scores; K games share forward passes."""

import json

import torch

from agent.batching import BatchedPolicy
from agent.scoring import batch_candidate_logprobs, naive_candidate_logprobs
from oel.config import OELConfig


def test_batched_scores_match_single_prompt_scores(tiny_policy):
    prompts = [tiny_policy.render([{"role": "user", "content": text}])
               for text in ("short", "a much longer prompt with many more tokens in it, to force left padding", "mid size one")]
    candidates = [["go east", "take coin"], ["look", "open the big wooden chest", "go west"], ["inventory"]]
    with torch.no_grad():
        batched = batch_candidate_logprobs(tiny_policy.model, tiny_policy.tokenizer, prompts, candidates,
                                           tiny_policy.end_ids)
    for prompt, cands, got in zip(prompts, candidates, batched):
        assert torch.allclose(got, naive_candidate_logprobs(tiny_policy.model, tiny_policy.tokenizer, prompt, cands,
                                                            tiny_policy.end_ids), atol=1e-4)


def test_concurrent_choose_calls_share_a_forward_pass(tiny_policy):
    from concurrent.futures import ThreadPoolExecutor

    batched = BatchedPolicy(tiny_policy, max_batch=4, wait_s=0.5)
    prompts = [tiny_policy.render([{"role": "user", "content": f"game {i}"}]) for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        choices = list(pool.map(lambda p: batched.choose(p, ["go east", "look"], greedy=True), prompts))
    batched.close()
    assert max(batched.batch_sizes) > 1 and sum(batched.batch_sizes) == 4
    for prompt, choice in zip(prompts, choices):  # each game got its own result
        assert choice.command == tiny_policy.choose(prompt, ["go east", "look"], greedy=True).command


def test_a_batch_that_holds_every_game_in_play_does_not_wait(tiny_policy):
    """Two games in play, room for 16 in a batch, and a 30 s gathering window: once both games' calls are in,
    the batch runs at once (it used to wait out the window for calls that could not come)."""
    import threading
    import time

    batched = BatchedPolicy(tiny_policy, max_batch=16, wait_s=30)
    both_in = threading.Barrier(2)

    def game(i):
        with batched.playing():
            both_in.wait()
            return batched.choose(tiny_policy.render([{"role": "user", "content": f"game {i}"}]), ["look", "go east"])

    start = time.monotonic()
    threads = [threading.Thread(target=game, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    batched.close()
    assert time.monotonic() - start < 20 and batched.batch_sizes == [2]


def test_concurrent_games_are_each_played_and_logged_once(tiny_policy, tmp_path):
    from agent.games import GameSpec, make_game
    from agent.rollout import play_games

    games = [(make_game(GameSpec("tw-coin_collector", 1, 424242 + i)), "tw-coin_collector") for i in range(4)]
    log = tmp_path / "play.jsonl"
    records = play_games(tiny_policy, games, OELConfig(model="tiny", max_steps=3), 0, seed_base=0, log_path=log,
                         concurrency=4)
    assert [r["game"] for r in records] == [str(g) for g, _ in games]  # returned in the games' order
    assert sorted(json.loads(line)["game"] for line in log.read_text().splitlines()) == sorted(str(g) for g, _ in games)
    assert all(1 <= r["steps"] <= 3 for r in records)


def test_concurrent_games_reflect_into_one_memory_after_each_is_logged(tiny_policy, tmp_path):
    from agent.games import GameSpec, make_game
    from agent.rollout import play_games
    from memory.store import Memory

    games = [(make_game(GameSpec("tw-coin_collector", 1, 424242 + i)), "tw-coin_collector") for i in range(3)]
    log, stored = tmp_path / "play.jsonl", []
    with Memory(tmp_path / "m") as memory:
        class OneLesson:  # the two steps of a memory.reflection.Reflector, with a fixed lesson
            policy = None

            def lessons(self, episode):
                return [f"Lesson from {episode['id']} about coins and exits."]

            def store(self, episode, lessons):
                logged = [json.loads(line)["id"] for line in log.read_text().splitlines()]
                assert episode["id"] in logged  # the memory never names an episode the log lacks
                ids = [memory.add(text, env=episode["env"], source=episode["id"], outcome=episode["outcome"], round=0,
                                  created_by="test", merge_distance=0.0)[0] for text in lessons]
                stored.extend(ids)
                return ids

        records = play_games(tiny_policy, games, OELConfig(model="tiny", max_steps=2), 0, seed_base=0, log_path=log,
                             reflect=OneLesson(), concurrency=3)
        assert len(stored) == 3 and memory.count("active") == 3
        assert sorted(i.source for i in memory.list("active")) == sorted(r["id"] for r in records)


def test_concurrent_generate_calls_batch_and_match_one_call_at_a_time(tiny_policy):
    """Generate-mode acting and reflection under --concurrency: calls with the same settings become one
    batched generate; greedy decoding gives each caller what a call of its own gives."""
    from concurrent.futures import ThreadPoolExecutor

    batched = BatchedPolicy(tiny_policy, max_batch=4, wait_s=0.5)
    prompts = [tiny_policy.render([{"role": "user", "content": text}])
               for text in ("go", "you are in a cellar with an exit to the west", "take the coin", "look around")]
    with ThreadPoolExecutor(4) as pool:  # each caller sends two prompts, as a reflection sends its samples
        got = list(pool.map(lambda p: batched.generate([p, p], 8, greedy=True), prompts))
    other = batched.generate([prompts[0]], 5, greedy=True)  # other settings: a batch of its own
    batched.close()
    assert batched.batch_sizes[0] > 1 and sum(batched.batch_sizes) == 5
    for prompt, pair in zip(prompts, got):
        [alone] = tiny_policy.generate([prompt], 8, greedy=True)
        assert pair == [alone, alone]
    assert other == tiny_policy.generate([prompts[0]], 5, greedy=True)


def test_concurrent_games_reflect_in_batched_calls(tiny_policy, tmp_path, monkeypatch):
    import agent.batching
    from agent.games import GameSpec, make_game
    from agent.rollout import play_games
    from memory.reflection import Reflector
    from memory.store import Memory

    class Counting:  # the policy, counting the prompts of every generate call it serves
        def __init__(self, policy):
            self.policy, self.calls = policy, []

        def __getattr__(self, name):
            return getattr(self.policy, name)

        def generate(self, prompts, *args, **kwargs):
            self.calls.append(len(prompts))
            # The tiny model's own text can be empty (no lesson) or repeat (a merge): each answer gets a
            # distinct lesson, so that every episode must leave an item.
            return [(f"Lesson {sum(self.calls) - len(prompts) + j}: take the coin. {text}", n)
                    for j, (text, n) in enumerate(self.policy.generate(prompts, *args, **kwargs))]

    monkeypatch.setattr(agent.batching, "GATHER_S", 0.5)  # a loaded machine spreads the games' calls out
    writer = Counting(tiny_policy)
    games = [(make_game(GameSpec("tw-coin_collector", 1, 424242 + i)), "tw-coin_collector") for i in range(4)]
    cfg = OELConfig(model="tiny", max_steps=1, reflection_samples=2, reflection_max_new_tokens=4)
    with Memory(tmp_path / "m") as memory:
        records = play_games(writer, games, cfg, 1, seed_base=0, reflect=Reflector(writer, memory, cfg, "tiny"),
                             concurrency=4)
        sources = {episode for item in memory.list("all") for episode in item.sources}
    assert sum(writer.calls) == 4 * 2  # every game reflected once, with its 2 samples
    assert max(writer.calls) > 2  # games that finished together shared a generate call
    assert sources == {r["id"] for r in records}  # every episode's lessons stored (equal lessons merge)


def test_trunk_scores_match_one_pass_per_prompt_with_their_gradients(tiny_policy):
    """Prompts that share a start (turns of one episode), one that shares nothing, and one that is a prefix of
    the longest: one trunk pass gives each prompt's scores and gradients as a pass of its own does."""
    from agent.scoring import candidate_logprobs, trunk_candidate_logprobs

    transcript = "Objective: find the coin.\n> go east\nA kitchen.\n> open door\nThe door opens.\n> go north\nA hall."
    prompts = [tiny_policy.render([{"role": "user", "content": text}]) for text in (
        transcript[:40] + "\nValid commands: go east, look",
        transcript + "\nValid commands: go south, take coin, look",
        "something else entirely",
        transcript[:70] + "\nValid commands: open door")]
    prompts.append(prompts[1][:len(prompts[1]) // 2])  # a strict prefix of the trunk
    candidates = [["go east", "look"], ["go south", "take coin", "look"], ["inventory"], ["open door", "go west"],
                  ["wait", "go east"]]
    model, tok, end = tiny_policy.model, tiny_policy.tokenizer, tiny_policy.end_ids
    weight = model.get_output_embeddings().weight

    def grad_of(scores):
        model.zero_grad()
        sum((s * torch.arange(1, len(s) + 1)).sum() for s in scores).backward()
        return weight.grad.clone()

    together = trunk_candidate_logprobs(model, tok, prompts, candidates, end)
    apart = [candidate_logprobs(model, tok, p, c, end) for p, c in zip(prompts, candidates)]
    for got, want in zip(together, apart):
        assert torch.allclose(got, want, atol=1e-4)
    assert torch.allclose(grad_of(together), grad_of(apart), atol=1e-4)
