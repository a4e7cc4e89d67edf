"""The teacher's ceiling: which context in the prompt makes the best teacher, on many held-out games.

    .venv/bin/python -m bench.teacher --run-dir runs/bench-learning/textworld --round 1 --games 48

Context distillation teaches the student to play like its teacher (the policy with a context in its
prompt), and measured here the student stops when it gets there (docs/RESULTS.md, "More rounds"). So the
teacher bounds what a round of consolidation can reach, and comparing teachers takes one evaluation each
(~3 min for 48 games on 2 CPU cores) where a loop takes half an hour. For round R of an existing run, the
policy plays the same held-out games with the same sampling seeds, with in its prompt:

- `none`: nothing (the policy alone);
- `memory`: the items the run's reflections wrote in round R, insights and procedures, retrieved per
  situation (top `retrieve_k`), as round R's teacher saw them (the bench's memory held nothing else active
  then; quarantined items are never retrieved);
- `knowledge`: the insights alone (the paper's method, an ablation of the memory);
- `procedures`: the procedures alone (the other ablation);
- `trajectories`: round R's train episodes of the game's family, as raw play logs (the paper's baseline);
- `knowledge+trajectories`: insights, then play logs.

Retrieval follows the run's settings (`--set utility_threshold=0` skips items of negative utility). In
generate mode (the run's, or `--set 'action_mode="generate"'`) the table adds invalid responses and generated
tokens per episode: there the teacher must also write the command. The
items are read from a copy of the run's memory, so the run is not changed. Each evaluation is saved
in `<run-dir>/reports/teacher_r<R>.json` and reused for the same policy, context, k and games. Writes
--out (JSON) and the marked section of --docs: success with Wilson 95% intervals, steps per episode, and
each context against `none` game by game (exact McNemar p).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agent.games import make_suite, split_specs
from bench.common import pct, settings, write_docs
from oel.stats import gained_lost, paired_p
from consolidation.checkpoints import Registry
from consolidation.dataset import load_trajectories
from consolidation.evaluate import evaluate, summary, teacher_sources
from consolidation.loop import load_policy
from consolidation.utility import measure_utilities
from memory.store import Memory
from oel.config import OELConfig
from oel.errors import OELError, one_line_errors
from oel.files import write_atomic
from oel.rundir import RunDir

CONTEXTS = ("none", "memory", "knowledge", "procedures", "trajectories", "knowledge+trajectories")
SECTION = ("<!-- bench/teacher.py: start -->", "<!-- bench/teacher.py: end -->")


def knowledge_copy(run_dir: Path, round: int, into: Path, unquarantine: bool = False) -> Memory:
    """A writable copy of the run's memory holding only the items written in `round`, all active again
    (quarantined ones stay quarantined, so never used, unless `unquarantine`: the grounding check's ablation)."""
    with Memory(RunDir(run_dir).memory, read_only=True) as source:
        rows = [row if row.get("status") == "quarantined" and not unquarantine
                else {**row, "status": "active", "consolidated_in": "", "reason": ""}
                for row in source.export() if row["round"] == round]
    if not rows:
        raise OELError(f"{RunDir(run_dir).memory} holds no knowledge written in round {round}: pick another --round")
    memory = Memory(into)
    memory.import_items(rows)
    return memory


def table_rows(rows: dict, generate: bool = False) -> list[tuple[str, ...]]:
    """(context, success, steps/ep, games gained / lost against `none`, exact McNemar p) per context; in
    generate mode also invalid responses and generated tokens per episode."""
    out = []
    for name, row in rows.items():
        gained, lost = gained_lost(rows["none"]["wins"], row["wins"])
        versus, p = ("-", "-") if name == "none" else (f"{gained} / {lost}", str(paired_p(rows["none"]["wins"], row["wins"])))
        cells = (name, pct(row["success"], row["ci95"]), f"{row['steps']:.1f}", versus, p)
        if generate:
            cells += (f"{row.get('invalid_per_episode', 0):.1f}", f"{row['tokens_per_episode']:.0f}")
        out.append(cells)
    return out


HEADER = ("context in the prompt", "success", "steps/ep", "vs none: gained / lost", "p")
GENERATE_HEADER = (*HEADER, "invalid/ep", "tokens/ep")
"""In generate mode the teacher must also write commands: how many of its responses were not one, and its cost."""


def markdown(result: dict) -> str:
    rows, generate = result["contexts"], result.get("action_mode") == "generate"
    header = GENERATE_HEADER if generate else HEADER
    lines = [SECTION[0], "", "## Teacher contexts (`bench/teacher.py`)", "", f"Command: `{result['command']}`  ",
             f"Measured {result['measured_at']}: round {result['round']} of `{result['run_dir']}`, policy "
             f"{result['policy'] or 'the base model'}, {rows['none']['n_games']} test games, k = {result['k']}"
             + (f", utility threshold {result['utility_threshold']}" if result.get("utility_threshold") is not None else "")
             + (", quarantined insights used too" if result.get("unquarantined") else "")
             + (", generate mode" if generate else "") + ".", "",
             "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(rows, generate)]
    return "\n".join([*lines, "", SECTION[1]])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/bench-learning/textworld"))
    parser.add_argument("--round", type=int, default=1, help="whose knowledge and train episodes the teacher sees")
    parser.add_argument("--policy", help="checkpoint version that plays (default: the base model, round 1's teacher)")
    parser.add_argument("--games", type=int, default=48, help="test games (the loop's own first)")
    parser.add_argument("--contexts", default=",".join(CONTEXTS), help=f"comma-separated, of: {', '.join(CONTEXTS)}")
    parser.add_argument("--unquarantine", action="store_true",
                        help="use the quarantined insights too (what the grounding check keeps out)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help="override a setting of the run's config, e.g. --set retrieve_k=3")
    parser.add_argument("--out", type=Path, default=Path("bench/results/teacher.json"))
    parser.add_argument("--docs", type=Path, default=Path("docs/RESULTS.md"))
    args = parser.parse_args(argv)
    contexts = ["none", *[c for c in args.contexts.split(",") if c != "none"]]
    unknown = [c for c in contexts if c not in CONTEXTS]
    if unknown:
        parser.error(f"--contexts: unknown context {unknown[0]!r}; use {', '.join(CONTEXTS)}")
    cfg = OELConfig.from_file(RunDir(args.run_dir).config, **settings(parser, args.set))
    log = RunDir(args.run_dir).round_log(args.round)
    if not log.is_file():
        raise OELError(f"no train episodes for round {args.round} in {args.run_dir}: run the loop that far first")
    episodes = load_trajectories([log])
    specs = split_specs(cfg.challenges, args.games, cfg.seed, "test")
    suite = list(zip(make_suite(specs, desc="teacher"), [s.env_family for s in specs]))
    policy = load_policy(cfg, Registry(RunDir(args.run_dir).checkpoints), args.policy)
    console = Console()

    cache = RunDir(args.run_dir).report(f"teacher_r{args.round}")
    saved = json.loads(cache.read_text()) if cache.is_file() else {}
    games = [s.name for s in specs]
    # Overridden settings (`--set`) are part of the key, so that, say, a generate-mode evaluation never reads as
    # the run's own choose-mode one.
    overrides = " ".join(sorted(args.set))
    base = f"k={cfg.retrieve_k}|{args.policy or 'base'}" + (f" {overrides}" if overrides else "")
    with tempfile.TemporaryDirectory() as tmp, \
            knowledge_copy(args.run_dir, args.round, Path(tmp), args.unquarantine) as memory:
        if cfg.utility_threshold is not None:  # measured afresh, as the loop would with this code and policy
            measure_utilities(policy, memory, episodes, cfg)
        for context in contexts:
            key, label = f"{context}|{base}", context
            if context != "none":  # the retrieval ablations read the memory differently: their own rows
                if cfg.utility_threshold is not None:
                    key, label = key + f"|utility>={cfg.utility_threshold}", label + f" [utility >= {cfg.utility_threshold}]"
                if not cfg.procedures_first and context == "memory":
                    key, label = key + "|nearest-first", label + " [nearest first]"
                if args.unquarantine:
                    key, label = key + "|unquarantined", label + " [quarantined insights too]"
            if saved.get(key, {}).get("games") != games:
                console.print(f"teacher with {label}: {len(suite)} games")
                started = time.time()
                e = evaluate(policy, suite, cfg, **teacher_sources(context, memory, episodes, cfg),
                             desc=f"teacher {context}")
                saved[key] = {**summary(e), "games": games, "wall_s": round(time.time() - started, 1)}
                write_atomic(cache, json.dumps(saved, indent=2))
            saved[key]["label"] = label
    write_atomic(cache, json.dumps(saved, indent=2))
    # Every context measured so far for this policy, k and games, in CONTEXTS order, each ablation after its
    # context: a call that adds one context or ablation keeps the others in the table.
    order = {c: n for n, c in enumerate(CONTEXTS)}
    measured = sorted((k for k in saved if k.split("|")[1:3] == base.split("|") and saved[k]["games"] == games
                       and saved[k].get("label")), key=lambda k: (order.get(k.split("|")[0], 99), k))
    rows = {saved[k]["label"]: {f: v for f, v in saved[k].items() if f != "label"} for k in measured}

    result = {"run_dir": str(args.run_dir), "round": args.round, "policy": args.policy, "k": cfg.retrieve_k,
              "action_mode": cfg.action_mode,
              "utility_threshold": cfg.utility_threshold, "unquarantined": args.unquarantine,
              "contexts": rows, "measured_at": time.strftime("%Y-%m-%d"),
              "command": "python -m bench.teacher " + shlex.join(argv if argv is not None else sys.argv[1:])}
    write_atomic(args.out, json.dumps(result, indent=2))
    write_docs(args.docs, markdown(result), SECTION)
    generate = cfg.action_mode == "generate"
    table = Table(*(GENERATE_HEADER if generate else HEADER))
    for cells in table_rows(rows, generate):
        table.add_row(*cells)
    console.print(table)
    console.print(f"wrote {args.out} and {args.docs}")
    return result


if __name__ == "__main__":
    with one_line_errors():
        main()
