"""Acting prompt formats, `chat` against `transcript`, on validation games: which one the default should be.

    .venv/bin/python -m bench.prompts [--games 48] [--run-dir runs/teacher-r1 --round 1] [--json]

The format changes what the model sees, so before it becomes the default its effect on play is measured on
the validation games (never on the test games, which nothing is decided on). The base model plays the same
games with the same sampling seeds in each format, without memory; with `--run-dir`, also as the teacher
with that round's memory in its prompt (a copy of it, as `bench/teacher.py` reads it), since the teacher's
play bounds what consolidation teaches. Each row gives success with its Wilson 95% interval, steps, the
mean acting prompt's length in tokens and how many of them the turn cache did not cover (encoded afresh),
and `chat` is paired against `transcript` game by game (exact McNemar p). Writes --out (JSON). Speed
itself is `bench/rollout.py`'s (`--acting-prompt`).
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from agent.policy import Policy
from bench.common import pct, report_comparison, validation_comparison, versus, versus_cells
from bench.teacher import knowledge_copy
from consolidation.dataset import load_trajectories
from consolidation.evaluate import evaluate, summary, teacher_sources
from oel.config import ACTING_PROMPTS, OELConfig
from oel.errors import one_line_errors


def played(policy, suite, cfg: OELConfig, memory=None, episodes=()) -> dict:
    """One evaluation, with the mean prompt tokens a move (reused and encoded alike)."""
    policy.prompt_tokens = {"reused": 0, "encoded": 0}
    sources = teacher_sources("memory" if memory else "none", memory, list(episodes), cfg)
    e = evaluate(policy, suite, cfg, **sources, desc=f"{cfg.acting_prompt}{' + memory' if memory else ''}")
    moves = sum(x["steps"] for x in e["episodes"])
    return {**summary(e), "prompt_tokens": round(sum(policy.prompt_tokens.values()) / max(1, moves), 1),
            "encoded_tokens": round(policy.prompt_tokens["encoded"] / max(1, moves), 1)}


def main(argv: list[str] | None = None) -> dict:
    args, cfg, log, suite = validation_comparison(__doc__.splitlines()[0], "bench/results/prompts.json", argv)
    policy = Policy.load(cfg.model, device=cfg.device, dtype=cfg.dtype)
    rows = {}
    for style in ACTING_PROMPTS:
        rows[style] = played(policy, suite, dataclasses.replace(cfg, acting_prompt=style))
    if args.run_dir:
        episodes = load_trajectories([log])
        with tempfile.TemporaryDirectory() as tmp, knowledge_copy(args.run_dir, args.round, Path(tmp)) as memory:
            for style in ACTING_PROMPTS:
                rows[f"{style} + memory"] = played(policy, suite, dataclasses.replace(cfg, acting_prompt=style),
                                                   memory, episodes)
    for name, row in rows.items():
        row["vs_transcript"] = versus(rows[name.replace("chat", "transcript")], row)
    result = {"games": args.games, "split": "validation", "run_dir": str(args.run_dir or ""), "round": args.round,
              "rows": rows}
    return report_comparison(
        args, result, ["format", "success", "steps/ep", "prompt tokens/move", "encoded/move", "vs transcript: gained / lost",
                       "p"], f"Acting prompt formats on {args.games} validation games",
        lambda row: [pct(row["success"], row["ci95"]), f"{row['steps']:.1f}", f"{row['prompt_tokens']:.0f}",
                     f"{row['encoded_tokens']:.0f}", *versus_cells(row["vs_transcript"])])


if __name__ == "__main__":
    with one_line_errors():
        main()
