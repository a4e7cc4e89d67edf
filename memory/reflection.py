"""Reflection: turn one logged episode into knowledge items of both kinds.

- **insights**: the acting policy itself writes lessons. Its answer is prefilled with the marker and the
  start of a rule (`PREFILL`), so even a small model starts in the right format. The parser keeps only
  clean marker lines: malformed output is dropped, never fatal. The model writes `reflection_samples`
  answers in one batched call; the lessons that pass the grounding check (`memory.grounding`) are stored,
  up to `max_items_per_episode`. If none passes, the first lesson is stored quarantined, with the reason,
  so a reflection that named nothing real is kept and counted. (With the 135M model about half of the
  sampled lessons pass: docs/RESULTS.md.)
- **procedure**: the episode's own path to its gains, taken from the log (`memory.procedures`).

Items are untrusted game-derived text: escape sequences, control characters and special tokens are
stripped and the length is capped (`oel.text.sanitize`).
"""

from __future__ import annotations

import copy
import re
import threading
import zlib
from pathlib import Path

from memory.grounding import grounding_problem, is_degenerate
from memory.procedures import extract_procedure
from memory.prompts import MARKER, PREFILL, REFLECTION_SYSTEM, REFLECTION_USER
from oel.records import LoggedEpisode, Turn
from oel.text import sanitize

MAX_TURNS_SHOWN = 15
MIN_ITEM_CHARS = 12


def reflection_messages(env: str, objective: str, turns: list[Turn], outcome: str, reason: str) -> list[dict]:
    shown = turns[-MAX_TURNS_SHOWN:]
    lines = []
    for t in shown:
        gain = f" (score +{t['reward']})" if t.get("reward", 0) > 0 else ""
        lines.append(f"> {t['action']}{gain} -> {sanitize(t['feedback'], 100)}")
    scoring = [t["action"] for t in turns if t.get("reward", 0) > 0]
    # Small models need the signal spelled out: which commands made progress (DESIGN.md §2).
    score_hint = (f"Commands that raised the score: {', '.join(scoring)}." if scoring
                  else "No command raised the score.")
    user = REFLECTION_USER.format(env=env, objective=sanitize(objective, 400), turns="\n".join(lines),
                                  outcome=outcome, reason=reason, score_hint=score_hint, marker=MARKER)
    return [{"role": "system", "content": REFLECTION_SYSTEM}, {"role": "user", "content": user}]


def parse_items(text: str, max_items: int = 2, max_chars: int = 300, prefill: str = "") -> list[str]:
    """Every 'KNOWLEDGE: ...' line, cleaned. Junk, too-short or repeated lines are dropped.

    `text` starts with `prefill` when the answer was prefilled: the length and letter checks then judge
    the model's own words, not the prefill's. Repetition loops are kept here, without taking one of the
    `max_items` places: the grounding check quarantines them (and counts them) rather than losing them
    silently.
    """
    seen = set()
    items, loops = [], []
    own_start = prefill.split(MARKER, 1)[1].strip() if MARKER in prefill else ""
    for match in re.finditer(rf"{re.escape(MARKER)}(.*)", text, flags=re.IGNORECASE):
        item = sanitize(match.group(1), max_chars).strip(" -*\"'")
        own = item[len(own_start):] if own_start and match.start() == 0 and item.startswith(own_start) else item
        if len(own.strip()) < MIN_ITEM_CHARS or not re.search(r"[a-zA-Z]{3}", own) or item.lower() in seen:
            continue
        seen.add(item.lower())
        if is_degenerate(item):
            loops.append(item)
            continue
        items.append(item)
        if len(items) == max_items:
            break
    return items + loops[:max_items]


class Reflector:
    """Writes a logged episode's insights and procedure into `memory`.

    `policy` writes the insights (None: procedures only). In two steps, so that concurrent games can share
    batched generate calls and the memory is written only after the episode is logged:
    - `lessons(episode)`: the generation, safe to run from the games' threads (`using` a `BatchedPolicy`);
    - `store(episode, lessons)`: the memory writes, one episode at a time. Returns the ids of the items stored
      or merged, quarantined ones included.
    `reflect(episode)` does both. Called as `reflector(state, context)` it is the acting graph's reflect node,
    for an embedder who adds reflection to the graph itself.
    """

    def __init__(self, policy, memory, cfg, created_by: str):
        self.policy, self.memory, self.cfg, self.created_by = policy, memory, cfg, created_by
        self._node = threading.Lock()  # only for the graph node: graphs an embedder runs at once share it

    def using(self, policy) -> Reflector:
        """The same reflector (same memory) generating with `policy`."""
        other = copy.copy(self)
        other.policy = policy
        return other

    def lessons(self, episode: LoggedEpisode) -> list[str]:
        """Every distinct lesson parsed from `reflection_samples` answers (one batched generate call); []
        without a policy."""
        if self.policy is None:
            return []
        cfg = self.cfg
        messages = reflection_messages(episode["env"], episode["objective"], episode["turns"], episode["outcome"],
                                       episode["reason"])
        # A lesson is the prefilled line: each answer ends at its first line break. What followed it was mostly
        # more narration, and writing it cost a third of reflection's time. On the demo's 16 episodes this
        # stored the same lessons for 15 (the 16th lost one lesson from a later line), in 125 s instead of
        # 184 (docs/BENCHMARKS.md, "Each answer ends at its first line break").
        answers = self.policy.generate([self.policy.render(messages, prefill=PREFILL)] * cfg.reflection_samples,
                                       cfg.reflection_max_new_tokens, temperature=0.7, stop=["\n"],
                                       seed=reflection_seed(cfg, episode))
        return list(dict.fromkeys(item for text, _ in answers for item in
                                  parse_items(PREFILL + text, cfg.max_items_per_episode, cfg.max_item_chars, PREFILL)))

    def store(self, episode: LoggedEpisode, lessons: list[str]) -> list[str]:
        """Store the grounded lessons (or, if none is grounded, the first one quarantined) and the procedure."""
        cfg = self.cfg
        provenance = dict(env=episode["env"], source=episode["id"], outcome=episode["outcome"], round=episode["round"],
                          created_by=self.created_by)
        verdicts = [(lesson, grounding_problem(lesson, episode)) for lesson in lessons]
        kept = [(lesson, None) for lesson, problem in verdicts if problem is None][:cfg.max_items_per_episode]
        procedure = extract_procedure(episode, episode["env"], cfg.max_procedure_chars)
        ids = [self.memory.add(lesson, **provenance, merge_distance=cfg.merge_distance, quarantine=problem)[0]
               for lesson, problem in kept or verdicts[:1]]
        if procedure is not None:
            ids.append(self.memory.add(procedure.text, **provenance, kind="procedure", signature=procedure.signature)[0])
        return ids

    def reflect(self, episode: LoggedEpisode) -> list[str]:
        return self.store(episode, self.lessons(episode))

    def __call__(self, state, context) -> list[str]:
        episode = {"id": context.extra.get("episode_id", ""), "env": context.env.family,
                   "round": context.extra.get("round", 0), "turns": state.turns, "won": state.won,
                   "outcome": state.outcome, "reason": state.reason, "objective": state.objective}
        lessons = self.lessons(episode)
        with self._node:  # merging reads, then updates: one writer at a time
            return self.store(episode, lessons)


def reflection_seed(cfg, episode: LoggedEpisode) -> int:
    """The sampling seed of an episode's reflection: from the run's seed, the round and the game, so the same
    run makes the same lessons again (the process's own random state differs from run to run). Under
    `concurrency` > 1 the games' reflections share batched calls, which draw from one stream: only a run
    at concurrency 1 repeats exactly."""
    game = Path(episode.get("game") or episode["id"]).stem
    return zlib.crc32(f"{cfg.seed}:{episode['round']}:{game}".encode())


def unreflected(memory, episodes: list[LoggedEpisode]) -> list[LoggedEpisode]:
    """The logged episodes that no stored item (of any status) names as its source: reflection is idempotent by
    episode id, so a run resumed after a crash between logging an episode and storing its items reflects on
    those, and only those."""
    sources = {source for item in memory.list("all") for source in item.sources}
    return [e for e in episodes if e["id"] not in sources]
