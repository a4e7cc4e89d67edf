"""The distillation dataset: prefixes logged while deploying, each with the knowledge the teacher sees.

A record is {"prompt": the acting messages (no knowledge), "privileged_context": the knowledge block}.
TRL's SDFT trainer builds the teacher prompt by putting the knowledge before the situation text
(`teacher_prompt_template="{privileged_context}\\n\\n{prompt}"`), as DESIGN.md §1 asks.
Prefixes whose game family has no knowledge are skipped: teacher and student would be identical.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from agent.prompts import knowledge_block
from memory.store import Memory


def load_trajectories(paths: list[Path]) -> list[dict]:
    episodes = []
    for path in paths:
        if path.is_file():
            episodes += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return episodes


def build_dataset(episodes: list[dict], memory: Memory, k: int) -> tuple[list[dict], list[str]]:
    """Return (records, ids of the knowledge used)."""
    records, used = [], []
    for episode in episodes:
        for turn in episode["turns"]:
            messages = turn["prefix"]
            situation = messages[-1]["content"]
            items = memory.retrieve(situation, env=episode["env"], k=k)
            if not items:
                continue
            records.append({"prompt": messages, "privileged_context": knowledge_block([i.text for i in items])})
            used += [i.id for i in items if i.id not in used]
    return records, used


def fingerprint(records: list[dict]) -> str:
    """A short hash of the dataset, recorded in the checkpoint manifest."""
    blob = json.dumps(records, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
