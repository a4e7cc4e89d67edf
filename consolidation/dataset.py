"""The distillation dataset: prefixes logged while deploying, each with what the teacher sees.

A record is {"prompt": the acting messages (no knowledge), "privileged_context": the teacher's extra
text, "candidates": the admissible commands of that turn, "episode" and "turn": where it was logged (the
choose-mode trainer batches consecutive turns of an episode, `distill.episode_blocks`)}. The teacher
prompt puts the privileged context before the situation text (`distill.TEACHER_TEMPLATE`), as DESIGN.md §1
asks.

The privileged context is what `teacher_context` names: the items retrieved for the situation
(`Memory.retrieve` with `memory.store.retrieval_args`, the same call used when acting with memory:
insights and procedures by default, insights alone for `knowledge`), or, as the paper's baseline, raw
trajectories of other games of the same family (`trajectory_items`), in the same slot, or insights then play
logs (the play logs only come with knowledge). Prefixes with nothing to add are skipped: teacher and
student would be identical.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from agent.prompts import knowledge_block, retrieval_query
from oel.text import sanitize
from memory.store import Memory, retrieval_args
from oel.config import OELConfig
from oel.jsonl import read_jsonl
from oel.records import LoggedEpisode

def load_trajectories(paths: list[Path]) -> list[LoggedEpisode]:
    return [episode for path in paths for episode in read_jsonl(path)]


def build_dataset(episodes: list[LoggedEpisode], memory: Memory, cfg: OELConfig,
                  max_tokens: int = 512) -> tuple[list[dict], list[str]]:
    """Return (records, ids of the knowledge used; empty for trajectories alone)."""
    teacher_context, retrieval = cfg.teacher_context, retrieval_args(cfg)
    records, used = [], []
    for episode in episodes:
        others = [e for e in episodes if e["env"] == episode["env"] and e["id"] != episode["id"]]
        for index, turn in enumerate(episode["turns"]):
            messages = turn["prefix"]
            texts = []
            if retrieval is not None:
                items = memory.retrieve(retrieval_query(messages), env=episode["env"], max_tokens=max_tokens, **retrieval)
                texts += [i.text for i in items]
                used += [i.id for i in items if i.id not in used]
            # With both, the play logs come with knowledge, never alone: a round consolidates when it has
            # knowledge to absorb, and once that is consolidated `oel consolidate` has nothing new to do
            # (the logs alone would be distilled again on every call).
            if teacher_context == "trajectories" or (teacher_context == "knowledge+trajectories" and texts):
                texts += trajectory_items(others, max_tokens)
            context = knowledge_block(texts)
            if context:
                records.append({"prompt": messages, "privileged_context": context,
                                "candidates": turn.get("admissible") or [turn["action"]],
                                "episode": episode["id"], "turn": index})
    return records, used


def trajectory_items(episodes: list[LoggedEpisode], max_tokens: int = 512) -> list[str]:
    """Raw play logs of other games, one per item, won games first, within the same ~4-characters-a-token
    budget as retrieved knowledge. They take the knowledge's place in the prompt (same slot, same header),
    so the baseline differs from the method only in what the context holds."""
    lines, budget = [], max_tokens * 4
    for episode in sorted(episodes, key=lambda e: not e["won"]):
        text = f"Game ({episode['outcome']}): " + "; ".join(
            f"{t['action']} -> {sanitize(t['feedback'], 60)}" for t in episode["turns"])
        if sum(map(len, lines)) + len(text) > budget:
            break
        lines.append(text)
    return lines


CONTENT_KEYS = ("prompt", "privileged_context", "candidates")
"""What a record teaches; `episode` and `turn` only say where it was logged."""


def fingerprint(records: list[dict]) -> str:
    """A short hash of what the dataset teaches, recorded in the checkpoint manifest (`oel consolidate`
    compares it to skip a dataset already trained on)."""
    blob = json.dumps([{k: r[k] for k in CONTENT_KEYS} for r in records], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
