"""Run consolidation on a schedule with APScheduler: a cron expression, an interval, or a memory-size trigger.

Each attempt is `consolidate_once`, which is idempotent and locked, so overlapping triggers and reruns are
safe. A failed attempt is reported and the schedule keeps going; a crash of one run never stops it.
For production, prefer the system's own scheduler calling `oel consolidate` (see docs/SCHEDULING.md).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

from rich.console import Console

from oel.errors import OELError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


MAX_SECONDS = 365 * 86400


def parse_duration(text: str) -> int:
    """'30s', '15m', '6h', '1d' -> seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text or "")
    if not match or int(match.group(1)) == 0:
        raise OELError(f"duration {text!r} must look like 30s, 15m, 6h or 1d")
    seconds = int(match.group(1)) * UNITS[match.group(2)]
    if seconds > MAX_SECONDS:  # beyond what a datetime can add (it overflowed in APScheduler)
        raise OELError(f"duration {text!r} is longer than a year; use at most 365d")
    return seconds


def run_schedule(run_dir: str | Path, *, cron: str | None = None, every: str | None = None,
                 when_items: int | None = None, check_every: str = "60s", max_runs: int | None = None,
                 console: Console | None = None) -> int:
    """Block and consolidate on the trigger until interrupted or `max_runs` attempts. Returns failures."""
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    from consolidation.loop import consolidate_once
    from memory.store import open_memory
    from oel.config import load_run_config

    console = console or Console()
    run_dir = Path(run_dir)
    load_run_config(run_dir)  # fail now, not at the first trigger, if this is no run directory
    if sum(x is not None for x in (cron, every, when_items)) != 1:
        raise OELError("give exactly one of --cron EXPR, --every DURATION or --when-items N")
    if cron is not None:
        try:
            trigger, what = CronTrigger.from_crontab(cron), f"cron '{cron}'"
        except ValueError as err:
            raise OELError(f"bad cron expression {cron!r}: {err}") from None
    elif every is not None:
        trigger, what = IntervalTrigger(seconds=parse_duration(every)), f"every {every}"
    else:
        if when_items < 1:
            raise OELError("--when-items must be at least 1")
        trigger, what = IntervalTrigger(seconds=parse_duration(check_every)), f"when >= {when_items} active items"

    attempts, failures, finished = 0, 0, threading.Event()

    def job() -> None:
        nonlocal attempts, failures
        if when_items is not None:
            with open_memory(load_run_config(run_dir), run_dir, read_only=True) as memory:
                if memory.count("active") < when_items:
                    return
        attempts += 1
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            manifest = consolidate_once(run_dir, console)
            verdict = f"{manifest['version']} {manifest['status']}" if manifest else "nothing to do"
            console.print(f"[{stamp}] consolidation {attempts}: {verdict}")
        except Exception as err:  # the schedule survives a failed run
            failures += 1
            console.print(f"[{stamp}] consolidation {attempts} failed: {type(err).__name__}: {err}")
        if max_runs is not None and attempts >= max_runs:
            finished.set()

    scheduler = BackgroundScheduler()
    # max_instances=1 and coalesce: a slow consolidation is never run twice at once, missed runs merge.
    scheduler.add_job(job, trigger, max_instances=1, coalesce=True, next_run_time=None if cron else _now())
    scheduler.start()
    console.print(f"consolidating {run_dir} {what}; Ctrl-C to stop")
    try:
        while not finished.wait(1.0):
            pass
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        scheduler.shutdown(wait=True)
    return failures


def _now():
    from datetime import datetime

    return datetime.now()
