"""Progress bars: the one rule for all long work."""

from __future__ import annotations

from tqdm import tqdm


def progress(iterable=None, *, desc: str, unit: str, total: int | None = None) -> tqdm:
    """A bar that says what it is doing, drawn only on a terminal (`disable=None`): in a pipe, a log or a
    test, stderr then holds nothing but errors, each on its own line. It clears itself when done."""
    return tqdm(iterable, desc=desc, unit=unit, total=total, leave=False, disable=None)
