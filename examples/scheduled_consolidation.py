"""Consolidate a run's memory into its policy on a schedule, from Python.

Run after `make demo`:  .venv/bin/python examples/scheduled_consolidation.py [runs/demo]

This tries a consolidation every 10 minutes, twice, then stops. Each attempt is idempotent and locked,
and a failed attempt does not stop the schedule. In production use `oel schedule` or cron/systemd
(docs/SCHEDULING.md).
"""

import sys

import oel  # noqa: F401  (offline settings)
from consolidation.schedule import run_schedule
from oel.errors import one_line_errors

if __name__ == "__main__":
    with one_line_errors():
        failures = run_schedule(sys.argv[1] if len(sys.argv) > 1 else "runs/demo", every="10m", max_runs=2)
        print(f"done, {failures} failed attempts")
