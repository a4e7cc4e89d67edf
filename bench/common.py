"""What the benches share: `--set` options, the docs sections they write, the machine they ran on, and how
they print a result (an evaluation is kept as `consolidation.evaluate.summary`; the statistics are `oel.stats`)."""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path


def print_result(result: dict, as_json: bool) -> None:
    """A bench's figures: one JSON line with --json, else one `key value` line each."""
    if as_json:
        print(json.dumps(result))
        return
    width = max(map(len, result)) + 2
    for key, value in result.items():
        print(f"{key:{width}} {value}")


def write_docs(docs: Path, section: str, markers: tuple[str, str]) -> None:
    """Replace the section of `docs` between `markers` (which `section` starts and ends with), keeping
    everything written by hand around it."""
    text = docs.read_text() if docs.is_file() else "# Results\n"
    if markers[0] in text and markers[1] in text:
        head, rest = text.split(markers[0], 1)
        text = head + section + rest.split(markers[1], 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text(text)


def settings(parser: argparse.ArgumentParser, items: list[str]) -> dict:
    """`--set KEY=JSON` options as a dict; a value that is not JSON is a usage error naming the option."""
    extra = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            extra[key] = json.loads(value)
        except json.JSONDecodeError:
            parser.error(f"--set {item!r}: the value must be JSON, e.g. --set learning_rate=3e-4 or --set 'challenges=[\"ta-frozenlake\"]'")
    return extra


def gpu_name() -> str | None:
    """The CUDA device's name, or None on a machine without one."""
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else None


def machine() -> str:
    """The machine in words, for a result's `machine` field."""
    return f"{os.cpu_count()} CPU cores, " + (gpu_name() or "no GPU")


def device_description(runtime: dict) -> dict:
    """A policy's runtime (`Policy.runtime()`) with the GPU's name, or the CPU's threads and architecture."""
    import torch

    runtime = dict(runtime)
    if runtime["device"].startswith("cuda"):
        runtime["device"] += f" ({torch.cuda.get_device_name(runtime['device'])})"
    else:
        runtime["device"] += f" x{torch.get_num_threads()} threads ({platform.machine()})"
    return runtime


def pct(x: float | None, ci: list[float] | None = None) -> str:
    if x is None:
        return "-"
    return f"{x:.0%}" + (f" [{ci[0]:.0%}, {ci[1]:.0%}]" if ci else "")


def versus(reference: dict, row: dict, key: str = "wins") -> dict | None:
    """`row`'s outcomes paired one by one against `reference`'s (exact McNemar p); None for the reference. `key`
    names the 0/1 outcomes: games won (`wins`), or responses that were a command (`valid_flags`)."""
    from oel.stats import gained_lost, paired_p

    if row is reference:
        return None
    return {"gained_lost": gained_lost(reference[key], row[key]), "p": paired_p(reference[key], row[key])}


def versus_cells(paired: dict | None) -> list[str]:
    """A `versus` result as two table cells: games gained / lost, and p."""
    return ["-", "-"] if paired is None else ["{} / {}".format(*paired["gained_lost"]), str(paired["p"])]


def report_comparison(args, result: dict, columns: list[str], title: str, cells) -> dict:
    """A comparison bench's ending: `result` written to --out, then printed as one JSON line with --json,
    else as a table with `cells(row)` for each of its rows."""
    from rich.console import Console
    from rich.table import Table

    from oel.files import write_atomic

    write_atomic(args.out, json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result))
        return result
    table = Table(*columns, title=title)
    for name, row in result["rows"].items():
        table.add_row(name, *cells(row))
    Console().print(table)
    return result


def validation_comparison(description: str, out: str, argv: list[str] | None, options=None):
    """The start of a bench that compares settings on validation games, alone and as the teacher with one
    round's memory (`bench/prompts.py`, `bench/precision.py`, `bench/generate.py`): its arguments, the config
    (the run's, or the defaults), that round's train log (None without --run-dir), and the games with their
    families. `options(parser)` adds a bench's own arguments."""
    from agent.games import make_suite, split_specs
    from oel.config import OELConfig
    from oel.errors import OELError
    from oel.rundir import RunDir

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--games", type=int, default=48, help="validation games")
    parser.add_argument("--run-dir", type=Path, help="a run whose memory the teacher rows read (e.g. runs/teacher-r1)")
    parser.add_argument("--round", type=int, default=1,
                        help="the round of that memory (0: what `oel play` played and wrote outside the loop)")
    parser.add_argument("--out", type=Path, default=Path(out))
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    if options:
        options(parser)
    args = parser.parse_args(argv)
    if args.games < 1:
        raise OELError("--games must be a positive integer")
    run = RunDir(args.run_dir) if args.run_dir else None
    cfg = OELConfig.from_file(run.config) if run else OELConfig()
    log = (run.play_log if args.round == 0 else run.round_log(args.round)) if run else None  # round 0: `oel play`'s
    if log and not log.is_file():  # checked before anything is played
        raise OELError(f"no train episodes for round {args.round} in {args.run_dir} ({log} is missing): "
                       + ("run `oel play` there first" if args.round == 0 else "run the loop that far first"))
    specs = split_specs(cfg.challenges, args.games, cfg.seed, "validation")
    return args, cfg, log, list(zip(make_suite(specs, desc="validation games"), [s.env_family for s in specs]))
