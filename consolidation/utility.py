"""Utility: how much one memory item, in the teacher's prompt, moves the policy toward what worked.

For an item of family F, take logged prefixes of F's episodes other than the item's own source episode
(`sample_prefixes`), half where the logged action worked and half where it did not:
- worked (+1): the actions of won episodes that were on their loop-free path (`memory.procedures`), and
  any action that raised the score;
- did not (-1): the command that lost a lost episode, and the actions of any episode that the agent later
  undid (walks there and back, examines that changed nothing: it got nowhere with them).

On each, the teacher (the policy in force) scores the logged action twice: with the prefix alone, and
with the item in the knowledge slot (before or after the situation, `OELConfig.knowledge_position`), exactly
as the consolidation teacher sees it (`agent.prompts.with_knowledge`, which composes it as the consolidation
teacher's `agent.prompts.with_context` does). The item's utility is the mean of

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
commands, on the policy's turn cache, so a prompt encodes only what it does not share with the one scored
before it. Measured cost: docs/BENCHMARKS.md.
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


def teacher_prompt(policy, turn: Turn, knowledge: list[str], position: str = "before") -> str:
    """The prefix rendered as the teacher sees it, with `knowledge` where `position` puts it."""
    messages = turn["prefix"]
    if knowledge:
        messages = with_knowledge(messages, knowledge, position)
    return policy.render(messages)


def prompt_logprob(policy, prompt: str, turn: Turn, mode: str, temperature: float) -> float:
    """log p(the logged action | the rendered prompt)."""
    if mode == "choose":
        candidates = turn["admissible"]
        scores = policy.score_candidates(prompt, candidates)
        return float(torch.log_softmax(scores / temperature, dim=0)[candidates.index(turn["action"])])
    return float(policy.score_candidates(prompt, [turn["output"]])[0])


def action_logprob(policy, turn: Turn, knowledge: list[str], mode: str, temperature: float,
                   position: str = "before") -> float:
    """log p(the logged action | prefix, with `knowledge` in the teacher's slot)."""
    return prompt_logprob(policy, teacher_prompt(policy, turn, knowledge, position), turn, mode, temperature)


def measure_utilities(policy, memory, episodes: list[LoggedEpisode], cfg: OELConfig, desc: str = "utility",
                      only_new: bool = False) -> int:
    """Measure every active item of the families in `episodes` and store its utility; returns how many.

    The loop re-measures every active item after each round's play, on a sample of all the episodes
    given, so a utility follows the policy in force and the newest experience. `only_new` measures only
    items without a utility yet (`oel consolidate`, which may run often with nothing new).
    """
    if cfg.utility_prefixes == 0:
        return 0
    prefixes: dict[str, list[tuple[Turn, int, str]]] = {}  # family -> its sampled (turn, sign, source episode)
    measured: dict[str, str] = {}  # item id -> its family
    prompts: dict[tuple[str, int, str | None], str] = {}  # (family, prefix, item id or None) -> teacher prompt
    for env in sorted({e["env"] for e in episodes}):
        items = [i for i in memory.list("active", env=env) if not only_new or i.utility is None]
        chosen = [(turn, sign, source) for turn, sign, source in
                  sample_prefixes([e for e in episodes if e["env"] == env], cfg.utility_prefixes, cfg.seed)
                  if cfg.action_mode != "choose" or turn["action"] in turn["admissible"]]
        if not items or not chosen:
            continue
        prefixes[env] = chosen
        for p, (turn, _, _) in enumerate(chosen):
            prompts[env, p, None] = teacher_prompt(policy, turn, [])
        for item in items:
            measured[item.id] = env
            for p, (turn, _, source) in enumerate(chosen):
                if source != item.source:  # never its own episode: a procedure would be scored on the actions it copies
                    prompts[env, p, item.id] = teacher_prompt(policy, turn, [item.text], cfg.knowledge_position)
    # Scored in the order of their text, so each prompt mostly extends the one before it and the policy's turn
    # cache encodes only what differs (as the consolidation teacher's sorted pass does). With the knowledge
    # after the situation (`knowledge_position`), every item measured on a prefix shares that prefix's encoding.
    logp = {key: prompt_logprob(policy, prompts[key], prefixes[key[0]][key[1]][0], cfg.action_mode, cfg.temperature)
            for key in progress(sorted(prompts, key=prompts.__getitem__), desc=desc, unit="prompt")}
    utilities = {}
    for item_id, env in measured.items():
        deltas = [sign * (logp[env, p, item_id] - logp[env, p, None])
                  for p, (_, sign, _) in enumerate(prefixes[env]) if (env, p, item_id) in logp]
        if deltas:
            utilities[item_id] = (round(sum(deltas) / len(deltas), 4), len(deltas))
    memory.set_utility(utilities)
    return len(utilities)
