"""The base policy on TextArena boards: how many distinct boards a setting has, and how many the policy wins.

    .venv/bin/python -m bench.boards                  # FrozenLake 3x3 and 4x4, Sokoban 6x6: 48 test boards each

Each setting's test suite is made as the loop makes one (`split_specs(..., "test")`), with no board twice:
a seed that repeats a board is replaced (`agent.games.make_suite`), and the replacements are counted. The
policy (the embedded model, choose mode, no memory) plays each board once with the loop's sampling seeds.
Prints a table (success with a Wilson 95% interval, steps, replaced seeds) and writes --out (JSON).

`--scripted N` also plays every board N times with two scripted policies and no model, as references for what
a policy could learn: a uniformly random legal move, and a random legal move among [down] and [right] (on
FrozenLake the start is the top-left corner and the goal the bottom-right one, so that bias is a lesson
that carries from board to board).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agent.arena import MOVES, open_env
from agent.games import SuiteBook, make_suite, split_specs
from agent.policy import Policy
from bench.common import pct
from consolidation.evaluate import evaluate, summary
from oel.config import DEFAULT_MODEL, OELConfig
from oel.errors import OELError, one_line_errors

SETTINGS = ["ta-frozenlake", "ta-frozenlake:size=4,holes=3", "ta-sokoban"]
SCRIPTED = {"random legal move": set(MOVES), "random legal move, [down] or [right] first": {"[down]", "[right]"}}
"""Scripted reference policies: the moves each prefers (any legal move when none of them is legal)."""


def scripted_success(games: list[tuple[Path, str]], preferred: set[str], plays: int, max_steps: int,
                     seed: int = 0) -> float:
    """The mean success of a scripted policy that takes a random legal move among `preferred` (any legal
    move when none is), over `plays` plays of every game."""
    rng = random.Random(seed)
    won = 0
    for path, family in games:
        for _ in range(plays):
            with contextlib.redirect_stdout(io.StringIO()):  # TextArena prints warnings on stdout
                env = open_env(path, family, max_steps)
                legal = env.reset().admissible
                for _ in range(max_steps):
                    step = env.step(rng.choice([m for m in legal if m in preferred] or legal))
                    if step.done:
                        won += step.won
                        break
                    legal = step.admissible
    return won / (len(games) * plays)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=48)
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--settings", nargs="+", default=SETTINGS)
    parser.add_argument("--scripted", type=int, default=0, metavar="N",
                        help="also play every board N times with the scripted reference policies (no model)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/boards.json"))
    args = parser.parse_args(argv)
    if args.games < 1 or args.scripted < 0:
        raise OELError("--games must be a positive integer and --scripted zero or more")
    console = Console()
    policy = Policy.load(args.model)
    rows = []
    for spec in args.settings:
        cfg = OELConfig(model=args.model, challenges=[spec], max_steps=args.max_steps)
        book = SuiteBook.empty()
        try:
            specs = split_specs([spec], args.games, cfg.seed, "test")
            games = list(zip(make_suite(specs, desc=spec, book=book), [s.env_family for s in specs]))
        except OELError as err:  # too few distinct boards for the suite: that is the finding
            rows.append({"setting": spec, "games": 0, "note": str(err), "replaced": len(book.skipped)})
            continue
        started = time.time()
        e = summary(evaluate(policy, games, cfg, desc=spec))
        rows.append({"setting": spec, "games": len(games), "replaced": len(book.skipped), **e,
                     "wall_s": round(time.time() - started, 1)})
        if args.scripted:
            rows[-1]["scripted"] = {name: round(scripted_success(games, moves, args.scripted, args.max_steps), 3)
                                    for name, moves in SCRIPTED.items()}
    table = Table(title=f"{args.model} (no memory) on distinct test boards")
    for col in ("setting", "boards", "seeds replaced (repeated board)", "won", "steps"):
        table.add_column(col)
    for r in rows:
        if not r["games"]:
            table.add_row(r["setting"], "-", str(r["replaced"]), r["note"], "-")
        else:
            table.add_row(r["setting"], str(r["games"]), str(r["replaced"]), pct(r["success"], r["ci95"]), f"{r['steps']:.1f}")
    console.print(table)
    for r in rows:
        for name, success in r.get("scripted", {}).items():
            console.print(f"{r['setting']}: {name} (scripted, {args.scripted} plays a board): {success:.1%}",
                          markup=False)  # the moves' brackets are text, not rich markup
    result = {"model": args.model, "max_steps": args.max_steps, "scripted_plays": args.scripted, "rows": rows,
              "measured_at": time.strftime("%Y-%m-%d")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    with one_line_errors():
        main()
