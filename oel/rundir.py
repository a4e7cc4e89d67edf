"""The one place that names the files of a run directory. Everything else asks a `RunDir` for a path.

    config.json                   the run's settings
    games.json                    each round's train games, the validation and the test games
    trajectories/round_<r>.jsonl  every episode of round r, with every turn's prefix
    trajectories/round_<r>.<worker>.jsonl  round r's episodes played by `oel play --worker <worker>`
    trajectories/play.jsonl       episodes played by `oel play` outside any round
    memory/                       the Chroma knowledge memory (unless the run uses a Chroma server)
    checkpoints/v<n>/             LoRA adapter + manifest.json
    reports/rounds.jsonl          one row per round; reports/learning_curve.png
    reports/in_context.jsonl      each round's teacher on the test games (`eval_in_context`)
    reports/<name>.json           caches the benches keep beside a run
    consolidate.lock              held while a consolidation runs
    forgotten.jsonl               what `oel memory forget` removed: ids, source episodes, reason, time (no text)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, init=False)
class RunDir:
    """A run directory. `RunDir(path)` or `RunDir(another RunDir)`; creates nothing."""

    root: Path

    def __init__(self, root: str | Path | RunDir):
        object.__setattr__(self, "root", Path(root.root if isinstance(root, RunDir) else root))

    def __str__(self) -> str:
        return str(self.root)

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def games(self) -> Path:
        return self.root / "games.json"

    @property
    def trajectories(self) -> Path:
        return self.root / "trajectories"

    def round_log(self, r: int, worker: str | None = None) -> Path:
        """Round r's episodes: the loop's own, or those of `oel play --worker <worker>`."""
        return self.trajectories / (f"round_{r}.{worker}.jsonl" if worker else f"round_{r}.jsonl")

    @property
    def play_log(self) -> Path:
        return self.trajectories / "play.jsonl"

    def logs(self) -> list[Path]:
        """Every episode log of the run, in a stable order."""
        return sorted(self.trajectories.glob("*.jsonl"))

    def worker_logs(self, r: int) -> list[Path]:
        """Round r's logs written by `oel play --worker` (not the loop's own)."""
        return sorted(self.trajectories.glob(f"round_{r}.*.jsonl"))

    @property
    def memory(self) -> Path:
        return self.root / "memory"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def rounds(self) -> Path:
        return self.reports / "rounds.jsonl"

    @property
    def in_context(self) -> Path:
        return self.reports / "in_context.jsonl"

    @property
    def learning_curve(self) -> Path:
        return self.reports / "learning_curve.png"

    def report(self, name: str) -> Path:
        """A JSON cache a bench keeps beside the run (`reports/<name>.json`)."""
        return self.reports / f"{name}.json"

    @property
    def forgotten(self) -> Path:
        return self.root / "forgotten.jsonl"

    @property
    def consolidate_lock(self) -> Path:
        return self.root / "consolidate.lock"

    def is_run(self) -> bool:
        """Whether a run was made here (its settings are recorded)."""
        return self.config.is_file()
