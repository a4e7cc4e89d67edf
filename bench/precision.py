"""Weights in float32 or bfloat16: play and wall time on validation games, so the CPU's dtype is chosen on both.

    .venv/bin/python -m bench.precision [--games 48] [--run-dir runs/teacher-r1 --round 1] [--json]

On a CPU with native bfloat16 (AVX512-BF16 or AMX) half-precision matrix products run about twice as fast as
float32 ones, but the model's scores are less exact, and every policy decision comes from them. This plays the
same validation games (never the test games, which nothing is decided on) with the same sampling seeds in
each precision: the base model without memory, and with `--run-dir` also as the teacher with that round's
memory in its prompt (a copy, as `bench/teacher.py` reads it), since the teacher's play bounds what
consolidation teaches. Each row gives success with its Wilson 95% interval, steps, the wall time of the
evaluation, and bfloat16 paired against float32 game by game (exact McNemar p). Writes --out (JSON).
Consolidation's speed in each precision is `bench/consolidation.py --dtype`.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path

from agent.policy import Policy
from bench.common import device_description, pct, report_comparison, validation_comparison, versus, versus_cells
from bench.teacher import knowledge_copy
from consolidation.dataset import load_trajectories
from consolidation.evaluate import evaluate, summary, teacher_sources
from oel.config import OELConfig
from oel.errors import one_line_errors

DTYPES = ("float32", "bfloat16")


def timed_evaluation(policy, suite, cfg: OELConfig, memory=None, episodes=()) -> dict:
    sources = teacher_sources("memory" if memory else "none", memory, list(episodes), cfg)
    start = time.perf_counter()
    e = evaluate(policy, suite, cfg, **sources, desc=f"{policy.runtime()['dtype']}{' + memory' if memory else ''}")
    return {**summary(e), "seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> dict:
    args, cfg, log, suite = validation_comparison(__doc__.splitlines()[0], "bench/results/precision.json", argv)
    rows, device = {}, None
    # One copy of the round's memory serves both precisions, as bench/prompts.py's formats share theirs.
    with tempfile.TemporaryDirectory() as tmp, (knowledge_copy(args.run_dir, args.round, Path(tmp)) if args.run_dir
                                                 else contextlib.nullcontext()) as memory:
        episodes = load_trajectories([log]) if log else []
        for dtype in DTYPES:
            policy = Policy.load(cfg.model, device=cfg.device, dtype=dtype)
            device = device_description(policy.runtime())["device"]
            rows[dtype] = timed_evaluation(policy, suite, cfg)
            if memory is not None:
                rows[f"{dtype} + memory"] = timed_evaluation(policy, suite, cfg, memory, episodes)
    for name, row in rows.items():
        reference = rows[name.replace("bfloat16", "float32")]
        paired = versus(reference, row)
        row["vs_float32"] = paired and {**paired, "speedup": round(reference["seconds"] / row["seconds"], 2)}
    result = {"games": args.games, "split": "validation", "device": device, "run_dir": str(args.run_dir or ""),
              "round": args.round, "rows": rows}
    return report_comparison(
        args, result, ["weights", "success", "steps/ep", "seconds", "vs float32: gained / lost", "p", "speed-up"],
        f"Precision on {args.games} validation games ({device})",
        lambda row: [pct(row["success"], row["ci95"]), f"{row['steps']:.1f}", f"{row['seconds']:.0f}",
                     *versus_cells(row["vs_float32"]),
                     "-" if row["vs_float32"] is None else f"{row['vs_float32']['speedup']:.2f}x"])


if __name__ == "__main__":
    with one_line_errors():
        main()
