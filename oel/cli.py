"""The `oel` command line. Every user error is one line on stderr and a non-zero exit code."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Optional

import click
import typer
from rich.console import Console
from rich.table import Table

from oel.config import OELConfig
from oel.errors import OELError

app = typer.Typer(help="Online experiential learning for language-model agents: play, reflect, consolidate.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
memory_app = typer.Typer(help="Inspect the knowledge memory.", no_args_is_help=True)
checkpoints_app = typer.Typer(help="Inspect checkpoints.", no_args_is_help=True)
app.add_typer(memory_app, name="memory")
app.add_typer(checkpoints_app, name="checkpoints")
# Wide enough for the round table when output goes to a file or CI log.
console = Console(width=None if sys.stdout.isatty() else 140)

RunDir = typer.Option(Path("runs/default"), "--run-dir", "-r", help="Run directory: games, memory, checkpoints, reports.")
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
    run_dir: Path = RunDir,
    config: Optional[Path] = ConfigFile,
    rounds: Optional[int] = typer.Option(None, help="Rounds of play, reflect, consolidate (default 2)."),
    model: Optional[str] = typer.Option(None, help="smollm2-135m (embedded), a model directory or a cached hub id."),
    mode: Optional[str] = typer.Option(None, "--mode", help="choose or generate."),
    train_games: Optional[int] = typer.Option(None, help="Train games per round."),
    heldout_games: Optional[int] = typer.Option(None, help="Held-out games for the gate."),
    max_steps: Optional[int] = typer.Option(None, help="Step limit per episode."),
    distill_steps: Optional[int] = typer.Option(None, help="Optimiser steps per consolidation."),
    memory_url: Optional[str] = typer.Option(None, help="Chroma server URL instead of the embedded memory."),
):
    """Run the online learning loop: play, reflect, consolidate, gate, prune; repeat."""
    cfg = load_config(config, rounds=rounds, model=model, action_mode=mode, train_games=train_games,
                      heldout_games=heldout_games, max_steps=max_steps, distill_steps=distill_steps,
                      memory_url=memory_url)
    _quiet()
    from consolidation.loop import run_loop

    run_loop(cfg, run_dir, console)


@app.command()
def play(
    run_dir: Path = RunDir,
    config: Optional[Path] = ConfigFile,
    games: int = typer.Option(4, "--games", help="How many train games to play."),
    model: Optional[str] = typer.Option(None, help="Model to play with."),
    mode: Optional[str] = typer.Option(None, "--mode", help="choose or generate."),
    reflect: bool = typer.Option(True, help="Write knowledge into the memory after each game."),
):
    """Play train games with the current policy, log trajectories and reflect into memory."""
    cfg = load_config(config, model=model, action_mode=mode, train_games=games)
    _quiet()
    from agent.rollout import play_games
    from consolidation.checkpoints import Registry
    from consolidation.loop import load_policy, open_memory, prepare_games, prepare_run_dir
    from memory.reflection import make_reflector

    prepare_run_dir(cfg, run_dir)
    train, _ = prepare_games(cfg, run_dir)
    registry = Registry(run_dir / "checkpoints")
    policy = load_policy(cfg, registry, registry.current())
    with open_memory(cfg, run_dir) as memory:
        reflector = make_reflector(policy, memory, cfg, policy.name) if reflect else None
        episodes = play_games(policy, train, cfg, run_dir / "trajectories" / "play.jsonl", round=-1, reflect=reflector)
        for e in episodes:
            console.print(f"{Path(e['game']).name}: {e['outcome']} in {e['steps']} steps, score {e['score']}/{e['max_score']}")
        console.print(f"won {sum(e['won'] for e in episodes)}/{len(episodes)}; memory: {memory.count('active')} active items")


@app.command()
def report(run_dir: Path = RunDir):
    """Print the per-round table and write the PNG learning curve."""
    from consolidation.report import print_report

    if print_report(run_dir, console) is None:
        raise OELError(f"no rounds recorded in {run_dir}: run `oel loop --run-dir {run_dir}` first")


def _memory(run_dir: Path):
    from consolidation.loop import open_memory

    cfg_path = run_dir / "config.json"
    cfg = OELConfig.from_file(cfg_path) if cfg_path.is_file() else OELConfig()
    return open_memory(cfg, run_dir, read_only=True)


def _print_items(items, as_json: bool, distances=None) -> None:
    if as_json:
        rows = [i.to_dict() | ({"distance": d} if d is not None else {}) for i, d in zip(items, distances or [None] * len(items))]
        print(json.dumps(rows, indent=2))
        return
    table = Table()
    for col in ("id", "text", "env", "source", "round", "support", "status"):
        table.add_column(col)
    if distances:
        table.add_column("distance")
    for i, item in enumerate(items):
        cells = [item.id, item.text, item.env, item.source, str(item.round), str(item.support),
                 item.status + (f" ({item.consolidated_in})" if item.consolidated_in else "")]
        table.add_row(*cells, *([f"{distances[i]:.3f}"] if distances else []))
    console.print(table)


@memory_app.command("list")
def memory_list(run_dir: Path = RunDir, status: str = typer.Option("active", help="active, consolidated, archived or all."),
                env: Optional[str] = typer.Option(None, help="Only this game family."), as_json: bool = AsJson):
    """List knowledge items with their metadata."""
    with _memory(run_dir) as memory:
        _print_items(memory.list(status, env), as_json)


@memory_app.command("search")
def memory_search(text: str, run_dir: Path = RunDir, k: int = typer.Option(5, "-k", help="How many items."),
                  status: str = typer.Option("active", help="active, consolidated, archived or all."),
                  env: Optional[str] = typer.Option(None), as_json: bool = AsJson):
    """Find the items nearest to TEXT."""
    with _memory(run_dir) as memory:
        found = memory.search(text, k, status, env)
        _print_items([i for i, _ in found], as_json, [d for _, d in found])


@checkpoints_app.command("list")
def checkpoints_list(run_dir: Path = RunDir, as_json: bool = AsJson):
    """List checkpoint versions with their manifests."""
    from consolidation.checkpoints import Registry

    manifests = Registry(run_dir / "checkpoints").manifests()
    if as_json:
        print(json.dumps(manifests, indent=2))
        return
    table = Table()
    for col in ("version", "parent", "status", "round", "knowledge", "prefixes", "success before", "success after"):
        table.add_column(col)
    for m in manifests:
        table.add_row(m["version"], str(m["parent"]), m["status"], str(m["round"]), str(len(m["knowledge_ids"])),
                      str(m["dataset"]["prefixes"]), f"{m['eval']['before']['success_no_memory']:.1%}",
                      f"{m['eval']['after']['success_no_memory']:.1%}")
    console.print(table)


def main() -> None:
    """Entry point: one line per user error, no tracebacks."""
    try:
        app(standalone_mode=False)
    except OELError as err:
        print(f"oel: error: {err}", file=sys.stderr)
        sys.exit(1)
    except click.exceptions.Abort:
        print("oel: aborted", file=sys.stderr)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
