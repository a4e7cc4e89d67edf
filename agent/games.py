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

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from agent.challenges import ARENA_CHALLENGES, KNOWN_CHALLENGES, parse_options, tw_make_args, tw_make_path
from oel.errors import GameNotMade, OELError
from oel.jsonl import open_append, read_jsonl
from oel.progress import progress, warn

TEST_SEED_OFFSET = 10_000
"""Test games keep the seeds the held-out games had before validation was split off, so earlier results
on them stay comparable."""
VALIDATION_SEED_OFFSET = 20_000
OOD_SEED_OFFSET = 50_000
REPLACEMENT_STRIDE = 100_000
"""A game that cannot be made, or that repeats a game already in the run, is replaced by the same spec at
seed + k * REPLACEMENT_STRIDE (k = 1, 2, ...): beyond every split's range, so a replacement is never
another split's game, and the same on every machine."""
MAX_REPLACEMENTS = 20
OPTION_ERRORS = ("AssertionError:", "ValueError:")
"""How tw-make's challenges refuse their arguments (`recipe must have {1,2,3,4,5} ingredients`, `Expected level to
be within [1-300]`), before anything is drawn from the seed. Seed-dependent failures are TextWorld's own exception
classes (`...QuestGenerationError: Current map configuration doesn't permit quest of length`), printed with their
module's name. The same builtin error on two seeds in a row stops the suite at once, naming the options: other
seeds would only print the same warning 20 more times."""
TW_MAKE_TIMEOUT_S = 180


def default_cache_dir() -> Path:
    """Where generated games live, shared across runs (`$OEL_CACHE` or `~/.cache/oel`)."""
    return Path(os.environ.get("OEL_CACHE", Path.home() / ".cache" / "oel")) / "games"


@dataclass(frozen=True)
class GameSpec:
    """One game: a challenge (`agent.challenges`), its options and a seed."""

    challenge: str
    level: int | None
    seed: int
    options: str = ""
    """The checked option set, `key=value,flag,...` sorted by key; empty for a bare name or a level."""

    @classmethod
    def parse(cls, text: str, seed: int) -> GameSpec:
        name, _, rest = text.strip().partition(":")
        if name not in KNOWN_CHALLENGES:
            raise OELError(f"unknown challenge {name!r}; use one of {', '.join(KNOWN_CHALLENGES)}")
        settings = parse_options(name, rest.strip())  # checks every option, whatever the form
        if not rest.strip() or rest.strip().isdigit():
            return cls(name, int(rest) if rest.strip() else None, seed)
        return cls(name, None, seed, options_text(settings))

    @property
    def settings(self) -> tuple[tuple[str, str], ...]:
        """Every option of this game, defaults included."""
        return parse_options(self.challenge, self.options or ("" if self.level is None else str(self.level)))

    @property
    def env_family(self) -> str:
        """Knowledge is shared within a family: the challenge type, whatever its options or seed."""
        return self.challenge

    @property
    def name(self) -> str:
        """The game's file name in the cache: one name per option set and seed (a bare name or a level keeps
        the short form it always had, so cached games stay valid)."""
        middle = f"_l{self.level}" if self.level is not None else f"_{self.options}" if self.options else ""
        return f"{self.challenge}{middle}_s{self.seed}"

    def at_seed(self, seed: int) -> GameSpec:
        return GameSpec(self.challenge, self.level, seed, self.options)

    def tw_make_args(self) -> list[str]:
        return [*tw_make_args(self.challenge, self.settings), "--seed", str(self.seed)]


def options_text(settings: tuple[tuple[str, str], ...]) -> str:
    """`key=value,flag,...`, as a spec writes its options."""
    return ",".join(f"{k}={v}" if v else k for k, v in settings)


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


def split_specs(challenges: list[str], n: int, seed: int, split: str, round: int = 1) -> list[GameSpec]:
    """The `n` games of a split: `train` (of `round`), `validation` or `test` (see the module docstring).
    Each round's train games are fresh seeds; replaying round 1's games (`fresh_games = false`) is the
    loop's rule (`consolidation.loop.prepare_games`), not a seed range."""
    if split == "train":
        return suite_specs(challenges, n, seed + (round - 1) * n)
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
    """Return the game file for a spec, generating it unless it is cached. A spec and seed that give no game
    raise `GameNotMade`, and are remembered in the cache's `skipped.jsonl` so they are not tried again."""
    cache_dir = cache_dir or default_cache_dir()
    arena = spec.challenge in ARENA_CHALLENGES
    path = cache_dir / f"{spec.name}{'.ta' if arena else '.z8'}"
    if path.is_file():
        return path
    for f in (path, path.with_suffix(".json"), path.with_suffix(".ni")):
        if f.exists() and not f.is_file():
            raise OELError(f"{f} is in the game cache but is not a file: move it away, then run again")
    known = {row["name"]: row["reason"] for row in list_skipped(cache_dir)}
    if spec.name in known:
        raise GameNotMade(f"{spec.name} cannot be made: {known[spec.name]}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        if arena:  # a TextArena game is a small JSON spec: env id, settings, seed
            from agent.arena import write_arena_game

            return write_arena_game(spec.challenge, spec.settings, spec.seed, path)
        return _tw_make(spec, path)
    except GameNotMade as err:
        with open_append(cache_dir / "skipped.jsonl") as log:
            log.write(json.dumps({"name": spec.name, "reason": str(err).split(": ", 1)[-1]}) + "\n")
        raise


def _tw_make(spec: GameSpec, path: Path) -> Path:
    tmp = path.parent / f".tmp-{os.getpid()}-{spec.name}"
    tmp.mkdir(exist_ok=True)
    try:
        cmd = [tw_make_path(), *spec.tw_make_args(), "--output", str(tmp / path.name), "-f", "--silent"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=TW_MAKE_TIMEOUT_S)
        except subprocess.TimeoutExpired:  # some large quests search for minutes (treasure hunter 30)
            raise GameNotMade(f"tw-make failed for {spec.name}: no game after {TW_MAKE_TIMEOUT_S} s") from None
        if done.returncode != 0 or not (tmp / path.name).is_file():
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise GameNotMade(f"tw-make failed for {spec.name}: {last[0]}")
        # Move the game and its sidecar files (.json, .ni) into place; the .z8 last, since it marks completion.
        for f in sorted(tmp.iterdir(), key=lambda p: p.suffix == ".z8"):
            os.replace(f, path.parent / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # never left in the cache, whatever happened
    return path


def list_skipped(cache_dir: Path | None = None) -> list[dict]:
    """The specs and seeds that gave no game, with why (`skipped.jsonl` in the cache)."""
    rows = read_jsonl((cache_dir or default_cache_dir()) / "skipped.jsonl")
    return [{"name": str(r.get("name")), "reason": str(r.get("reason"))} for r in rows if isinstance(r, dict)]


def content_key(path: Path) -> str:
    """What makes a game this game, whatever its seed or name: for TextArena the first board, for TextWorld
    the world, quests and objective. Two files with the same key are the same game."""
    if path.suffix == ".ta":
        from agent.arena import board

        text = board(path)
    else:
        sidecar = path.with_suffix(".json")
        try:
            data = json.loads(sidecar.read_text())
            text = json.dumps([data.get(k) for k in ("world", "quests", "infos", "objective")], sort_keys=True)
        except (OSError, ValueError):
            text = path.read_bytes().hex()  # a user's game without TextWorld's sidecar: its bytes
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class SuiteBook:
    """The games a run has made so far, by content, and the seeds it skipped: suites made with one book never
    share a game, and every skip is recorded (`games.json`) and warned about."""

    seen: dict[str, str]
    """content key -> "split: game name" of its first use"""
    skipped: list[dict]

    @classmethod
    def empty(cls) -> SuiteBook:
        return cls({}, [])

    @classmethod
    def holding(cls, games: list[tuple[Path, str]], split: str, skipped: list[dict] | None = None) -> SuiteBook:
        """A book that already holds these (file, family) games, met under `split`."""
        book = cls({}, skipped if skipped is not None else [])
        for path, _ in games:
            if path.is_file():
                book.take(path, split)
        return book

    def take(self, path: Path, split: str) -> str | None:
        """Record a game for `split`; return where it was met before, or None when it is new."""
        key = content_key(path)
        if key in self.seen:
            return self.seen[key]
        self.seen[key] = f"{split}: {path.stem}"
        return None


def make_suite(specs: list[GameSpec], cache_dir: Path | None = None, desc: str = "games",
               book: SuiteBook | None = None) -> list[Path]:
    """Generate (or reuse) every game of a suite, with a progress bar. A spec whose seed gives no game, or a
    game the book already holds (the same board or world under another seed), is replaced by the next
    replacement seed (`REPLACEMENT_STRIDE`), so the suite keeps its size and stays deterministic."""
    book = book or SuiteBook.empty()
    paths = []
    for spec in progress(specs, desc=f"making {desc} games", unit="game"):
        made_any, previous = False, None
        for k in range(MAX_REPLACEMENTS + 1):
            candidate = spec.at_seed(spec.seed + k * REPLACEMENT_STRIDE)
            try:
                path = make_game(candidate, cache_dir)
                made_any = True
                met = book.take(path, desc)
                reason = None if met is None else f"the same game as {met}"
            except GameNotMade as err:
                reason = str(err).split(": ", 1)[-1]
            if reason is None:
                paths.append(path)
                break
            if reason == previous and reason.startswith(OPTION_ERRORS):
                raise OELError(f"tw-make refuses {spec.challenge}:{options_text(spec.settings)}: "
                               f"{reason} (the same on two seeds: change the options)")
            previous = reason
            replacement = spec.seed + (k + 1) * REPLACEMENT_STRIDE
            book.skipped.append({"split": desc, "game": candidate.name, "reason": reason, "replaced_by_seed": replacement})
            warn(f"skipped {candidate.name} ({desc}): {reason}; trying seed {replacement}")
        else:
            if not made_any:  # not a crowded setting: one the generator cannot make at all
                raise OELError(f"no {spec.challenge} game could be made in {MAX_REPLACEMENTS + 1} seeds from "
                               f"{spec.seed}: {reason} (change the options: a larger board or world, fewer boxes "
                               "or a shorter quest)")
            raise OELError(f"no new {spec.challenge} game in {MAX_REPLACEMENTS + 1} seeds from {spec.seed}: "
                           "these options allow few distinct games (a larger board or world gives more)")
    return paths


GAME_SUFFIXES = (".z8", ".z5", ".ulx", ".ta")


def expand_game_files(entries: list[str] | list[Path]) -> list[Path]:
    """The game files that `entries` name: files, directories (the game files in them, sorted) and glob
    patterns (for a pattern the shell did not expand). Something that names no game is an error."""
    import glob

    found: list[Path] = []
    for entry in map(str, entries):
        matches = sorted(glob.glob(os.path.expanduser(entry), recursive=True)) if glob.has_magic(entry) else [entry]
        if not matches:
            raise OELError(f"no game file matches {entry!r}")
        for match in map(Path, matches):
            if match.is_dir():
                inside = sorted(p for p in match.iterdir() if p.suffix in GAME_SUFFIXES and p.is_file())
                if not inside:
                    raise OELError(f"{match} holds no game files ({', '.join(GAME_SUFFIXES)})")
                found += inside
            elif match.is_file():
                found.append(match)
            else:
                raise OELError(f"game file not found: {match}")
    return list(dict.fromkeys(p.resolve() for p in found))


def family_of_file(path: Path) -> str:
    """The family a game file's knowledge is shared in: a TextArena spec names its own; a generated
    TextWorld game its challenge (from its name); any other game the folder it sits in, so a folder of one
    kind of game shares what it teaches."""
    if path.suffix == ".ta":
        try:
            return str(json.loads(path.read_text())["family"])
        except (OSError, ValueError, KeyError, TypeError):
            raise OELError(f"game file {path} is corrupt: not a TextArena spec") from None
    for challenge in KNOWN_CHALLENGES:
        if path.stem.startswith(f"{challenge}_"):
            return challenge
    folder = "".join(c if c.isalnum() or c in "._-" else "-" for c in path.parent.name).strip("-._")[:60]
    return folder or "games"


def user_suite(files: list[Path], n: int, round: int = 1) -> list[tuple[Path, str]]:
    """`n` of the user's game files for a round: round r takes the next `n`, cycling through the list, so
    each round plays fresh games while there are enough."""
    start = (round - 1) * n
    return [(files[(start + i) % len(files)], family_of_file(files[(start + i) % len(files)])) for i in range(n)]
