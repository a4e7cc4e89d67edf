"""Utility: how much one memory item, in the teacher's prompt, moves the policy toward what worked.

For an item of family F, take logged prefixes of F's episodes other than the item's own source episode
(`sample_prefixes`), half where the logged action worked and half where it did not:
- worked (+1): the actions of won episodes that were on their loop-free path (`memory.procedures`), and
  any action that raised the score;
- did not (-1): the command that lost a lost episode, and the actions of any episode that the agent later
  undid (walks there and back, examines that changed nothing: it got nowhere with them).

On each, the teacher (the policy in force) scores the logged action twice: with the prefix alone, and
with the item in the knowledge slot before the situation, exactly as the consolidation teacher sees it
(`agent.prompts.with_knowledge`, which composes it as the consolidation teacher's `agent.prompts.with_context` does). The item's utility is the mean of

    sign * (log p(action | item, prefix) - log p(action | prefix))

so a useful item raises the probability of the actions that won and lowers that of the ones that lost or
went nowhere.
- choose mode: p is exact over the admissible commands (softmax of the length-normalised scores at the
  acting temperature, as the policy samples);
- generate mode: log p is the mean token log-probability of the logged response.

Why not every action of a won episode: measured on the learning bench's round 1, that first version gave
the procedures, which teach the most (bench/teacher.py), negative utilities: a won episode's wandering
moves are most of its actions, and a procedure makes them less likely. Why not the item's own episode: a
procedure would be scored on the very actions it copies. (docs/RESULTS.md has the measurements.)

Scoring uses the shared-prefix path (`Policy.score_candidates`): one forward pass per prompt for all its
commands. Measured cost: docs/BENCHMARKS.md.
"""

from __future__ import annotations

import random

import torch
from oel.progress import progress

from agent.prompts import with_knowledge
from memory.procedures import loop_free_path
from oel.config import OELConfig
from oel.records import LoggedEpisode, Turn


def labelled_turns(episode: LoggedEpisode) -> list[tuple[Turn, int]]:
    """(turn, +1 or -1) for the turns of an episode that say something (see the module docstring)."""
    turns = episode["turns"]
    if not turns:
        return []
    kept = {n for _, n, _ in loop_free_path(episode, len(turns) - 1)}
    labelled = []
    for n, turn in enumerate(turns):
        if turn.get("reward", 0) > 0 or (episode["won"] and n in kept):
            labelled.append((turn, 1))
        elif (episode.get("outcome") == "lost" and n == len(turns) - 1) or n not in kept:
            labelled.append((turn, -1))
    return labelled


def sample_prefixes(episodes: list[LoggedEpisode], n: int, seed: int) -> list[tuple[Turn, int, str]]:
    """Up to `n` (turn, sign, episode id) from `episodes`, half with each sign where there are enough;
    seeded, so a resumed run measures the same prefixes. Turns with a single valid command say nothing
    and are skipped."""
    rng = random.Random(seed)
    pools = {1: [], -1: []}
    for episode in episodes:
        for turn, sign in labelled_turns(episode):
            if len(turn.get("admissible") or []) > 1:
                pools[sign].append((turn, sign, episode["id"]))
    for pool in pools.values():
        rng.shuffle(pool)
    good = pools[1][: max(n // 2, n - len(pools[-1]))]
    return good + pools[-1][: n - len(good)]


def action_logprob(policy, turn: Turn, knowledge: list[str], mode: str, temperature: float) -> float:
    """log p(the logged action | prefix, with `knowledge` in the teacher's slot)."""
    messages = turn["prefix"]
    if knowledge:
        messages = with_knowledge(messages, knowledge)
    prompt = policy.render(messages)
    if mode == "choose":
        candidates = turn["admissible"]
        scores = policy.score_candidates(prompt, candidates)
        return float(torch.log_softmax(scores / temperature, dim=0)[candidates.index(turn["action"])])
    return float(policy.score_candidates(prompt, [turn["output"]])[0])


def measure_utilities(policy, memory, episodes: list[LoggedEpisode], cfg: OELConfig, desc: str = "utility",
                      only_new: bool = False) -> int:
    """Measure every active item of the families in `episodes` and store its utility; returns how many.

    The loop re-measures every active item after each round's play, on a sample of all the episodes
    given, so a utility follows the policy in force and the newest experience. `only_new` measures only
    items without a utility yet (`oel consolidate`, which may run often with nothing new).
    """
    if cfg.utility_prefixes == 0:
        return 0
    families = sorted({e["env"] for e in episodes})
    jobs = []
    for env in families:
        items = [i for i in memory.list("active", env=env) if not only_new or i.utility is None]
        chosen = [(turn, sign, source) for turn, sign, source in
                  sample_prefixes([e for e in episodes if e["env"] == env], cfg.utility_prefixes, cfg.seed)
                  if cfg.action_mode != "choose" or turn["action"] in turn["admissible"]]
        # Sorted by their messages, the prefixes of one episode come together, and each prompt mostly extends
        # the one before it (the item, where there is one, comes before them all): the policy's turn cache
        # then encodes only what differs (as the consolidation teacher's sorted pass does).
        chosen.sort(key=lambda job: [m["content"] for m in job[0]["prefix"]])
        if items and chosen:
            jobs.append((items, chosen))
    total = sum(len(prefixes) * (len(items) + 1) for items, prefixes in jobs)
    bar = progress(total=total, desc=desc, unit="prompt")
    measured = {}
    for items, prefixes in jobs:
        def logp(turn, knowledge):
            bar.update(1)
            return action_logprob(policy, turn, knowledge, cfg.action_mode, cfg.temperature)

        base = [logp(turn, []) for turn, _, _ in prefixes]
        for item in items:
            # Never on the item's own episode: a procedure would be scored on the actions it copies.
            deltas = [sign * (logp(turn, [item.text]) - b) for (turn, sign, source), b in zip(prefixes, base)
                      if source != item.source]
            bar.update(sum(source == item.source for _, _, source in prefixes))
            if deltas:
                measured[item.id] = (round(sum(deltas) / len(deltas), 4), len(deltas))
    bar.close()
    memory.set_utility(measured)
    return len(measured)
