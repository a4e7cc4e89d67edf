"""Every checkpoint of a run, promoted or rejected, on more test games: was the gate right?

    .venv/bin/python -m bench.candidates --run-dir runs/bench-learning/textworld --games 48 [--split validation] [--json]

The gate decides on the run's validation games (16 in the learning bench), where one game is 6 points. This
plays the base model and each checkpoint (its own lineage: a rejected candidate on top of the parent it was
trained from) without memory on `--games` test games (the loop's test games first, then new test seeds,
as the learning bench's recheck: the same games and sampling seeds, so it reuses that evaluation), and pairs
each against the base model game by game (exact McNemar test). A rejected candidate that plays better than
the policy the gate kept says the gate read noise; what it would have changed is this checkpoint's figure.
Evaluations are kept in the run's `reports/candidates.json` (and read from `reports/heldout_recheck.json`
where the learning bench made them), so a second call replays nothing.

`--split validation` plays the validation games instead (the loop's own first, then new validation seeds):
what a gate that read more games would have seen. Each row then says whether such a gate (no loss against
the parent) would have promoted the checkpoint. Only the rounds before the first decision it would have
changed follow from that: a later checkpoint was trained on top of the parent the real gate kept.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agent.games import make_suite, split_specs
from bench.arms import cached_evaluation
from bench.common import pct
from consolidation.checkpoints import Registry
from consolidation.lifecycle import gate_status
from oel.config import load_run_config
from oel.errors import OELError, one_line_errors
from oel.files import write_atomic
from oel.rundir import RunDir
from oel.stats import gained_lost, paired_p


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True, help="a run directory (e.g. a learning-bench arm)")
    parser.add_argument("--games", type=int, default=48, help="games per policy")
    parser.add_argument("--split", choices=["test", "validation"], default="test",
                        help="test games (report), or validation games (what a gate reading more games would see)")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    args = parser.parse_args(argv)
    run = RunDir(args.run_dir)
    if not run.is_run():
        raise OELError(f"{args.run_dir} is not a run directory (no config.json)")
    if args.games < 1:
        raise OELError("--games must be a positive integer")
    cfg = load_run_config(run.root)
    manifests = Registry(run.checkpoints).manifests()
    if not manifests:
        raise OELError(f"{args.run_dir} has no checkpoints yet: run the loop first")
    console = Console(stderr=args.json)
    specs = split_specs(cfg.challenges, args.games, cfg.seed, args.split)
    suite = list(zip(make_suite(specs, desc=f"{args.split} games"), [s.env_family for s in specs]))
    name = "candidates" if args.split == "test" else "candidates-validation"
    cache = run.report(name)
    recheck = run.report("heldout_recheck")
    if args.split == "test" and not cache.is_file() and recheck.is_file():  # the bench's recheck: same games and seeds
        saved = json.loads(recheck.read_text())
        write_atomic(cache, json.dumps({(s["version"] or "base"): s for s in saved.values()}, indent=2))
    base = cached_evaluation(cfg, run.root, name, "base", None, suite, console)
    rows, results = [], {None: base}
    for m in manifests:
        e = results[m["version"]] = cached_evaluation(cfg, run.root, name, m["version"], m["version"], suite, console)
        gained, lost = gained_lost(base["wins"], e["wins"])
        parent = results.get(m["parent"], base)
        rows.append({"version": m["version"], "parent": m["parent"], "round": m["round"], "status": m["status"],
                     "validation": m["eval"]["after"]["success_no_memory"],
                     "validation_parent": m["eval"]["before"]["success_no_memory"],
                     "success": e["success"], "ci95": e["ci95"], "steps": e["steps"],
                     "gained": gained, "lost": lost, "p": paired_p(base["wins"], e["wins"]),
                     # the test games never decide anything, not even in a what-if
                     "gate_here": gate_status(e["success"], parent["success"], cfg.gate_tolerance)
                     if args.split == "validation" else None})
    result = {"run_dir": str(run), "split": args.split, "games": args.games,
              "base": {"success": base["success"], "ci95": base["ci95"], "steps": base["steps"]}, "checkpoints": rows}
    if args.json:
        print(json.dumps(result))
        return result
    table = Table(title=f"{run}: every checkpoint on {args.games} {args.split} games, no memory")
    for column in ("version", "parent", "round", "gate", "validation (parent)", args.split, "steps", "vs base: gained / lost",
                   "p", f"gate on these {args.games}" if args.split == "validation" else "-"):
        table.add_column(column)
    table.add_row("base", "-", "0", "-", "-", pct(base["success"], base["ci95"]), f"{base['steps']:.1f}", "-", "-", "-")
    for r in rows:
        table.add_row(r["version"], str(r["parent"] or "base"), str(r["round"]), r["status"],
                      f"{r['validation']:.0%} ({r['validation_parent']:.0%})", pct(r["success"], r["ci95"]),
                      f"{r['steps']:.1f}", f"{r['gained']} / {r['lost']}", str(r["p"]), r["gate_here"] or "-")
    console.print(table)
    return result


if __name__ == "__main__":
    with one_line_errors():
        main()
