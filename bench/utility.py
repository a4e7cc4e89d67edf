"""Utility bench: what measuring each memory item's utility costs, and what the utilities say.

    .venv/bin/python -m bench.utility --run-dir runs/bench-learning/textworld --round 1 [--json]

On a copy of a run's round-R items (quarantined insights released too, so their utility can be compared
with the grounded ones'), the round's policy-in-force (the base model for round 1) measures every item
on `utility_prefixes` logged prefixes of its family, as the loop does after each round's play
(`consolidation.utility.measure_utilities`). Prints the cost (prompts scored, seconds per prompt and per
item) and the mean utility by kind and by grounding verdict.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from consolidation.checkpoints import Registry
from consolidation.dataset import load_trajectories
from consolidation.loop import load_policy
from consolidation.utility import measure_utilities
from memory.store import Memory
from oel.config import OELConfig
from oel.errors import OELError, one_line_errors
from oel.rundir import RunDir


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/bench-learning/textworld"))
    parser.add_argument("--round", type=int, default=1)
    parser.add_argument("--policy", help="checkpoint version that measures (default: the base model)")
    parser.add_argument("--prefixes", type=int, help="prefixes per item (default: the run's utility_prefixes)")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    overrides = {"utility_prefixes": args.prefixes} if args.prefixes else {}
    cfg = OELConfig.from_file(RunDir(args.run_dir).config, **overrides)
    episodes = load_trajectories([RunDir(args.run_dir).round_log(args.round)])
    if not episodes:
        raise OELError(f"no train episodes for round {args.round} in {args.run_dir}")
    with Memory(RunDir(args.run_dir).memory, read_only=True) as source:
        rows = [{**row, "status": "active", "consolidated_in": "", "reason": "",
                 "grounded": row.get("status") != "quarantined"}
                for row in source.export() if row["round"] == args.round]
    policy = load_policy(cfg, Registry(RunDir(args.run_dir).checkpoints), args.policy)
    with tempfile.TemporaryDirectory() as tmp, Memory(Path(tmp)) as memory:
        memory.import_items([{k: v for k, v in row.items() if k != "grounded"} for row in rows])
        grounded = {row["id"]: row["grounded"] for row in rows}
        started = time.time()
        measured = measure_utilities(policy, memory, episodes, cfg)
        seconds = time.time() - started
        items = memory.list("active")
    prompts = sum(i.utility_n for i in items) + cfg.utility_prefixes * len({i.env for i in items})

    def mean(values: list[float]) -> float | None:
        return round(statistics.mean(values), 4) if values else None

    groups = {"insight, grounded": [i for i in items if i.kind == "insight" and grounded[i.id]],
              "insight, quarantined": [i for i in items if i.kind == "insight" and not grounded[i.id]],
              "procedure": [i for i in items if i.kind == "procedure"]}
    result = {"run_dir": str(args.run_dir), "round": args.round, "items": measured, "prompts": prompts,
              "seconds": round(seconds, 1), "s_per_prompt": round(seconds / max(prompts, 1), 3),
              "s_per_item": round(seconds / max(measured, 1), 2), "prefixes_per_item": cfg.utility_prefixes,
              "utility": {name: {"n": len(group), "mean": mean([i.utility for i in group if i.utility is not None]),
                                 "positive": sum((i.utility or 0) > 0 for i in group)}
                          for name, group in groups.items()}}
    if args.json:
        print(json.dumps(result))
        return result
    console = Console()
    console.print(f"measured {measured} items on {cfg.utility_prefixes} prefixes each: {prompts} prompts in "
                  f"{seconds:.1f} s ({result['s_per_prompt']} s a prompt, {result['s_per_item']} s an item)")
    table = Table("items", "n", "mean utility", "utility > 0")
    for name, row in result["utility"].items():
        table.add_row(name, str(row["n"]), "-" if row["mean"] is None else f"{row['mean']:+.4f}", str(row["positive"]))
    console.print(table)
    return result


if __name__ == "__main__":
    with one_line_errors():
        main()
