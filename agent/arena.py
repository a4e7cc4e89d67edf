"""TextArena single-player games (FrozenLake, Sokoban) behind the same Env protocol as TextWorld.

A TextArena "game file" is a small JSON spec (`<name>.ta`: env id, settings, seed) written by the game
suite, so TextArena games are cached, listed and split exactly like TextWorld ones.

Success is TextArena's own verdict: a reward of 1 with the game over (goal reached / puzzle solved).
Falling in a hole or running out of turns is a loss, whatever partial reward it earns.

**Which moves are offered.** TextArena ends a game on a move into a wall: most FrozenLake and Sokoban losses
were such bumps within 1-4 moves, a way to lose that the board already rules out. So the admissible
commands are the *legal* moves, computed from the board: on FrozenLake the moves that stay on the grid, on
Sokoban those that neither walk into a wall nor push a box into a wall or another box. In choose mode a
wall is then never offered; in generate mode a response naming an illegal move matches no admissible
command and counts as invalid, as the method counts it (it is still sent to the game, which ends it).
"""

from __future__ import annotations

import json
from pathlib import Path

from agent.envs import Observation, Step, safe_command
from oel.errors import GameNotMade, OELError

ARENA_GAMES = {"ta-frozenlake": "FrozenLake-v0-raw", "ta-sokoban": "Sokoban-v0-raw"}
ARENA_OPTIONS = {
    # The paper's settings are the defaults: FrozenLake 3x3 with 2 holes, start and goal in fixed corners;
    # Sokoban 6x6 with 1 box and 30 turns. A 3x3 lake has only 19 distinct boards (bench/boards.py): suites of dozens of
    # distinct games need `size=4` or more.
    "ta-frozenlake": {"size": 3, "holes": 2},
    "ta-sokoban": {"size": 6, "boxes": 1, "max-turns": 30},
}
MOVES = ["[up]", "[down]", "[left]", "[right]"]
MAKE_ROOM_ROUNDS = 1
"""How many rounds of 1000 rooms TextArena's Sokoban may try when a *new* game is made (its own default is 50,
at about half a second a round). Every board our benches and tests use came from the first round (bench
settings up to 8x8 with 3 boxes need at most 52 rooms), so one round makes the same boards, and a setting
no seed can make fails in about 0.5 s a seed instead of 25 s. A game file that exists is played with
TextArena's default, so a board made before this limit still opens."""


def arena_settings(family: str, options: dict[str, str] | tuple = ()) -> dict:
    """TextArena's constructor settings for a family's checked options (defaults in `ARENA_OPTIONS`).
    Out-of-range values are refused here: TextArena would otherwise quietly change them (a lake with too
    many holes gets fewer)."""
    values = {**ARENA_OPTIONS[family], **{k: int(v) for k, v in dict(options).items()}}
    if family == "ta-frozenlake":
        size, holes = values["size"], values["holes"]
        if not 2 <= size <= 12:
            raise OELError(f"ta-frozenlake size must be 2 to 12, got {size}")
        if not 0 <= holes <= size * size - 3:  # start and goal are never holes, and one more cell stays free
            raise OELError(f"ta-frozenlake with size={size} takes 0 to {size * size - 3} holes, got {holes}")
        return {"size": size, "num_holes": holes, "randomize_start_goal": False}
    size, boxes, turns = values["size"], values["boxes"], values["max-turns"]
    if not 5 <= size <= 12:
        raise OELError(f"ta-sokoban size must be 5 to 12, got {size}")
    if not 1 <= boxes <= 4:
        raise OELError(f"ta-sokoban takes 1 to 4 boxes, got {boxes}")
    if turns < 1:
        raise OELError(f"ta-sokoban max-turns must be positive, got {turns}")
    return {"dim_room": [size, size], "num_boxes": boxes, "max_turns": turns}


def write_arena_game(family: str, options: tuple, seed: int, path: Path) -> Path:
    """Write the game's spec and return its path; a board TextArena cannot generate raises `OELError`."""
    settings = arena_settings(family, options)
    game = {"family": family, "env_id": ARENA_GAMES[family], "settings": settings, "seed": seed}
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(json.dumps(game))
    try:
        # TextArena may fail to generate a room for some seeds: such a game is never cached.
        board(tmp, path.stem, rounds=MAKE_ROOM_ROUNDS)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def board(game_file: Path, name: str | None = None, rounds: int | None = None) -> str:
    """The game's first board, as the player sees it: two game files with the same board are the same game.
    `rounds` limits Sokoban's room generation (`MAKE_ROOM_ROUNDS`); None keeps TextArena's default."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # TextArena prints warnings on stdout
        try:
            return TextArenaEnv(game_file, room_rounds=rounds).reset().text
        except OELError:
            raise
        except Exception as err:  # noqa: BLE001 - whatever the generator raises, this board cannot be made
            raise GameNotMade(f"TextArena cannot make {name or game_file.stem}: {type(err).__name__}: {err}") from None


class TextArenaEnv:
    def __init__(self, game_file: str | Path, family: str | None = None, max_steps: int = 100,
                 room_rounds: int | None = None):
        import textarena as ta

        path = Path(game_file)
        if not path.is_file():
            raise OELError(f"game file not found: {path}")
        try:
            spec = json.loads(path.read_text())
            settings = dict(spec["settings"])
            if "dim_room" in settings:
                settings["dim_room"] = tuple(settings["dim_room"])
            self._env = ta.make(spec["env_id"], **settings)
            self.seed = int(spec["seed"])
        except (ValueError, KeyError, TypeError) as err:
            raise OELError(f"game file {path} is corrupt: {type(err).__name__}: {err}") from None
        self.family = family or spec["family"]
        self.game_file = path
        self._objective = ""
        self._reset_options = {} if room_rounds is None or "dim_room" not in settings else {"max_retries": room_rounds}

    def reset(self) -> Observation:
        self._env.reset(num_players=1, seed=self.seed, **self._reset_options)
        _, messages = self._env.get_observation()
        texts = [m[1] if isinstance(m, tuple) else str(m) for m in messages]
        # The first message is the game's instructions (our objective); the last is the current board.
        self._objective = texts[0].strip() if texts else ""
        board = texts[-1].strip() if len(texts) > 1 else ""
        return Observation(text=board, objective=self._objective, admissible=self.legal_moves())

    def legal_moves(self) -> list[str]:
        """The moves the board allows now (module docstring); every move for a game this does not know."""
        env = self._env
        if hasattr(env, "_would_collide_with_wall"):  # Sokoban
            return [m for m in MOVES if not env._would_collide_with_wall(m.strip("[]"))]
        if hasattr(env, "size") and "player_pos" in getattr(getattr(env, "state", None), "game_state", {}):
            row, col = env.state.game_state["player_pos"]  # FrozenLake
            steps = {"[up]": (-1, 0), "[down]": (1, 0), "[left]": (0, -1), "[right]": (0, 1)}
            return [m for m, (dr, dc) in steps.items() if 0 <= row + dr < env.size and 0 <= col + dc < env.size]
        return list(MOVES)

    def step(self, command: str) -> Step:
        done, _ = self._env.step(safe_command(command))
        text = ""
        if not done:
            _, messages = self._env.get_observation()
            # Skip the echo of our own command; keep the game's reply and the new board.
            text = "\n".join(m[1] for m in messages if isinstance(m, tuple) and _kind(m) != "PLAYER_ACTION").strip()
            return Step(text, 0, False, False, False, self.legal_moves())
        rewards, info = self._env.close()
        reward = float(rewards.get(0, 0)) if isinstance(rewards, dict) else 0.0
        reason = info.get(0, {}).get("reason", "") if isinstance(info, dict) else ""
        won = reward >= 1.0
        return Step(reason or text, int(won), True, won, not won, [])

    def close(self) -> None:
        pass


def _kind(message: tuple) -> str:
    return getattr(message[2], "name", str(message[2])) if len(message) > 2 else ""


def open_env(game_file: str | Path, family: str, max_steps: int):
    """The right adapter for a game file: `.ta` specs are TextArena, anything else is TextWorld."""
    from agent.envs import TextWorldEnv

    if Path(game_file).suffix == ".ta":
        return TextArenaEnv(game_file, family, max_steps)
    return TextWorldEnv(game_file, family=family, max_steps=max_steps)
