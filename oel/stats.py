"""The statistics of every success rate the project reports: Wilson intervals, paired outcomes and an exact
McNemar test. The evaluation, the reports and the benches all use these."""

from __future__ import annotations

import math


def wilson(successes: float, n: int, z: float = 1.96) -> list[float]:
    """95% Wilson score interval of a success rate, as [low, high]: exact enough at small n, never outside
    [0, 1], and never of zero width at 0% or 100%."""
    if n == 0:
        return [0.0, 1.0]
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def interval(ci95: float | list[float], success: float) -> list[float]:
    """An interval as [low, high], from a record of either form: runs made before the Wilson interval was
    used everywhere stored a normal-approximation half-width."""
    if isinstance(ci95, (int, float)):
        return [max(0.0, success - ci95), min(1.0, success + ci95)]
    return list(ci95)


def gained_lost(before: list[int], after: list[int]) -> tuple[int, int]:
    """Games the second policy won and the first lost, and the reverse (same games, same order)."""
    return sum(a > b for b, a in zip(before, after)), sum(b > a for b, a in zip(before, after))


def paired_p(before: list[int] | None, after: list[int] | None) -> float | None:
    """Exact two-sided McNemar p-value for two policies scored on the same games (None if not recorded)."""
    if not before or not after or len(before) != len(after):
        return None
    from scipy.stats import binomtest

    gained, lost = gained_lost(before, after)
    return round(binomtest(gained, gained + lost).pvalue, 4) if gained + lost else 1.0
