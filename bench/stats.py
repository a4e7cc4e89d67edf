"""The statistics every bench reports: Wilson intervals, paired outcomes and an exact McNemar test."""

from __future__ import annotations

import math


def wilson(successes: float, n: int, z: float = 1.96) -> list[float]:
    """95% Wilson score interval of a success rate, as [low, high]."""
    if n == 0:
        return [0.0, 1.0]
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


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


def summary(e: dict) -> dict:
    """What the bench keeps of an evaluation (`consolidation.evaluate.evaluate`): success with its Wilson
    interval, costs, and the per-game outcomes for paired tests."""
    return {"success": e["success"], "n_games": e["n_games"], "ci95": wilson(e["success"] * e["n_games"], e["n_games"]),
            "steps": e["steps"], "tokens_per_episode": e["tokens_per_episode"], "wins": e["wins"]}


def pct(x: float | None, ci: list[float] | None = None) -> str:
    if x is None:
        return "-"
    return f"{x:.0%}" + (f" [{ci[0]:.0%}, {ci[1]:.0%}]" if ci else "")
