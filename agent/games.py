"""Seeded TextWorld game suites, generated once with `tw-make` and cached on disk.

A game is named by its spec, `challenge[:level]` plus a seed, so the same spec always gives the same
file. The seed ranges never overlap, so no game is in two sets (`split_specs` is the one home of this
arithmetic):
- train: round r plays seeds from `seed + (r-1) * n` (fresh games every round), or from `seed` every
  round when fresh games are off;
- test, which reports use and nothing is decided on: from `seed + TEST_SEED_OFFSET`;
- validation, which the gate decides on: from `seed + VALIDATION_SEED_OFFSET`;
- out of distribution (`ood_specs`), whole challenge types never trained on: from `seed + OOD_SEED_OFFSET`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from oel.progress import progress

from oel.errors import OELError

TEST_SEED_OFFSET = 10_000
"""Test games keep the seeds the held-out games had before validation was split off, so earlier results
on them stay comparable."""
VALIDATION_SEED_OFFSET = 20_000
OOD_SEED_OFFSET = 50_000
TEXTWORLD_CHALLENGES = ("tw-simple", "tw-coin_collector", "tw-treasure_hunter", "tw-cooking")
ARENA_CHALLENGES = ("ta-frozenlake", "ta-sokoban")
KNOWN_CHALLENGES = TEXTWORLD_CHALLENGES + ARENA_CHALLENGES


def default_cache_dir() -> Path:
    """Where generated games live, shared across runs (`$OEL_CACHE` or `~/.cache/oel`)."""
    return Path(os.environ.get("OEL_CACHE", Path.home() / ".cache" / "oel")) / "games"


@dataclass(frozen=True)
class GameSpec:
    challenge: str
    level: int | None
    seed: int

    @classmethod
    def parse(cls, text: str, seed: int) -> GameSpec:
        name, _, level = text.partition(":")
        if name not in KNOWN_CHALLENGES:
            raise OELError(f"unknown challenge {name!r}; use one of {', '.join(KNOWN_CHALLENGES)}")
        if level and not level.isdigit():
            raise OELError(f"challenge level must be a number, got {text!r}")
        return cls(name, int(level) if level else None, seed)

    @property
    def env_family(self) -> str:
        """Knowledge is shared within a family: the challenge type, whatever its level or seed."""
        return self.challenge

    @property
    def name(self) -> str:
        level = f"_l{self.level}" if self.level is not None else ""
        return f"{self.challenge}{level}_s{self.seed}"

    def tw_make_args(self) -> list[str]:
        if self.challenge == "tw-simple":
            return ["tw-simple", "--rewards", "dense", "--goal", "detailed", "--seed", str(self.seed)]
        if self.challenge == "tw-cooking":
            level = self.level or 1
            return ["tw-cooking", "--recipe", str(level), "--take", str(level), "--go", "1", "--seed", str(self.seed)]
        return [self.challenge, "--level", str(self.level or 1), "--seed", str(self.seed)]


def parse_seeds(text: str) -> list[int]:
    """'0-9' -> 0..9; '1,5,7' -> [1, 5, 7]; '3' -> [3]."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            seeds += list(range(int(low), int(high) + 1)) if high else [int(low)]
    except ValueError:
        raise OELError(f"seeds {text!r} must look like 0-9 or 1,5,7") from None
    return seeds


def list_games(cache_dir: Path | None = None) -> list[dict]:
    """Every cached game: its name, kind and file."""
    cache_dir = cache_dir or default_cache_dir()
    if not cache_dir.is_dir():
        return []
    return [{"name": p.stem, "kind": "textarena" if p.suffix == ".ta" else "textworld", "file": str(p),
             "bytes": p.stat().st_size} for p in sorted(cache_dir.glob("*")) if p.suffix in (".z8", ".ulx", ".ta")]


def suite_specs(challenges: list[str], n: int, first_seed: int) -> list[GameSpec]:
    """`n` games cycling through the challenges, one seed each."""
    return [GameSpec.parse(challenges[i % len(challenges)], first_seed + i) for i in range(n)]


def split_specs(challenges: list[str], n: int, seed: int, split: str, round: int = 1,
                fresh: bool = True) -> list[GameSpec]:
    """The `n` games of a split: `train` (of `round`), `validation` or `test` (see the module docstring)."""
    if split == "train":
        return suite_specs(challenges, n, seed + (round - 1) * n if fresh else seed)
    offsets = {"test": TEST_SEED_OFFSET, "validation": VALIDATION_SEED_OFFSET}
    if split not in offsets:
        raise OELError(f"unknown game split {split!r}; use train, validation or test")
    return suite_specs(challenges, n, seed + offsets[split])


def ood_specs(challenges: list[str], trained: list[str], n: int, seed: int) -> list[GameSpec]:
    """`n` games of challenge types that are never trained on (`trained` lists the training challenges)."""
    specs = suite_specs(challenges, n, seed + OOD_SEED_OFFSET)
    seen = {GameSpec.parse(c, 0).env_family for c in trained}
    overlap = sorted({s.env_family for s in specs} & seen)
    if overlap:
        raise OELError(f"out-of-distribution challenges must not be trained on: {', '.join(overlap)} is in both")
    return specs


def make_game(spec: GameSpec, cache_dir: Path | None = None) -> Path:
    """Return the `.z8` file for a spec, generating it with `tw-make` unless it is cached."""
    cache_dir = cache_dir or default_cache_dir()
    if spec.challenge in ARENA_CHALLENGES:  # a TextArena game is a small JSON spec: env id, settings, seed
        from agent.arena import write_arena_game

        cache_dir.mkdir(parents=True, exist_ok=True)
        path = cache_dir / f"{spec.name}.ta"
        return path if path.is_file() else write_arena_game(spec.challenge, spec.seed, path)
    path = cache_dir / f"{spec.name}.z8"
    if path.is_file():
        return path
    for f in (path, path.with_suffix(".json"), path.with_suffix(".ni")):
        if f.exists() and not f.is_file():
            raise OELError(f"{f} is in the game cache but is not a file: move it away, then run again")
    tw_make = shutil.which("tw-make", path=str(Path(sys.executable).parent)) or shutil.which("tw-make")
    if tw_make is None:
        raise OELError("tw-make not found: install textworld (make setup)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".tmp-{os.getpid()}-{spec.name}"
    tmp.mkdir(exist_ok=True)
    try:
        cmd = [tw_make, *spec.tw_make_args(), "--output", str(tmp / f"{spec.name}.z8"), "-f", "--silent"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise OELError(f"tw-make failed for {spec.name}: {last[0]}")
        # Move the game and its sidecar files (.json, .ni) into place; the .z8 last, since it marks completion.
        for f in sorted(tmp.iterdir(), key=lambda p: p.suffix == ".z8"):
            os.replace(f, cache_dir / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # never left in the cache, whatever happened
    return path


def make_suite(specs: list[GameSpec], cache_dir: Path | None = None, desc: str = "games") -> list[Path]:
    """Generate (or reuse) every game of a suite, with a progress bar."""
    return [make_game(s, cache_dir) for s in progress(specs, desc=f"tw-make {desc}", unit="game")]
