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
from oel.errors import OELError

# The paper's settings: FrozenLake 3x3 with 2 holes and a fixed start and goal; Sokoban 6x6 with 1 box.
ARENA_GAMES = {
    "ta-frozenlake": ("FrozenLake-v0-raw", {"size": 3, "num_holes": 2, "randomize_start_goal": False}),
    "ta-sokoban": ("Sokoban-v0-raw", {"dim_room": [6, 6], "num_boxes": 1, "max_turns": 30}),
}
MOVES = ["[up]", "[down]", "[left]", "[right]"]


def write_arena_game(family: str, seed: int, path: Path) -> Path:
    env_id, settings = ARENA_GAMES[family]
    path.write_text(json.dumps({"family": family, "env_id": env_id, "settings": settings, "seed": seed}))
    return path


class TextArenaEnv:
    def __init__(self, game_file: str | Path, family: str | None = None, max_steps: int = 100):
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

    def reset(self) -> Observation:
        self._env.reset(num_players=1, seed=self.seed)
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
