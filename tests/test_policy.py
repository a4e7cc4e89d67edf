import pytest
import torch

from agent.policy import Policy
from oel.errors import OELError
from tests.conftest import naive_scores


def test_shared_prefix_scoring_matches_naive(tiny_policy):
    prompt = tiny_policy.render([{"role": "user", "content": "You see a coin. Valid commands: take coin, go east"}])
    candidates = ["take coin", "go east", "examine the very shiny golden coin"]
    fast = tiny_policy.score_candidates(prompt, candidates)
    assert torch.allclose(fast, naive_scores(tiny_policy, prompt, candidates), atol=1e-4)


def test_choose_greedy_takes_argmax_and_sampling_is_seeded(tiny_policy):
    prompt = tiny_policy.render([{"role": "user", "content": "pick"}])
    candidates = ["a", "b c", "d e f"]
    choice = tiny_policy.choose(prompt, candidates, greedy=True)
    assert choice.index == max(range(3), key=lambda i: choice.logprobs[i])
    picks = [tiny_policy.choose(prompt, candidates, generator=torch.Generator().manual_seed(7)).command for _ in range(3)]
    assert len(set(picks)) == 1


def test_empty_candidates_is_a_clear_error(tiny_policy):
    with pytest.raises(OELError, match="no admissible commands"):
        tiny_policy.score_candidates("prompt", [])


def test_generate_returns_text_and_token_counts(tiny_policy):
    prompts = [tiny_policy.render([{"role": "user", "content": "hi"}]), tiny_policy.render([{"role": "user", "content": "a much longer prompt here"}])]
    out = tiny_policy.generate(prompts, max_new_tokens=5)
    assert len(out) == 2 and all(isinstance(t, str) and 0 <= n <= 5 for t, n in out)


def test_unknown_model_is_one_clear_error(tmp_path):
    with pytest.raises(OELError, match="unknown model"):
        Policy.load("no-such-org/no-such-model")
    with pytest.raises(OELError, match="no config.json"):
        Policy.load(str(tmp_path))


def test_turn_cache_scores_equal_a_fresh_encoding(tiny_policy):
    """Reusing the previous turn's KV cache changes the cost, never the scores: growing prompts, an
    unrelated prompt (cache dropped), a shorter one (cache cropped) and the same prompt twice."""
    from agent.scoring import candidate_logprobs

    base = tiny_policy.render([{"role": "user", "content": "Objective: find the coin.\nNow: a room."}])
    longer = base.replace("a room.", "a room.\n> go east\nA hall with a door.")
    prompts = [base, longer, longer + " More.", "Something else entirely.", base, base]
    cands = ["go east", "take coin", "open door to the north"]
    tiny_policy.reset_cache()
    before = dict(tiny_policy.prompt_tokens)
    try:
        for prompt in prompts:
            fresh = candidate_logprobs(tiny_policy.model, tiny_policy.tokenizer, prompt, cands, tiny_policy.end_ids)
            assert torch.allclose(tiny_policy.score_candidates(prompt, cands), fresh, atol=1e-5)
    finally:
        tiny_policy.reset_cache()
    assert tiny_policy.prompt_tokens["reused"] - before["reused"] > 0


def test_frozen_rows_scores_equal_fresh_encodings_in_the_callers_order(tiny_policy, monkeypatch):
    """The frozen teacher's CPU path scores prompts in sorted order through one turn cache: the scores are
    each prompt's own, returned in the order given, and prompts that extend each other reuse encodings."""
    import agent.scoring
    from agent.scoring import TurnCache, candidate_logprobs, frozen_rows_logprobs

    reused = []

    class CountingCache(TurnCache):
        def score(self, *args):
            out = super().score(*args)
            reused.append(self.last_reused)
            return out

    monkeypatch.setattr(agent.scoring, "TurnCache", CountingCache)

    base = tiny_policy.render([{"role": "user", "content": "Objective: find the coin.\nNow: a room."}])
    prompts = [base.replace("a room.", "a room.\n> go east\nA hall."), "Another game entirely.", base,
               base.replace("a room.", "a room.\n> go east\nA hall.\n> open door\nIt opens.")]
    cands = [["go east", "take coin"], ["look"], ["open door", "go north", "take coin"], ["go west", "look"]]
    ticks = []
    bar = type("Bar", (), {"update": lambda self, n: ticks.append(n)})()
    scores = frozen_rows_logprobs(tiny_policy.model, tiny_policy.tokenizer, prompts, cands, tiny_policy.end_ids, bar)
    assert sum(ticks) == len(prompts) and not any(s.requires_grad for s in scores)
    assert sorted(reused)[-2] > 0  # the two longer prompts each extend the one sorted before them
    for prompt, c, got in zip(prompts, cands, scores):
        fresh = candidate_logprobs(tiny_policy.model, tiny_policy.tokenizer, prompt, c, tiny_policy.end_ids)
        assert got.shape == (len(c),) and torch.allclose(got, fresh, atol=1e-5)


def test_repeated_prompts_are_encoded_once_and_write_what_each_would_alone(tiny_policy, monkeypatch):
    """Reflection samples one prompt several times: its cache is made once per distinct prompt and copied,
    and every row still writes what it writes alone (greedy, so the answers are comparable)."""
    one = tiny_policy.render([{"role": "user", "content": "What did you learn from this game?"}])
    two = tiny_policy.render([{"role": "user", "content": "A shorter one."}])
    prompts = [one, one, two, one]
    encoded = []
    prefill = tiny_policy.prefill_once
    monkeypatch.setattr(tiny_policy, "prefill_once", lambda p, b: encoded.append(len(set(p))) or prefill(p, b))
    together = tiny_policy.generate(prompts, max_new_tokens=6, greedy=True)
    assert encoded == [2]
    assert together == [tiny_policy.generate([p], max_new_tokens=6, greedy=True)[0] for p in prompts]
    assert encoded == [2]  # a call without repeats encodes as before
