"""Generate-mode acting levers on validation games: what makes the embedded model write commands.

    .venv/bin/python -m bench.generate [--games 48] [--levers base,chat,...] [--concurrency 4] [--run-dir R --round 1] [--json]

In generate mode the policy writes a response and acting reads a command from its first line
(`agent.prompts.ground_command`). Each lever changes one setting against the config (`--levers`, the names of
`LEVERS`); the base model plays the same validation games with the same sampling seeds under each, without
memory, and with `--run-dir` also as the teacher with that round's memory in its prompt (the teacher's play
bounds what consolidation can teach). Each row gives success with its Wilson 95% interval, invalid responses,
generated tokens and steps per episode, and each lever is paired against `base` game by game (exact
McNemar p). Validation games only: nothing is decided on the test games. Writes --out (JSON).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

from agent.policy import Policy
from bench.common import pct, report_comparison, validation_comparison, versus, versus_cells
from bench.teacher import knowledge_copy
from consolidation.dataset import load_trajectories
from consolidation.evaluate import evaluate, summary, teacher_sources
from oel.config import OELConfig
from oel.errors import OELError, one_line_errors

LEVERS = {
    "base": {},
    "one_line": {"one_line": True},  # the response ends at its first line break (the default since 2026-11-27)
    "whole_response": {"one_line": False},  # the response runs to its end token or the cap
    "cap16": {"max_new_tokens": 16},  # a shorter response cap
    "chat": {"acting_prompt": "chat"},  # the episode as a chat: earlier commands are the assistant's turns
}
"""Each lever's settings on top of the config (in generate mode)."""


def played(policy, suite, cfg: OELConfig, levers: list[str], memory=None, episodes=()) -> dict:
    """Each lever's evaluation, and its paired test against `base`, alone or as the teacher with `memory`."""
    suffix = " + memory" if memory else ""
    rows = {}
    for name in levers:
        lever = dataclasses.replace(cfg, **LEVERS[name])
        sources = teacher_sources("memory" if memory else "none", memory, list(episodes), lever)
        rows[name + suffix] = summary(evaluate(policy, suite, lever, **sources, desc=name + suffix))
    base = rows["base" + suffix]
    for row in rows.values():
        row["vs_base"] = versus(base, row)
    return rows


def lever_names(text: str) -> list[str]:
    names = ["base", *[n for n in text.split(",") if n and n != "base"]]
    unknown = [n for n in names if n not in LEVERS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown lever {', '.join(unknown)}; use names from {', '.join(LEVERS)}")
    return names


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--levers", type=lever_names, default=["base", "whole_response", "chat"],
                        help=f"comma-separated, from {', '.join(LEVERS)} (base always runs; default: whole_response,chat)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="games at once, their responses generated in one batch (default 4)")


def main(argv: list[str] | None = None) -> dict:
    args, cfg, log, suite = validation_comparison(
        __doc__.splitlines()[0], "bench/results/generate.json", argv, options)
    if args.concurrency < 1:
        raise OELError("--concurrency must be a positive integer")
    cfg = dataclasses.replace(cfg, action_mode="generate", concurrency=args.concurrency)
    policy = Policy.load(cfg.model, device=cfg.device, dtype=cfg.dtype)
    rows = played(policy, suite, cfg, args.levers)
    if args.run_dir:
        with tempfile.TemporaryDirectory() as tmp, knowledge_copy(args.run_dir, args.round, Path(tmp)) as memory:
            rows.update(played(policy, suite, cfg, args.levers, memory, load_trajectories([log])))
    result = {"games": args.games, "split": "validation", "run_dir": str(args.run_dir or ""), "round": args.round,
              "levers": {n: LEVERS[n] for n in args.levers}, "rows": rows,
              # what `base` was: the levers change these settings of the config
              "base": {key: getattr(cfg, key) for key in ("one_line", "max_new_tokens", "acting_prompt", "temperature",
                                                          "concurrency", "dtype")}}
    return report_comparison(
        args, result, ["lever", "success", "invalid/ep", "tokens/ep", "steps/ep", "vs base: gained / lost", "p"],
        f"Generate-mode levers on {args.games} validation games",
        lambda row: [pct(row["success"], row["ci95"]), f"{row['invalid_per_episode']:.1f}",
                     f"{row['tokens_per_episode']:.0f}", f"{row['steps']:.1f}", *versus_cells(row["vs_base"])])


if __name__ == "__main__":
    with one_line_errors():
        main()
