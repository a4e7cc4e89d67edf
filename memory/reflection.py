"""Reflection: turn one finished episode into knowledge items of both kinds.

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

from memory.grounding import grounding_problem, is_degenerate
from memory.procedures import extract_procedure
from memory.prompts import MARKER, PREFILL, REFLECTION_SYSTEM, REFLECTION_USER
from oel.text import sanitize

MAX_TURNS_SHOWN = 15
MIN_ITEM_CHARS = 12


def reflection_messages(env: str, objective: str, turns: list[dict], outcome: str, reason: str) -> list[dict]:
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
    """The reflect step of the acting graph: writes an episode's insights and procedure into `memory`.

    `policy` writes the insights (None: procedures only). Calling it with (state, context) returns the ids
    of the items stored or merged, quarantined ones included. The lessons are generated outside the writer
    lock, so when concurrent games reflect through a `BatchedPolicy` (`using`), their generations share
    batched calls; the memory writes are serialised.
    """

    def __init__(self, policy, memory, cfg, created_by: str):
        self.policy, self.memory, self.cfg, self.created_by = policy, memory, cfg, created_by
        self._writes = threading.Lock()

    def using(self, policy) -> Reflector:
        """The same reflector (same memory, same writer lock) generating with `policy`."""
        other = copy.copy(self)
        other.policy = policy
        return other

    def lessons(self, env: str, state) -> list[str]:
        """Every distinct lesson parsed from `reflection_samples` answers (one batched generate call)."""
        cfg = self.cfg
        messages = reflection_messages(env, state.objective, state.turns, state.outcome, state.reason)
        answers = self.policy.generate([self.policy.render(messages, prefill=PREFILL)] * cfg.reflection_samples,
                                       cfg.reflection_max_new_tokens, temperature=0.7)
        return list(dict.fromkeys(item for text, _ in answers for item in
                                  parse_items(PREFILL + text, cfg.max_items_per_episode, cfg.max_item_chars, PREFILL)))

    def __call__(self, state, context) -> list[str]:
        cfg, env = self.cfg, context.env.family
        episode = {"turns": state.turns, "won": state.won, "outcome": state.outcome, "objective": state.objective}
        provenance = dict(env=env, source=context.extra.get("episode_id", ""), outcome=state.outcome,
                          round=context.extra.get("round", 0), created_by=self.created_by)
        lessons = self.lessons(env, state) if self.policy is not None else []
        verdicts = [(lesson, grounding_problem(lesson, episode)) for lesson in lessons]
        kept = [(lesson, None) for lesson, problem in verdicts if problem is None][:cfg.max_items_per_episode]
        procedure = extract_procedure(episode, env, cfg.max_procedure_chars)
        ids = []
        with self._writes:  # one memory writer at a time (merging reads, then updates)
            for lesson, problem in kept or verdicts[:1]:
                ids.append(self.memory.add(lesson, **provenance, merge_distance=cfg.merge_distance, quarantine=problem)[0])
            if procedure is not None:
                ids.append(self.memory.add(procedure.text, **provenance, kind="procedure", signature=procedure.signature)[0])
        return ids
