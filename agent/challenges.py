"""Challenge specs: the text that names a kind of game, and what `tw-make` or TextArena is given for it.

A spec is `name`, `name:LEVEL` or `name:option=value,flag,...`:
- `tw-cooking:recipe=2,take=2,go=6,open`, `custom:world-size=4,nb-objects=8,quest-length=4`,
  `tw-simple:rewards=sparse,goal=brief`, `ta-frozenlake:size=4,holes=3`, `ta-sokoban:size=7,boxes=2`.
- TextWorld options are `tw-make`'s own, read from its argument parser, so every option it takes for a
  challenge is accepted (without the leading `--`; `_` and `-` are the same) and nothing else is. Flags
  (`open`, `cook`, `include-adj`...) stand alone. TextArena options are listed in `agent.arena.ARENA_OPTIONS`.
- `name:LEVEL` is shorthand: `level=LEVEL` for coin collector and treasure hunter, `recipe=LEVEL,take=LEVEL`
  for cooking, `size=LEVEL` for the TextArena boards. tw-simple and custom have no level.
- A bare `name`, and any option left out, take this project's defaults (`DEFAULTS`: the settings the
  project always used, e.g. tw-simple with dense rewards and a detailed goal), then tw-make's own.

Values are checked against the option's type and choices, and may only hold letters, digits, `.`, `_`
and `-`: a spec names a file in the game cache, and must never name one outside it.
"""

from __future__ import annotations

import re
import runpy
import shutil
import sys
from functools import lru_cache
from pathlib import Path

from oel.errors import OELError

TEXTWORLD_CHALLENGES = ("tw-simple", "tw-coin_collector", "tw-treasure_hunter", "tw-cooking", "custom")
ARENA_CHALLENGES = ("ta-frozenlake", "ta-sokoban")
KNOWN_CHALLENGES = TEXTWORLD_CHALLENGES + ARENA_CHALLENGES
DEFAULTS: dict[str, dict[str, str]] = {
    "tw-simple": {"rewards": "dense", "goal": "detailed"},
    "tw-coin_collector": {"level": "1"},
    "tw-treasure_hunter": {"level": "1"},
    "tw-cooking": {"recipe": "1", "take": "1", "go": "1"},
}
LEVEL_MEANS = {"tw-coin_collector": ("level",), "tw-treasure_hunter": ("level",), "tw-cooking": ("recipe", "take"),
               "ta-frozenlake": ("size",), "ta-sokoban": ("size",)}
TW_MAKE_GENERAL = {"output", "seed", "format", "overview", "save-overview", "force", "silent", "verbose",
                   "third-party", "help"}
"""tw-make settings that are not the game's: where it is written, its seed (the spec's own), logging."""
VALUE = re.compile(r"[A-Za-z0-9._-]+")


def tw_make_path() -> str:
    found = shutil.which("tw-make", path=str(Path(sys.executable).parent)) or shutil.which("tw-make")
    if found is None:
        raise OELError("tw-make not found: install textworld (make setup)")
    return found


@lru_cache(maxsize=1)
def tw_make_options() -> dict[str, dict]:
    """challenge -> {option: argparse action}, from the parser tw-make itself builds (its script defines
    `build_parser`; running it under another name defines without making anything)."""
    build_parser = runpy.run_path(tw_make_path(), run_name="tw_make_options")["build_parser"]
    _, custom, challenge_parsers = build_parser(default_parser_only=False)
    options = {}
    for parser in [custom, *challenge_parsers]:
        actions = {max(a.option_strings, key=len).lstrip("-"): a for a in parser._actions if a.option_strings}
        options[parser.prog.split()[-1]] = {k: a for k, a in actions.items() if k not in TW_MAKE_GENERAL}
    return options


def parse_options(name: str, text: str) -> tuple[tuple[str, str], ...]:
    """The full, checked option set of a spec's `text` after the colon (module docstring), sorted by name."""
    if text.isdigit():
        if name not in LEVEL_MEANS:
            raise OELError(f"{name} has no level; give options instead, e.g. {_example(name)}")
        given = {key: text for key in LEVEL_MEANS[name]}
    else:
        given = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, eq, value = part.partition("=")
            key = key.strip().replace("_", "-")
            if key in given:
                raise OELError(f"challenge {name}: option {key!r} is given twice")
            given[key] = value.strip() if eq else True
    options = {**_defaults(name), **given}
    if (not text or text.isdigit()) and name not in ARENA_CHALLENGES:
        # Only this project's own defaults and level options, known to be tw-make's: no need to load its
        # parser (which imports TextWorld, ~1 s) for every config that names challenges the usual way.
        return tuple(sorted(options.items()))
    checked = _check_arena(name, options) if name in ARENA_CHALLENGES else _check_textworld(name, options)
    return tuple(sorted(checked.items()))


def _defaults(name: str) -> dict[str, str]:
    if name in ARENA_CHALLENGES:
        from agent.arena import ARENA_OPTIONS

        return {k: str(v) for k, v in ARENA_OPTIONS[name].items()}
    return DEFAULTS.get(name, {})


def _check_textworld(name: str, options: dict) -> dict[str, str]:
    known = tw_make_options().get(name)
    if known is None:
        raise OELError(f"tw-make has no challenge {name!r}")
    checked = {}
    for key, value in options.items():
        action = known.get(key)
        if action is None:
            raise OELError(f"{name} has no option {key!r}; its options: {', '.join(sorted(known))}")
        if action.nargs == 0:  # a flag: present or not
            if value is not True:
                raise OELError(f"{name} option {key!r} is a flag: write `{key}` alone, without a value")
            checked[key] = ""
            continue
        checked[key] = _value(name, key, value, action.type or str, action.choices)
    missing = [k for k, a in known.items() if a.required and k not in checked]
    if missing:
        raise OELError(f"{name} needs {', '.join(f'{k}=...' for k in missing)}")
    return checked


def _check_arena(name: str, options: dict) -> dict[str, str]:
    from agent.arena import ARENA_OPTIONS

    known = ARENA_OPTIONS[name]
    checked = {}
    for key, value in options.items():
        if key not in known:
            raise OELError(f"{name} has no option {key!r}; its options: {', '.join(sorted(known))}")
        checked[key] = _value(name, key, value, int, None)
    from agent.arena import arena_settings

    arena_settings(name, checked)  # ranges
    return checked


def _value(name: str, key: str, value, kind, choices) -> str:
    if value is True or not VALUE.fullmatch(value):
        raise OELError(f"{name} option {key!r} needs a value of letters, digits, '.', '_' or '-', e.g. {key}=2")
    try:
        typed = kind(value)
    except (TypeError, ValueError):
        raise OELError(f"{name} option {key}={value!r} must be of type {getattr(kind, '__name__', kind)}") from None
    if choices is not None and typed not in choices:
        raise OELError(f"{name} option {key}={value} must be one of {', '.join(map(str, choices))}")
    return str(typed)


def tw_make_args(name: str, options: tuple[tuple[str, str], ...]) -> list[str]:
    """`tw-make` arguments for a TextWorld challenge with its checked options (no seed, no output)."""
    args = [name]
    for key, value in options:
        args += [f"--{key}"] + ([value] if value else [])
    return args


def _example(name: str) -> str:
    return {"tw-simple": "tw-simple:rewards=sparse,goal=brief",
            "custom": "custom:world-size=4,nb-objects=8,quest-length=4"}.get(name, f"{name}:level=2")
