"""Forgetting: the learning bench's out-of-distribution arm alone, with any settings, to compare levers.

    .venv/bin/python -m bench.ood --runs-dir runs/bench-learning                         # the bench's own arm
    .venv/bin/python -m bench.ood --runs-dir runs/ood-lr3e-4 --set learning_rate=3e-4    # one lever

Each run trains on coin collector only (rounds 0..R of the loop, like `bench/learning.py`'s `ood-train` arm)
and then plays treasure hunter, a challenge type it never saw, with the base model and with the final
policy. One row per run directory goes to --out (JSONL; a rerun of the same directory replaces its row),
and the table of every row is written to the marked section of --docs. Everything resumes: the loop from
its artifacts, the OOD evaluations from `reports/ood.json` when policy and games are unchanged.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.arms import OOD_TRAIN, ood_eval, run_arm
from bench.common import pct, settings, write_docs
from oel.stats import gained_lost
from oel.config import DEFAULT_MODEL, OELConfig
from oel.errors import one_line_errors
from oel.files import write_atomic
from oel.jsonl import read_jsonl

SECTION = ("<!-- bench/ood.py: start -->", "<!-- bench/ood.py: end -->")


def summary_row(label: str, extra: dict, arm: dict, ood: dict, command: str) -> dict:
    rounds = arm["rounds"]
    gained, lost = gained_lost(ood["round0"]["wins"], ood["final"]["wins"])
    return {"label": label, "settings": extra, "run_dir": arm["run_dir"], "command": command,
            "in_distribution": [r["success_no_memory"] for r in rounds], "steps": [r["steps"] for r in rounds],
            "n_heldout": rounds[0]["n_games"], "promoted": ood["final_policy"],
            "ood_base": ood["round0"]["success"], "ood_final": ood["final"]["success"],
            "ood_n": ood["round0"]["n_games"], "ood_drop_points": ood["drop_points"], "ood_paired_p": ood["paired_p"],
            "gained": gained, "lost": lost,
            "wall_s": round(arm["wall_s"] + ood["wall_s"], 1), "measured_at": time.strftime("%Y-%m-%d")}


def save_row(path: Path, row: dict) -> list[dict]:
    """All rows with `row` in place of any earlier one for the same run directory (written atomically)."""
    rows = [r for r in read_jsonl(path) if r["run_dir"] != row["run_dir"]] + [row]
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [SECTION[0], "", "## Forgetting: levers on the out-of-distribution arm (`bench/ood.py`)", "",
             f"Trained on {', '.join(OOD_TRAIN)} only; OOD = treasure hunter, never trained on. In-distribution "
             "success is on held-out coin collector games, round 0 to the last round; OOD success is the base "
             "model, then the final policy, on the same games and sampling seeds. p: exact McNemar test.", "",
             "| run | settings | in-distribution success by round (n) | steps/ep | OOD base -> final (n) | drop (points) "
             "| games gained / lost | p | min | command |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['label']} | {', '.join(f'{k}={v}' for k, v in r['settings'].items()) or 'defaults'} | "
            f"{' -> '.join(pct(x) for x in r['in_distribution'])} ({r['n_heldout']}) | "
            f"{r['steps'][0]:.1f} -> {r['steps'][-1]:.1f} | {pct(r['ood_base'])} -> {pct(r['ood_final'])} ({r['ood_n']}) | "
            f"{r['ood_drop_points']} | {r['gained']} / {r['lost']} | {r['ood_paired_p']} | {r['wall_s'] / 60:.0f} | "
            f"`{r['command']}` |")
    return "\n".join(lines + ["", SECTION[1]])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", type=Path, required=True, help="the arm runs in RUNS_DIR/ood-train")
    parser.add_argument("--label", help="the run's name in the table (default: the runs dir's name)")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-games", type=int, default=8)
    parser.add_argument("--validation-games", type=int, default=16)
    parser.add_argument("--test-games", type=int, default=16)
    parser.add_argument("--ood-games", type=int, default=96, help="as in bench/learning.py")
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="any OELConfig setting")
    parser.add_argument("--out", type=Path, default=Path("bench/results/ood_levers.jsonl"))
    parser.add_argument("--docs", type=Path, default=Path("docs/RESULTS.md"))
    args = parser.parse_args(argv)
    extra = settings(parser, args.set)
    # The same settings as bench/learning.py's ood-train arm, so its run directory can be reused here.
    cfg = OELConfig.from_dict(dict(model=args.model, train_games=args.train_games,
                                   validation_games=args.validation_games, test_games=args.test_games,
                                   seed=args.seed, max_steps=args.max_steps, concurrency=args.concurrency, **extra)
                              | dict(challenges=OOD_TRAIN, rounds=args.rounds, eval_in_context=False),
                              source="bench settings")
    console = Console()
    arm = run_arm("ood-train", cfg, args.runs_dir, console)
    ood = ood_eval(cfg, args.runs_dir / "ood-train", args.ood_games, console)
    command = "python -m bench.ood " + shlex.join(argv if argv is not None else sys.argv[1:])
    row = summary_row(args.label or args.runs_dir.name, extra, arm, ood, command)
    rows = save_row(args.out, row)
    write_docs(args.docs, markdown(rows), SECTION)
    table = Table("run", "in-distribution", "OOD base -> final", "drop", "gained/lost", "p")
    for r in rows:
        table.add_row(r["label"], " -> ".join(pct(x) for x in r["in_distribution"]),
                      f"{pct(r['ood_base'])} -> {pct(r['ood_final'])} (n={r['ood_n']})", str(r["ood_drop_points"]),
                      f"{r['gained']}/{r['lost']}", str(r["ood_paired_p"]))
    console.print(table)
    console.print(f"wrote {args.out} and {args.docs}")
    return row


if __name__ == "__main__":
    with one_line_errors():
        main()
