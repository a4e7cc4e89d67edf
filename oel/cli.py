"""The `oel` command line. Every user error is one line on stderr and a non-zero exit code."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Optional

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from oel.config import OELConfig
from oel.errors import Interrupted, OELError
from oel.files import write_atomic
from oel.text import sanitize
from oel.jsonl import read_jsonl
from oel.rundir import RunDir

app = typer.Typer(help="Online experiential learning for language-model agents: play, reflect, consolidate.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
memory_app = typer.Typer(help="Inspect the knowledge memory.", no_args_is_help=True)
checkpoints_app = typer.Typer(help="Inspect checkpoints.", no_args_is_help=True)
app.add_typer(memory_app, name="memory")
app.add_typer(checkpoints_app, name="checkpoints")
games_app = typer.Typer(help="Generate and list game suites.", no_args_is_help=True)
app.add_typer(games_app, name="games")
# Wide enough for the round table when output goes to a file or CI log.
console = Console(width=None if sys.stdout.isatty() else 140)

LAST_RUN = Path(os.environ.get("OEL_LAST_RUN", Path("runs") / ".last-run"))
"""Where the last run used from this working directory is recorded ($OEL_LAST_RUN moves it: the tests do)."""


def default_run_dir() -> Path:
    """The run a command works on without --run-dir: $OEL_RUN_DIR; else the last run that `oel loop` or `oel play`
    used from this working directory (so `make demo` then `oel memory list` shows the demo's memory); else
    runs/default."""
    if os.environ.get("OEL_RUN_DIR"):
        return Path(os.environ["OEL_RUN_DIR"])
    try:
        last = Path(LAST_RUN.read_text().strip())
    except OSError:
        last = None
    return last if last and RunDir(last).is_run() else Path("runs/default")


def remember_run(run_dir: Path) -> None:
    """Record the run that `oel loop` or `oel play` used, for the commands that follow."""
    try:
        write_atomic(LAST_RUN, str(run_dir))
    except OELError:
        pass  # a read-only working directory: commands then need --run-dir, nothing worse


def require_run(run_dir: Path) -> Path:
    """A read command's run directory must exist: an empty answer for a wrong path would look like success."""
    if not RunDir(run_dir).is_run():
        raise OELError(f"{run_dir} is not a run directory (no config.json): give --run-dir, or run `oel loop` first")
    return run_dir


RunDirOption = typer.Option(None, "--run-dir", "-r", callback=lambda given: given or default_run_dir(),
                      show_default="the last run used here, else runs/default",
                      help="Run directory: games, memory, checkpoints, reports.")
ConfigFile = typer.Option(None, "--config", "-c", help="TOML file of settings (see oel/config.py).")
AsJson = typer.Option(False, "--json", help="Print JSON instead of a table.")


def load_config(config: Path | None, **overrides) -> OELConfig:
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if config is not None:
        return OELConfig.from_file(config, **overrides)
    return OELConfig.from_dict(overrides, source="options")


def _quiet() -> None:
    warnings.filterwarnings("ignore")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


@app.command()
def loop(
    run_dir: Path = RunDirOption,
    config: Optional[Path] = ConfigFile,
    rounds: Optional[int] = typer.Option(None, help="Rounds of play, reflect, consolidate (default 2)."),
    model: Optional[str] = typer.Option(None, help="smollm2-135m (embedded), a model directory or a cached hub id."),
    mode: Optional[str] = typer.Option(None, "--mode", help="choose or generate."),
    train_games: Optional[int] = typer.Option(None, help="Train games per round."),
    validation_games: Optional[int] = typer.Option(None, help="Held-out games the gate decides on."),
    test_games: Optional[int] = typer.Option(None, help="Held-out games the reports show."),
    max_steps: Optional[int] = typer.Option(None, help="Step limit per episode."),
    distill_steps: Optional[int] = typer.Option(None, help="Optimiser steps per consolidation."),
    memory_url: Optional[str] = typer.Option(None, help="Chroma server URL instead of the embedded memory."),
    challenge: Optional[list[str]] = typer.Option(None, "--challenge", help="A challenge spec to play (repeat for a "
                                                  "mix), e.g. tw-cooking:recipe=2,go=6 or ta-frozenlake:size=4."),
    train_files: Optional[list[str]] = typer.Option(None, "--train-files", help="Your own train games: files, a "
                                                    "folder or a glob (repeatable), instead of generated ones."),
    validation_files: Optional[list[str]] = typer.Option(None, "--validation-files", help="Your own games for the gate."),
    test_files: Optional[list[str]] = typer.Option(None, "--test-files", help="Your own games for the reports."),
):
    """Run the online learning loop: play, reflect, consolidate, gate, prune; repeat."""
    cfg = load_config(config, rounds=rounds, model=model, action_mode=mode, train_games=train_games,
                      validation_games=validation_games, test_games=test_games, max_steps=max_steps, distill_steps=distill_steps,
                      memory_url=memory_url, challenges=challenge or None, train_files=train_files or None,
                      validation_files=validation_files or None, test_files=test_files or None)
    _quiet()
    from consolidation.loop import run_loop

    remember_run(run_dir)
    run_loop(cfg, run_dir, console)


@app.command()
def play(
    run_dir: Path = RunDirOption,
    config: Optional[Path] = ConfigFile,
    game: Optional[list[str]] = typer.Option(None, "--game", help="A game file (.z8, .z5, .ulx, .ta), a folder of "
                                             "them or a glob; repeat for more. Default: the run's train games."),
    challenge: Optional[list[str]] = typer.Option(None, "--challenge", help="Play new games of this spec, e.g. "
                                                  "tw-cooking:recipe=2,go=6 (repeat for a mix)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="First seed of the --challenge games (default: the run's seed)."),
    games: Optional[int] = typer.Option(None, "--games", help="How many games to play (default 4; with --game, every file)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Step limit per game (default: the run's)."),
    concurrency: int = typer.Option(1, "--concurrency", help="Games played at once, their model calls batched."),
    model: Optional[str] = typer.Option(None, help="Model to play with (new run directories only)."),
    mode: Optional[str] = typer.Option(None, "--mode", help="choose or generate (new run directories only)."),
    reflect: bool = typer.Option(True, help="Write knowledge into the memory after each game."),
    worker: Optional[str] = typer.Option(None, "--worker", help="Play as one of many workers on a shared run "
                                         "directory: log to trajectories/round_<r>.<NAME>.jsonl (docs/DISTRIBUTED.md)."),
):
    """Play games with the current policy, log trajectories and reflect into memory. Plays only what it is
    asked: --game files, new --challenge games, or else the run's train games; never the held-out ones.
    --game, --challenge, --seed and --max-steps apply to this play only, not to the run's settings."""
    import dataclasses

    from oel.config import load_run_config

    if RunDir(run_dir).is_run():
        cfg = load_run_config(run_dir)  # an existing run keeps its own settings
    else:
        # A new run's train games are the ones `--games` asks for (the run's own first round).
        cfg = load_config(config, model=model, action_mode=mode, train_games=None if game or challenge else games)
    if games is not None and games < 1:
        raise OELError("--games must be a positive integer")
    play_cfg = dataclasses.replace(cfg, max_steps=max_steps) if max_steps is not None else cfg
    _quiet()
    from agent.rollout import play_games, seed_base
    from consolidation.loop import (check_worker_name, load_policy, next_round, open_run, reflection_policy,
                                    warn_precision_moved, worker_log)
    from memory.reflection import Reflector

    if worker is not None:
        check_worker_name(worker)
        if not (game or challenge):  # else every worker would play the same train games
            raise OELError("a worker plays games of its own: give --challenge with a --seed of its own, or --game files")
    to_play = _games_to_play(cfg, run_dir, game, challenge, seed, games)  # bad specs or paths fail before the model loads
    with open_run(cfg, run_dir) as (memory, registry):
        remember_run(run_dir)
        to_play = to_play or _run_train_games(cfg, run_dir, games or 4)
        policy = load_policy(cfg, registry, registry.current())
        warn_precision_moved(cfg, registry, console)
        writer = reflection_policy(cfg, policy) if reflect else None
        reflector = Reflector(writer, memory, cfg, writer.name) if reflect else None
        if worker is None:
            r, log_path, first_seed = 0, RunDir(run_dir).play_log, seed_base(cfg.seed)
        else:  # a worker's episodes feed the next consolidation: they carry its round
            r = next_round(run_dir, registry)
            log_path, first_seed = worker_log(run_dir, r, worker), seed_base(cfg.seed, worker=worker)
        episodes = play_games(policy, to_play, play_cfg, round=r, seed_base=first_seed, log_path=log_path,
                              reflect=reflector, concurrency=concurrency)
        for e in episodes:
            console.print(f"{Path(e['game']).name}: {e['outcome']} in {e['steps']} steps, score {e['score']}/{e['max_score']}")
        console.print(f"won {sum(e['won'] for e in episodes)}/{len(episodes)}; memory: {memory.count('active')} active items")


def _games_to_play(cfg: OELConfig, run_dir: Path, files, challenges, seed, n) -> list:
    """(file, family) pairs for `oel play --game/--challenge`; [] when neither is given."""
    from agent.games import SuiteBook, expand_game_files, family_of_file, make_suite, suite_specs

    if files and challenges:
        raise OELError("give --game or --challenge, not both")
    if seed is not None and seed < 0:
        raise OELError(f"--seed must be >= 0, got {seed}")
    if files:
        paths = expand_game_files(files)[:n] if n else expand_game_files(files)
        return [(p, family_of_file(p)) for p in paths]
    if challenges:
        from consolidation.loop import Suites

        recorded = Suites.read(run_dir)
        book = SuiteBook.holding(recorded.validation + recorded.test, "held out")  # never the run's held-out games
        specs = suite_specs(list(challenges), n or 4, cfg.seed if seed is None else seed)
        return list(zip(make_suite(specs, desc="play", book=book), [s.env_family for s in specs]))
    return []


def _run_train_games(cfg: OELConfig, run_dir: Path, n: int) -> list:
    from consolidation.loop import prepare_games

    train = prepare_games(cfg, run_dir, rounds=1, splits=("train",)).train[1]
    if n > len(train):
        raise OELError(f"{run_dir} has {len(train)} train games a round; play at most --games {len(train)}, "
                       "or new games with --challenge")
    return train[:n]


@app.command()
def consolidate(run_dir: Path = RunDirOption):
    """Distil the logged prefixes and the active memory into a new checkpoint, once; gate and prune.

    Idempotent: does nothing if the newest checkpoint was trained on exactly this data. A lock keeps two
    consolidations of one run from running at once.
    """
    _quiet()
    from consolidation.loop import consolidate_once
    from consolidation.ranks import is_leader

    manifest = consolidate_once(run_dir, console)
    if manifest is None and is_leader():  # a launcher's other processes only train: the leader reports
        console.print("no new checkpoint")


@app.command()
def schedule(
    run_dir: Path = RunDirOption,
    cron: Optional[str] = typer.Option(None, help="Crontab expression, e.g. '0 3 * * *' (03:00 daily)."),
    every: Optional[str] = typer.Option(None, help="Interval: 30s, 15m, 6h or 1d."),
    when_items: Optional[int] = typer.Option(None, help="Consolidate once the memory holds this many active items."),
    check_every: str = typer.Option("60s", help="With --when-items: how often to count the items."),
    max_runs: Optional[int] = typer.Option(None, help="Stop after this many consolidation attempts."),
):
    """Run `oel consolidate` on a schedule (APScheduler). A failed run is logged and the schedule goes on."""
    _quiet()
    from consolidation.schedule import run_schedule

    run_schedule(run_dir, cron=cron, every=every, when_items=when_items, check_every=check_every,
                 max_runs=max_runs, console=console)


@app.command()
def report(run_dir: Path = RunDirOption):
    """Print the per-round table and write the PNG learning curve."""
    from consolidation.report import print_report

    if print_report(run_dir, console) is None:
        raise OELError(f"no rounds recorded in {run_dir}: run `oel loop --run-dir {run_dir}` first")


@app.command()
def ui(run_dir: Path = RunDirOption,
       host: str = typer.Option("127.0.0.1", help="Address to listen on. The default is this machine only; another "
                                                 "address shows the run (and, with --allow-writes, lets anyone who can "
                                                 "reach it change the memory) to the network."),
       port: int = typer.Option(8765, help="Port to listen on."),
       allow_writes: bool = typer.Option(False, "--allow-writes",
                                         help="Let the page restore, archive and forget items (each asks first).")):
    """Serve a local web page over the run: memory, episodes, checkpoints, and how each item became weights."""
    _quiet()
    from oel.ui import check_run_dir, serve

    check_run_dir(run_dir)
    if not 0 < port < 65536:
        raise OELError(f"--port must be between 1 and 65535, got {port}")
    serve(run_dir, host=host, port=port, allow_writes=allow_writes)


def _memory(run_dir: Path, memory_url: str | None = None, write: bool = False, create: bool = False):
    from consolidation.lifecycle import open_run_memory

    return open_run_memory(run_dir, memory_url, write, create)


MemoryUrl = typer.Option(None, "--memory-url", help="A Chroma server (http://host:port) instead of the run's memory.")
Status = typer.Option("active", help="active, consolidated, archived, quarantined or all.")
KindFilter = typer.Option(None, "--kind", help="Only this kind: insight or procedure.")
EnvFilter = typer.Option(None, "--env", help="Only this game family, e.g. tw-coin_collector.")
RoundFilter = typer.Option(None, "--round", help="Only items written in this round.")
SupportFilter = typer.Option(None, "--min-support", help="Only items seen at least this often.")


def _print_items(items, as_json: bool, distances=None) -> None:
    if as_json:
        rows = [i.to_dict() | ({"distance": d} if d is not None else {}) for i, d in zip(items, distances or [None] * len(items))]
        print(json.dumps(rows, indent=2))
        return
    table = Table()
    for col in ("id", "kind", "text", "env", "source", "round", "support", "utility", "status"):
        table.add_column(col)
    if distances:
        table.add_column("distance")
    for i, item in enumerate(items):
        status = item.status + (f" ({item.consolidated_in})" if item.consolidated_in else "")
        status += f": {item.reason}" if item.reason else ""
        cells = [item.id, item.kind, item.text, item.env, item.source, str(item.round), str(item.support),
                 _utility(item), status]
        table.add_row(*(shown(c) for c in cells), *([f"{distances[i]:.3f}"] if distances else []))
    console.print(table)


def shown(value) -> Text:
    """Stored data as terminal text: never read as Rich markup, and with escape sequences and control characters
    removed (Rich passes ESC through; items stored by older versions may hold some)."""
    return Text(sanitize(str(value), 100_000))


def _utility(item) -> str:
    return "-" if item.utility is None else f"{item.utility:+.3f} (n={item.utility_n})"


@memory_app.command("list")
def memory_list(run_dir: Path = RunDirOption, status: str = Status, env: Optional[str] = EnvFilter,
                round: Optional[int] = RoundFilter, min_support: Optional[int] = SupportFilter,
                kind: Optional[str] = KindFilter, memory_url: Optional[str] = MemoryUrl, as_json: bool = AsJson):
    """List knowledge items with their kind, support, utility and metadata."""
    with _memory(run_dir, memory_url) as memory:
        _print_items(memory.list(status, env, round, min_support, kind), as_json)


@memory_app.command("search")
def memory_search(text: str, run_dir: Path = RunDirOption, k: int = typer.Option(5, "-k", help="How many items."),
                  status: str = Status, env: Optional[str] = EnvFilter, round: Optional[int] = RoundFilter,
                  min_support: Optional[int] = SupportFilter, kind: Optional[str] = KindFilter,
                  memory_url: Optional[str] = MemoryUrl, as_json: bool = AsJson):
    """Find the items nearest to TEXT."""
    with _memory(run_dir, memory_url) as memory:
        found = memory.search(text, k, status, env, round, min_support, kind)
        _print_items([i for i, _ in found], as_json, [d for _, d in found])


@memory_app.command("show")
def memory_show(item_id: str, run_dir: Path = RunDirOption, memory_url: Optional[str] = MemoryUrl, as_json: bool = AsJson):
    """Show one item and all its metadata."""
    with _memory(run_dir, memory_url) as memory:
        item = memory.get(item_id).to_dict()
    if as_json:
        print(json.dumps(item, indent=2))
    else:
        for key, value in item.items():
            console.print(Text.assemble((key, "bold"), ": ", shown(value)))


@memory_app.command("stats")
def memory_stats(run_dir: Path = RunDirOption, memory_url: Optional[str] = MemoryUrl, as_json: bool = AsJson):
    """Counts by status and by game family."""
    with _memory(run_dir, memory_url) as memory:
        stats = memory.stats()
    if as_json:
        print(json.dumps(stats, indent=2))
        return
    kinds = ", ".join(f"{n} {k}s" for k, n in stats["by_kind"].items())
    utility = stats["utility"]
    measured = (f"utility measured on {utility['measured']} active items, mean {utility['mean']:+.3f}"
                if utility["measured"] else "no utility measured yet")
    console.print(Text(f"memory at {stats['where']}: {stats['items']} items ({kinds}), total support "
                       f"{stats['support']}\n{measured}"))
    table = Table()
    table.add_column("env")
    for status in stats["by_status"]:
        table.add_column(status, justify="right")
    for env, counts in sorted(stats["by_env"].items()):
        table.add_row(shown(env), *map(str, counts.values()))
    table.add_row(Text("all", style="bold"), *map(str, stats["by_status"].values()))
    console.print(table)


@memory_app.command("export")
def memory_export(path: Path, run_dir: Path = RunDirOption, memory_url: Optional[str] = MemoryUrl):
    """Write every item (all statuses, all metadata) to a JSONL file."""
    with _memory(run_dir, memory_url) as memory:
        rows = memory.export()
    write_atomic(path, "".join(json.dumps(row) + "\n" for row in rows))
    console.print(f"exported {len(rows)} items to {path}")


@memory_app.command("import")
def memory_import(path: Path, run_dir: Path = RunDirOption, memory_url: Optional[str] = MemoryUrl):
    """Add the items of a JSONL export, keeping their ids and metadata; ids already present are skipped."""
    rows = read_jsonl(path, missing_ok=False)
    with _memory(run_dir, memory_url, write=True, create=True) as memory:
        added, skipped = memory.import_items(rows)
    console.print(f"imported {added} items, skipped {skipped} already present")


@memory_app.command("delete")
def memory_delete(item_ids: list[str], run_dir: Path = RunDirOption, memory_url: Optional[str] = MemoryUrl,
                  yes: bool = typer.Option(False, "--yes", help="Confirm the hard delete.")):
    """Delete items for good. Prefer `prune`, which archives and can be undone."""
    if not yes:
        raise OELError("delete removes items for good: add --yes to confirm, or use `oel memory prune` to archive")
    with _memory(run_dir, memory_url, write=True) as memory:
        memory.delete(item_ids)
    console.print(f"deleted {len(item_ids)} items")


@memory_app.command("forget")
def memory_forget(item_ids: list[str], run_dir: Path = RunDirOption,
                  reason: str = typer.Option("forgotten", help="Why (recorded in each tainted checkpoint)."),
                  reconsolidate: bool = typer.Option(False, "--reconsolidate",
                                                     help="Consolidate the remaining items again at once."),
                  yes: bool = typer.Option(False, "--yes", help="Forget without asking.")):
    """Take items out of the memory and out of the weights: delete them, taint every checkpoint trained on
    them (the newest untainted one takes over), and give back the other items those absorbed."""
    from consolidation import lifecycle

    require_run(run_dir)
    if not yes:
        if not sys.stdin.isatty():
            raise OELError("forget deletes items and taints the checkpoints trained on them: add --yes to confirm")
        typer.confirm(f"Forget {len(item_ids)} item(s) in {run_dir}, and taint the checkpoints trained on them?",
                      abort=True)
    done = lifecycle.forget_in_run(run_dir, item_ids, reason)
    console.print(f"forgot {len(item_ids)} items; tainted: {', '.join(done['tainted']) or 'none'}; "
                  f"{len(done['restored'])} other items active again; in force: {done['in_force'] or 'the base model'}")
    if reconsolidate and done["tainted"]:
        from consolidation.loop import consolidate_once

        consolidate_once(run_dir, console)


@memory_app.command("prune")
def memory_prune(item_ids: list[str] = typer.Argument(None), run_dir: Path = RunDirOption,
                 env: Optional[str] = EnvFilter, round: Optional[int] = RoundFilter,
                 max_support: Optional[int] = typer.Option(None, help="Archive active items seen at most this often."),
                 memory_url: Optional[str] = MemoryUrl):
    """Archive active items (by id or by filter). They stay stored; `oel memory restore` brings them back."""
    with _memory(run_dir, memory_url, write=True) as memory:
        if item_ids:
            ids = item_ids
        elif env or round is not None or max_support is not None:
            ids = [i.id for i in memory.list("active", env, round)
                   if max_support is None or i.support <= max_support]
        else:
            raise OELError("name item ids, or a filter (--env, --round, --max-support), to prune")
        memory.archive(ids)
    console.print(f"archived {len(ids)} items")


@memory_app.command("restore")
def memory_restore(item_ids: list[str] = typer.Argument(None), run_dir: Path = RunDirOption,
                   checkpoint: Optional[str] = typer.Option(None, help="Reactivate what this checkpoint absorbed."),
                   memory_url: Optional[str] = MemoryUrl):
    """Make items active again: archived or quarantined ones by id, or everything consolidated into --checkpoint."""
    with _memory(run_dir, memory_url, write=True) as memory:
        if checkpoint:
            from consolidation.lifecycle import restore

            ids = restore(memory, checkpoint)
        elif item_ids:
            memory.unarchive(item_ids)
            ids = item_ids
        else:
            raise OELError("name item ids, or --checkpoint VERSION, to restore")
    console.print(f"restored {len(ids)} items")


@checkpoints_app.command("list")
def checkpoints_list(run_dir: Path = RunDirOption, as_json: bool = AsJson):
    """List checkpoint versions with their manifests."""
    from consolidation.checkpoints import Registry

    manifests = Registry(RunDir(require_run(run_dir)).checkpoints).manifests()
    if as_json:
        print(json.dumps(manifests, indent=2))
        return
    table = Table()
    for col in ("version", "parent", "status", "round", "knowledge", "prefixes", "validation before",
                "validation after", "test"):
        table.add_column(col)
    for m in manifests:
        test = m["eval"].get("test")
        table.add_row(m["version"], str(m["parent"]), m["status"], str(m["round"]), str(len(m["knowledge_ids"])),
                      str(m["dataset"]["prefixes"]), f"{m['eval']['before']['success_no_memory']:.1%}",
                      f"{m['eval']['after']['success_no_memory']:.1%}",
                      f"{test['success_no_memory']:.1%}" if test else "-")
    console.print(table)


@checkpoints_app.command("show")
def checkpoints_show(version: str, run_dir: Path = RunDirOption, as_json: bool = AsJson):
    """Show one checkpoint's manifest."""
    from consolidation.checkpoints import Registry

    manifest = Registry(RunDir(require_run(run_dir)).checkpoints).manifest(version)
    if as_json:
        print(json.dumps(manifest, indent=2))
        return
    for key in ("version", "parent", "status", "tainted", "replaces", "round", "base_model", "created_at", "dataset", "eval",
                "gate", "timings"):
        console.print(f"[bold]{key}[/]: {escape(str(manifest.get(key)))}")
    console.print(f"[bold]knowledge_ids[/]: {len(manifest['knowledge_ids'])} items")


@checkpoints_app.command("promote")
def checkpoints_promote(version: str, run_dir: Path = RunDirOption):
    """Make VERSION the policy in force (overriding the gate) and prune the knowledge it absorbed."""
    from consolidation import lifecycle
    from consolidation.checkpoints import Registry
    from memory.store import open_memory
    from oel.config import load_run_config

    registry = Registry(RunDir(run_dir).checkpoints)
    registry.manifest(version)  # an unknown version fails before the memory opens
    with open_memory(load_run_config(run_dir), run_dir) as memory:
        pruned = lifecycle.promote(registry, memory, version)
    console.print(f"{version} promoted; {len(pruned)} items marked consolidated")


@checkpoints_app.command("rollback")
def checkpoints_rollback(run_dir: Path = RunDirOption):
    """Retire the policy in force; its parent takes over and the knowledge it absorbed becomes active again."""
    from consolidation import lifecycle
    from consolidation.checkpoints import Registry
    from memory.store import open_memory
    from oel.config import load_run_config

    registry = Registry(RunDir(run_dir).checkpoints)
    if registry.current() is None:
        raise OELError(f"nothing to roll back in {run_dir}: the base model is in force")
    with open_memory(load_run_config(run_dir), run_dir) as memory:
        current, restored = lifecycle.rollback(registry, memory)
    console.print(f"{current} rolled back; now in force: {registry.current() or 'the base model'}; "
                  f"{len(restored)} items active again")


@games_app.command("make")
def games_make(challenge: str = typer.Argument(..., help="A challenge spec: tw-simple, tw-coin_collector:LEVEL, "
                                               "tw-cooking:recipe=2,take=2,go=6,open, custom:world-size=4,quest-length=4, "
                                               "ta-frozenlake:size=4,holes=3, ta-sokoban:size=7,boxes=2 ... "
                                               "(see agent/challenges.py)."),
               seeds: str = typer.Option("0-9", help="Seeds, e.g. 0-9 or 1,5,7. Same spec and seed, same game."),
               as_json: bool = AsJson):
    """Generate games (deterministic, cached by spec). A seed that gives no game, or the same game as an
    earlier seed, is replaced by the next replacement seed, with a warning."""
    from agent.games import GameSpec, SuiteBook, make_suite, parse_seeds

    numbers = parse_seeds(seeds)
    if any(seed < 0 for seed in numbers):
        raise OELError(f"seeds must be >= 0, got {seeds!r}")
    specs = [GameSpec.parse(challenge, seed) for seed in numbers]
    book = SuiteBook.empty()
    paths = make_suite(specs, desc=challenge, book=book)
    if as_json:
        print(json.dumps({"games": [str(p) for p in paths], "skipped": book.skipped}))
    else:
        for path in paths:
            console.print(shown(str(path)))


@games_app.command("list")
def games_list(as_json: bool = AsJson):
    """List the cached games, and the seeds that gave no game."""
    from agent.games import list_games, list_skipped

    games, skipped = list_games(), list_skipped()
    if as_json:
        print(json.dumps({"games": games, "skipped": skipped}, indent=2))
        return
    table = Table(title=f"{len(games)} cached games")
    for col in ("name", "kind", "file"):
        table.add_column(col)
    for game in games:
        table.add_row(shown(game["name"]), game["kind"], shown(game["file"]))
    console.print(table)
    if skipped:
        table = Table(title=f"{len(skipped)} seeds that gave no game (skipped)")
        table.add_column("name")
        table.add_column("why")
        for row in skipped:
            table.add_row(shown(row["name"]), shown(row["reason"]))
        console.print(table)


def _run_app() -> None:
    """The app, with progress bars cleared when it stops on an error."""
    try:
        app(standalone_mode=False)
    except BaseException:
        _close_progress_bars()
        raise


def _close_progress_bars() -> None:
    """Clear any progress bar still drawn, so an error starts on a line of its own."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def main() -> None:
    """Entry point: one line per user error, no tracebacks.

    typer raises the exceptions of the click it bundles (`typer._click`), not those of the separate `click`
    package; both are caught. A usage error's own `show()` prints the usage and a hint on several lines:
    here it is one line, with where to look.
    """
    from typer._click import exceptions as typer_click

    usage_errors = (click.ClickException, typer_click.ClickException)
    aborted = (click.exceptions.Abort, typer.Abort)
    try:
        _run_app()
    except Interrupted as err:
        print(f"oel: interrupted: {err}", file=sys.stderr)
        sys.exit(130)
    except OELError as err:
        print(f"oel: error: {err}", file=sys.stderr)
        sys.exit(1)
    except (KeyboardInterrupt, *aborted):
        print("oel: interrupted; nothing is lost: run the same command again to go on", file=sys.stderr)
        sys.exit(130)
    except usage_errors as err:
        if type(err).__name__ == "NoArgsIsHelpError":  # `oel` or `oel memory` alone: the help they asked for
            err.show()
            sys.exit(0)
        command = err.ctx.command_path if getattr(err, "ctx", None) else "oel"
        print(f"oel: error: {_one_line(err.format_message())} (see `{command} --help`)", file=sys.stderr)
        sys.exit(err.exit_code)


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    main()
