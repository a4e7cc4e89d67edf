"""Progress bars: the one rule for all long work."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress(iterable=None, *, desc: str, unit: str, total: int | None = None) -> tqdm:
    """A bar that says what it is doing, drawn only on a terminal (`disable=None`): in a pipe, a log or a
    test, stderr then holds nothing but errors, each on its own line. It clears itself when done."""
    return tqdm(iterable, desc=desc, unit=unit, total=total, leave=False, disable=None)


def warn(message: str) -> None:
    """A warning on stderr, on its own line above any progress bar (never appended to a bar's line)."""
    tqdm.write(f"warning: {message}", file=sys.stderr)
