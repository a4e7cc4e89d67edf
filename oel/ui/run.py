"""What the inspector page reads from a run: its memory, episode logs and checkpoints, re-read when they
change on disk (a loop may be running beside the page)."""

from __future__ import annotations

import re
import tempfile
import threading
from pathlib import Path

from consolidation.checkpoints import Registry
from consolidation.dataset import load_trajectories
from consolidation.lifecycle import open_run_memory
from consolidation.report import plot_rounds, read_rounds
from memory.store import Item, Memory
from oel.errors import OELError
from oel.records import LoggedEpisode
from oel.rundir import RunDir

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_NOW = re.compile(r"Now: (.*?)\nValid commands:", re.DOTALL)


def visible(text: object) -> str:
    """Stored text with its control characters shown as escapes (`\\x1b`), so that an ANSI sequence in a
    game's or a model's text is seen for what it is instead of vanishing. HTML is escaped by the templates."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def _stamp(path: Path) -> tuple:
    """A cheap fingerprint of a file tree: each file's name, size and modification time."""
    if not path.exists():
        return ()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)


class RunReader:
    """One run as the page reads it. The memory is a read-only snapshot (what `oel memory list` opens),
    taken again only when the memory directory changed: copying it costs ~1 s at 100k items, reading an
    open one a few milliseconds."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.run = RunDir(run_dir)
        self._lock = threading.Lock()
        self._memory: Memory | None = None
        self._memory_stamp: tuple | None = None
        self._episodes: list[LoggedEpisode] = []
        self._by_id: dict[str, LoggedEpisode] = {}
        self._episodes_stamp: tuple | None = None

    def memory(self) -> Memory:
        with self._lock:
            stamp = _stamp(self.run.memory)
            if self._memory is None or stamp != self._memory_stamp:
                if self._memory is not None:
                    self._memory.close()
                self._memory = open_run_memory(self.run_dir)
                self._memory_stamp = stamp
            return self._memory

    def changed(self) -> None:
        """After a write through the page: read everything again on the next request."""
        with self._lock:
            self._memory_stamp = self._episodes_stamp = None

    def episodes(self) -> list[LoggedEpisode]:
        """Every logged episode of the run (the loop's rounds, workers' logs, `oel play`), in log order."""
        with self._lock:
            stamp = tuple(s for log in self.run.logs() for s in _stamp(log))
            if stamp != self._episodes_stamp:
                self._episodes = load_trajectories(self.run.logs())
                self._by_id = {e["id"]: e for e in self._episodes}
                self._episodes_stamp = stamp
            return self._episodes

    def episodes_by_id(self) -> dict[str, LoggedEpisode]:
        self.episodes()  # re-read if the logs changed
        return self._by_id

    def envs(self) -> list[str]:
        return sorted({e["env"] for e in self.episodes()})

    def registry(self) -> Registry:
        return Registry(self.run.checkpoints)

    def manifests(self) -> list[dict]:
        return self.registry().manifests()

    def items_from(self, episode_id: str) -> list[Item]:
        """The items first written from this episode (items it later merged into name it among their sources)."""
        return self.memory().written_from(episode_id)

    @staticmethod
    def find_item(memory: Memory, item_id: str) -> Item | None:
        """The item, or None if it is gone (forgotten or deleted)."""
        try:
            return memory.get(item_id)
        except OELError:
            return None

    @staticmethod
    def observations(episode: LoggedEpisode) -> list[str]:
        """What the agent saw before each move: the game's answer to the move before, and for the first move
        the opening observation (the "Now:" line of the prompt it acted on)."""
        seen = []
        for n, turn in enumerate(episode["turns"]):
            if n:
                seen.append(episode["turns"][n - 1]["feedback"])
                continue
            prompt = turn["prefix"][-1]["content"] if turn["prefix"] else ""
            found = _NOW.findall(prompt)
            seen.append(found[-1] if found else "")
        return seen

    def learning_curve(self) -> bytes | None:
        """The PNG learning curve as `oel report` draws it, or None before any round. Drawn here, into a
        temporary file, when the run's own copy is missing or older than the rounds: the page writes
        nothing into the run unless it was started with --allow-writes and asked to."""
        rows = read_rounds(self.run_dir)
        if not rows:
            return None
        png = self.run.learning_curve
        if png.is_file() and png.stat().st_mtime >= self.run.rounds.stat().st_mtime:
            return png.read_bytes()
        with tempfile.TemporaryDirectory(prefix="oel-ui-") as tmp:
            return plot_rounds(rows, Path(tmp) / "curve.png").read_bytes()
