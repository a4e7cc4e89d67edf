"""Environment adapters behind one small protocol.

reset() -> Observation(text, objective, admissible commands)
step(command) -> Step(text, score, done, won, lost, admissible commands)

`done` is not `won`: a step limit or a lost game is never success. TextWorld's `score` is the running
total, so a command's reward is the change in score.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from oel.errors import OELError
from oel.text import sanitize


@dataclass
class Observation:
    text: str
    objective: str
    admissible: list[str]
    score: int = 0
    max_score: int = 0


@dataclass
class Step:
    text: str
    score: int
    done: bool
    won: bool
    lost: bool
    admissible: list[str] = field(default_factory=list)


class Env(Protocol):
    family: str

    def reset(self) -> Observation: ...

    def step(self, command: str) -> Step: ...


# TextWorld ends feedback with a '>' prompt, sometimes followed by a status bar "-= Room =-score/moves".
_PROMPT_LINE = re.compile(r"^\s*>.*$", re.MULTILINE)


def clean_text(text: str) -> str:
    """Drop TextWorld's '>' prompt and status-bar lines and collapse blank lines."""
    text = _PROMPT_LINE.sub("", text or "")
    return re.sub(r"\n\s*\n+", "\n", text).strip()


MAX_COMMAND_BYTES = 190
"""Jericho's input buffer takes under 198 bytes; over that it cuts the bytes itself, and its warning then
decodes a character cut in half and raises (a 135M model's long response with a non-ASCII character did)."""


def safe_command(command: str) -> str:
    """A command as it may reach a game: a generated response, or one from a LangChain chat model, is
    untrusted. A NUL byte crashed the interpreter (SIGSEGV) and a lone NUL hung it, so control characters
    and escape sequences are stripped, and the length is bounded in UTF-8 bytes at a character's end. Nothing
    left becomes `look`, which only describes the room (the response is still counted as invalid by the graph)."""
    text = sanitize(str(command), MAX_COMMAND_BYTES)
    return text.encode()[:MAX_COMMAND_BYTES].decode("utf-8", "ignore").strip() or "look"


REMAKE = "make it again (`oel games make` for a generated game) or use an undamaged copy of your own"
"""What to do about a corrupt game file: it may be one the cache generated, or a user's own (`oel play --game`)."""


def check_story_file(path: Path) -> None:
    """Reject a corrupt Z-machine file up front.

    TextWorld's interpreter (frotz) calls exit() on a bad story file, or crashes (SIGSEGV) on random bytes
    behind a plausible header, which would kill the whole agent process. So the header is checked first:
    a known version; from version 3 on (every file tw-make writes) a declared length that fits the file
    and a checksum over it that matches; and the addresses of the header's tables inside the file.
    """
    data = path.read_bytes()
    if path.suffix == ".ulx":
        if not data.startswith(b"Glul"):
            raise OELError(f"game file {path} is corrupt: not a Glulx story file")
        return
    if len(data) < 64 or not 1 <= data[0] <= 8:
        raise OELError(f"game file {path} is corrupt: not a Z-machine story file; {REMAKE}")
    version = data[0]
    scale = 2 if version <= 3 else 4 if version <= 5 else 8
    length = int.from_bytes(data[0x1A:0x1C], "big") * scale
    checksum = int.from_bytes(data[0x1C:0x1E], "big")
    word = lambda at: int.from_bytes(data[at:at + 2], "big")  # noqa: E731
    # high memory, initial PC (v1-5), dictionary, objects, globals, static memory: all inside the file
    tables = [word(a) for a in (0x04, 0x08, 0x0A, 0x0C, 0x0E)] + ([word(0x06)] if version <= 5 else [])
    damaged = (version >= 3 and (not length or length > len(data) or sum(data[0x40:length]) % 0x10000 != checksum)
               or any(not 0x40 <= address < len(data) for address in tables))
    if damaged:
        raise OELError(f"game file {path} is corrupt (truncated or damaged); {REMAKE}")


# TextWorld's interpreter keeps global state and breaks when two threads use it at once. Its calls take
# ~2 ms a step (~45 ms a reset) against ~1 s of model work, so concurrent games just take turns here.
_INTERPRETER = threading.RLock()


class TextWorldEnv:
    """A TextWorld game through `textworld.gym`, with admissible commands requested. Thread-safe."""

    def __init__(self, game_file: str | Path, family: str = "textworld", max_steps: int = 100):
        import textworld.gym
        from textworld import EnvInfos

        path = Path(game_file)
        if path.is_dir():
            raise OELError(f"{path} is a directory, not a game file")
        if not path.is_file():
            raise OELError(f"game file not found: {path}")
        check_story_file(path)
        if not path.with_suffix(".json").is_file():  # without it TextWorld knows no valid command
            raise OELError(f"game {path} has no {path.with_suffix('.json').name} beside it (TextWorld reads the valid "
                           "commands from it): copy it from where the game was made, or regenerate the game with tw-make")
        self.family = family
        self.game_file = path
        # TextWorld gathers the description by playing `look` (then restoring the state) at every step, which
        # doubled a step's cost (3.3 against 1.6 ms). Only the first observation needs it: it is asked for
        # around reset alone. Every wrapper of the env holds this same EnvInfos object, so the switch reaches
        # the interpreter.
        self._infos = EnvInfos(admissible_commands=True, objective=True, description=False,
                               won=True, lost=True, score=True, max_score=True)
        try:
            with _INTERPRETER:
                env_id = textworld.gym.register_game(str(path), request_infos=self._infos,
                                                     max_episode_steps=max_steps)
                self._env = textworld.gym.make(env_id)
        except Exception as err:  # textworld raises many types for a bad file
            raise OELError(f"cannot load game file {path}: {type(err).__name__}: {err}") from None

    def reset(self) -> Observation:
        try:
            with _INTERPRETER:
                self._infos.description = True
                try:
                    _, info = self._env.reset()
                finally:
                    self._infos.description = False
        except Exception as err:
            raise OELError(f"cannot start game {self.game_file} (corrupt file?): {type(err).__name__}: {err}") from None
        # The room description, not the reset banner: the banner is ASCII art the model cannot use.
        return Observation(
            text=clean_text(info["description"]),
            objective=clean_text(info["objective"]),
            admissible=_commands(info),
            score=info["score"],
            max_score=info["max_score"],
        )

    def step(self, command: str) -> Step:
        with _INTERPRETER:
            text, score, done, info = self._env.step(safe_command(command))
        return Step(clean_text(text), int(score), bool(done), bool(info["won"]), bool(info["lost"]), _commands(info))

    def close(self) -> None:
        with _INTERPRETER:
            self._env.close()


def _commands(info: dict) -> list[str]:
    # Inventory/look/examine are valid but rarely useful; we keep them, the policy decides.
    return sorted(set(info.get("admissible_commands") or []))
