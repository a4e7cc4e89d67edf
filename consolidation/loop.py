"""The online loop: each round plays, reflects, consolidates, gates and prunes (DESIGN.md §1).

The run directory's files are named in `oel/rundir.py`.

Online, as in the method: each round plays fresh train games (`fresh_games`). The held-out games are split
by seed: the gate decides on the *validation* games, and the round table, the plots and the benches report
the *test* games, on which nothing is ever decided.

Round 0 of the report is the starting policy on the test games. Row r is the policy in force after
round r: the new checkpoint if the gate promoted it, else the previous one. With `eval_in_context`, row r
also holds round r's teacher: the policy in force *before* round r's consolidation, playing with round r's
memory in its prompt. That is what the consolidation tries to put into the weights.

Resuming: progress is read back from the artifacts themselves, stage by stage, so a run killed at any
point continues where it stopped, with nothing lost or done twice:
- play: games already in round_<r>.jsonl are not replayed; an episode is logged before its knowledge is
  stored, so one logged without knowledge (cut off in between) is reflected on again;
- utility: measured again (the same prefixes, so the same values);
- consolidate and gate: a checkpoint whose manifest names round r means both are done (checkpoints are
  written atomically, so a half-trained one never counts);
- prune: marking items consolidated is idempotent, so it is simply done again;
- the round is finished once its row is in reports/rounds.jsonl.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from agent.device import dtype_name, resolve_device, resolve_dtype
from agent.games import SuiteBook, expand_game_files, make_suite, split_specs, user_suite
from agent.models import check_model
from agent.policy import Policy
from agent.rollout import play_games, seed_base
from consolidation import ranks
from consolidation.checkpoints import Registry
from consolidation.dataset import build_dataset, fingerprint, load_trajectories
from consolidation.distill import distill
from consolidation.evaluate import evaluate, teacher_sources
from consolidation.evaluate import summary as evaluation_summary  # a round row renames one key
from consolidation.lifecycle import forgotten_sources, gate_status, prune_absorbed, replaced
from consolidation.report import plot_rounds, read_rounds, rounds_table
from consolidation.utility import measure_utilities
from memory.reflection import Reflector, unreflected
from memory.store import Memory, open_memory
from oel.config import OELConfig, load_run_config
from oel.errors import Interrupted, OELError
from oel.files import write_atomic
from oel.jsonl import open_append, read_jsonl
from oel.lock import DirectoryLock
from oel.records import Evaluation, LoggedEpisode
from oel.rundir import RunDir

EVAL_KEYS = ("success_no_memory", "ci95", "steps", "tokens_per_episode", "n_games")
LATER_KEYS = ("wins", "invalid_per_episode")
"""Also kept of an evaluation, but absent from rows and manifests written before they were recorded."""


def check_run_dir(cfg: OELConfig, run_dir: Path) -> None:
    """Check that an existing run directory was made with the same settings. Writes nothing: the settings
    are written (`write_run_config`) only once they are known to work (the model and the memory open), so
    a typo in a new run's settings never locks that run directory to it."""
    path = RunDir(run_dir).config
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise OELError(f"{path} is corrupt; fix it or use a new --run-dir") from None
        # A setting added after the run was made counts as its default (what the run used then).
        defaults = OELConfig().to_dict()
        # Where it runs may change between invocations (play on a GPU, consolidate elsewhere); what it does may not.
        changed = [k for k, v in cfg.to_dict().items()
                   if k not in ("rounds", "device") and saved.get(k, defaults[k]) != v]
        if changed:
            k = changed[0]
            raise OELError(f"{run_dir} was made with {k}={saved.get(k)!r}, not {getattr(cfg, k)!r}; "
                           "use the same settings to continue it, or a new --run-dir")


def precision_moved(registry: Registry, dtype: str) -> str | None:
    """What to tell the user when this invocation's weights are in another precision than the run's newest
    checkpoint was trained in, else None. `dtype = "auto"` resolves per machine (bfloat16 on GPUs and on CPUs
    with it in hardware, float32 on others), so a run that moves between machines, or that was made before
    `auto` took bfloat16 on CPUs, can change precision under the same setting. It goes on: on 48 validation
    games the two precisions played 1 to 2 games differently (docs/BENCHMARKS.md, "Precision on the CPU")."""
    made = [m["runtime"]["dtype"] for m in registry.manifests() if "dtype" in m.get("runtime", {})]
    if not made or made[-1] == dtype:
        return None
    return (f"this run's newest checkpoint was trained in {made[-1]}, and it goes on in {dtype} here: "
            "dtype = \"auto\" follows the machine (a run that must keep one precision sets dtype when it is made)")


def warn_precision_moved(cfg: OELConfig, registry: Registry, console: Console) -> None:
    """`precision_moved`, said by every command that goes on with a run's weights: `oel loop`, `oel play` and
    `oel consolidate`."""
    dtype = dtype_name(resolve_dtype(cfg.dtype, resolve_device(cfg.device)))
    if moved := precision_moved(registry, dtype):
        console.print(f"[yellow]warning:[/] {moved}")


def write_run_config(cfg: OELConfig, run_dir: Path) -> None:
    """Record the run's settings (a run made before a setting existed gets it added); never rewritten as is."""
    path = RunDir(run_dir).config
    if not path.is_file() or json.loads(path.read_text()) != cfg.to_dict():
        write_atomic(path, json.dumps(cfg.to_dict(), indent=2))


Games = list[tuple[Path, str]]


@dataclass
class Suites:
    """A run's games: (file, env family) pairs. Once recorded in `games.json`, a run's games never change."""

    train: dict[int, Games]
    """Each round's train games."""
    validation: Games
    """What the gate decides on."""
    test: Games
    """What the reports show; nothing is decided on it."""
    skipped: list[dict] = field(default_factory=list)
    """Seeds that gave no game, or a game already in the run, and the seed that replaced each."""

    def to_json(self) -> dict:
        pairs = lambda games: [[str(p), f] for p, f in games]  # noqa: E731
        return {"train": {str(r): pairs(g) for r, g in sorted(self.train.items())},
                "validation": pairs(self.validation), "test": pairs(self.test), "skipped": self.skipped}

    @classmethod
    def read(cls, run_dir: Path) -> Suites:
        """The suites recorded in `games.json` (empty if there is none). One written before validation was
        split off has `heldout` games, which then serve as both; its single `train` list is every round's."""
        path = RunDir(run_dir).games
        if not path.is_file():
            return cls({}, [], [])
        try:
            data = json.loads(path.read_text())
            pairs = lambda rows: [(Path(g), str(f)) for g, f in rows]  # noqa: E731
            train = data["train"]
            train = {int(r): pairs(g) for r, g in train.items()} if isinstance(train, dict) else {1: pairs(train)}
            validation = pairs(data.get("validation", data.get("heldout", [])))
            return cls(train, validation, pairs(data.get("test", data.get("heldout", []))), list(data.get("skipped", [])))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise OELError(f"{path} is corrupt; restore it, or use a new --run-dir") from None


def prepare_games(cfg: OELConfig, run_dir: Path, rounds: int | None = None,
                  splits: tuple[str, ...] = ("test", "validation", "train")) -> Suites:
    """The run's games: those `games.json` records, plus any of `splits` (train: rounds 1..`rounds`) not yet
    made, which are then recorded. Test games are made first, so they do not depend on the number of rounds.

    Generated suites have disjoint seeds (`agent.games.split_specs`) and, by content, no game twice: a seed
    that repeats a board or world already in the run, or gives no game at all, is replaced and recorded in
    `skipped`. A split the settings give files for (`train_files`...) plays those files instead."""
    suites = Suites.read(run_dir)
    recorded = [g for games in suites.train.values() for g in games] + suites.validation + suites.test
    book = SuiteBook.holding(recorded, "recorded", suites.skipped)

    def suite(split: str, n: int, r: int = 1) -> Games:
        files = {"train": cfg.train_files, "validation": cfg.validation_files, "test": cfg.test_files}[split]
        if files:
            files = expand_game_files(files)  # held-out splits play every file given, train `n` a round
            return user_suite(files, n, r) if split == "train" else user_suite(files, len(files))
        specs = split_specs(cfg.challenges, n, cfg.seed, split, r)
        label = f"train round {r}" if split == "train" else split
        return list(zip(make_suite(specs, desc=label, book=book), [s.env_family for s in specs]))

    made = False
    if "test" in splits and not suites.test:
        suites.test, made = suite("test", cfg.test_games), True
    if "validation" in splits and not suites.validation:
        suites.validation, made = suite("validation", cfg.validation_games), True
    if "train" in splits:
        for r in range(1, (rounds or cfg.rounds) + 1):
            if r not in suites.train:
                # Without fresh games every round replays round 1's games themselves (the one home of that
                # rule): made again through the book, they would be skipped as repeats and replaced.
                replay = not cfg.fresh_games and r > 1  # round 1 is always made or read first
                suites.train[r], made = list(suites.train[1]) if replay else suite("train", cfg.train_games, r), True
    if made:
        write_atomic(RunDir(run_dir).games, json.dumps(suites.to_json(), indent=2))
    return suites


def consolidation_lock(run_dir: Path) -> DirectoryLock:
    """Only one consolidation per run directory at a time, whichever command started it."""
    return DirectoryLock(RunDir(run_dir).consolidate_lock, f"consolidation of {run_dir}")


def load_policy(cfg: OELConfig, registry: Registry, version: str | None) -> Policy:
    name = f"{cfg.model}+{version}" if version else cfg.model
    return Policy.load(cfg.model, adapters=registry.lineage(version), name=name, device=cfg.device, dtype=cfg.dtype)


def run_loop(cfg: OELConfig, run_dir: str | Path, console: Console | None = None) -> list[dict]:
    """Run (or resume) the loop to `cfg.rounds`; return the per-round rows. Ctrl-C raises `Interrupted`,
    which says where it stopped: everything finished before it is kept, and the next run goes on from there."""
    rows: list[dict] = []
    try:
        return _run_loop(cfg, Path(run_dir), rows, console or Console())
    except KeyboardInterrupt:
        if not rows:
            raise Interrupted(f"`oel loop` stopped before round 0 was evaluated in {run_dir}; run the same "
                              "command to start again") from None
        log = RunDir(run_dir).round_log(len(rows))
        raise Interrupted(f"`oel loop` stopped during round {len(rows)} of {run_dir} (rounds up to {len(rows) - 1} "
                          f"are finished; {len(load_trajectories([log]))} of this round's games are logged and "
                          "kept): run the same command to resume") from None


@contextmanager
def open_run(cfg: OELConfig, run_dir: Path) -> Iterator[tuple[Memory, Registry]]:
    """What `oel loop` and `oel play` set up before they play: the models and the run's settings are checked,
    the checkpoints and the memory opened, and only then the settings recorded (a typo in a new run's
    settings never locks the run directory to it)."""
    check_model(cfg.model)
    if cfg.reflection_model:
        check_model(cfg.reflection_model)
    check_run_dir(cfg, run_dir)
    registry = Registry(RunDir(run_dir).checkpoints)
    with open_memory(cfg, run_dir) as memory:
        write_run_config(cfg, run_dir)
        yield memory, registry


def _run_loop(cfg: OELConfig, run_dir: Path, rows: list[dict], console: Console) -> list[dict]:
    with open_run(cfg, run_dir) as (memory, registry):
        suites = prepare_games(cfg, run_dir)
        rows += read_rounds(run_dir)
        current = registry.current()
        policy = load_policy(cfg, registry, current)
        runtime = policy.runtime()
        console.print(f"policy on {runtime['device']} in {runtime['dtype']} ({runtime['attention']} attention)")
        warn_precision_moved(cfg, registry, console)
        if not rows:
            console.print(f"[bold]round 0[/]: evaluating {policy.name} on {len(suites.validation)} validation "
                          f"and {len(suites.test)} test games")
            timings: dict[str, float] = {}
            with timed(timings, "eval_s"):
                validation = summary(evaluate(policy, suites.validation, cfg, desc="eval round 0 (validation)"))
                test = summary(evaluate(policy, suites.test, cfg, desc="eval round 0 (test)"))
            rows.append(append_row(run_dir, 0, policy.name, test, memory, "-", validation=validation, timings=timings))
        for r in range(len(rows), cfg.rounds + 1):
            timings = {}
            with timed(timings, "play_s"):  # reflection included: it runs as each game ends
                episodes = play_round(cfg, run_dir, policy, memory, suites.train[r], r, console)
            if workers := workers_episodes(run_dir, r):  # played elsewhere for this round: they count too
                console.print(f"  with {len(workers)} episodes that workers logged for round {r}")
                episodes += workers
            console.print(f"  train: won {sum(e['won'] for e in episodes)}/{len(episodes)}; "
                          f"memory holds {memory.count('active')} active items "
                          f"({memory.count('quarantined')} quarantined)")
            with timed(timings, "utility_s"):
                measure_utilities(policy, memory, logged_episodes(run_dir), cfg, desc=f"utility round {r}")
            with timed(timings, "teacher_eval_s"):
                in_context = teacher_eval(cfg, run_dir, policy, memory, episodes, suites.test, r) if cfg.eval_in_context else {}
            done = [m for m in registry.manifests() if m.get("round") == r]
            candidate = None
            if done:
                manifest = done[-1]
                console.print(f"  {manifest['version']} was already trained and gated this round: {manifest['status']}")
            else:
                with timed(timings, "consolidate_s"), consolidation_lock(run_dir):  # dataset, training, gate
                    records, knowledge_ids = build_dataset(episodes, memory, cfg)
                    manifest, candidate = consolidate(cfg, run_dir, registry, records, knowledge_ids, current,
                                                      current_eval(registry, rows), suites, r, console)
            if manifest and manifest["status"] == "promoted":
                prune_absorbed(registry, memory, manifest["version"])
                current = manifest["version"]
                policy = candidate or load_policy(cfg, registry, current)  # the one just evaluated, if loaded
                gate = f"promoted {current}"
            else:
                gate = f"rejected {manifest['version']}" if manifest else "skipped: no knowledge"
            rows.append(append_row(run_dir, r, policy.name, current_eval(registry, rows, "test"), memory, gate,
                                   in_context, validation=current_eval(registry, rows), timings=timings))
    console.print(rounds_table(rows))
    png = plot_rounds(rows, RunDir(run_dir).learning_curve)
    console.print(f"learning curve: {png}\nrun directory: {run_dir}")
    return rows


WORKER_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")


def check_worker_name(name: str) -> None:
    """A worker's name becomes part of a file name: letters, digits, '-' and '_' only."""
    if not WORKER_NAME.fullmatch(name):
        raise OELError(f"--worker must be 1-40 letters, digits, '-' or '_', got {name!r}")


def worker_log(run_dir: Path, r: int, worker: str) -> Path:
    """Where worker `worker` logs round r's episodes (`oel play --worker`)."""
    return RunDir(run_dir).round_log(r, worker)


def next_round(run_dir: Path, registry: Registry) -> int:
    """The round whose consolidation the episodes played now will feed: one past the last round recorded
    (by the loop's rounds table, or by the checkpoints `oel consolidate` made)."""
    return max(len(read_rounds(run_dir)), len(registry.manifests()) + 1)


def workers_episodes(run_dir: Path, r: int) -> list[LoggedEpisode]:
    """Round r's episodes logged by `oel play --worker` processes (not the loop's own)."""
    return load_trajectories(RunDir(run_dir).worker_logs(r))


def logged_episodes(run_dir: Path) -> list[LoggedEpisode]:
    """Every train episode logged in the run so far, all rounds and `oel play` included."""
    return load_trajectories(RunDir(run_dir).logs())


def play_round(cfg: OELConfig, run_dir: Path, policy: Policy, memory: Memory, train: Games,
               r: int, console: Console) -> list[LoggedEpisode]:
    """Play this round's train games that are not logged yet; return all of the round's episodes."""
    log_path = RunDir(run_dir).round_log(r)
    logged = load_trajectories([log_path])
    played = {Path(e["game"]).name for e in logged}  # a game is its spec's file name, wherever the cache is
    if len(played) < len(train):
        console.print(f"[bold]round {r}[/]: playing {len(train) - len(played)} train games with {policy.name}"
                      + (f" ({len(played)} already played)" if played else ""))
    writer = reflection_policy(cfg, policy)
    reflector = Reflector(writer, memory, cfg, created_by=writer.name)
    # Logged, then cut off before its items were stored (never an episode whose items were forgotten).
    forgotten = forgotten_sources(RunDir(run_dir).forgotten)
    if missed := [e for e in unreflected(memory, logged) if e["id"] not in forgotten]:
        console.print(f"  reflecting on {len(missed)} logged episodes that have no knowledge yet")
        for episode in missed:
            reflector.reflect(episode)
    logged += play_games(policy, train, cfg, r, seed_base=seed_base(cfg.seed, round=r), log_path=log_path,
                         reflect=reflector, skip=frozenset(played), concurrency=cfg.concurrency,
                         desc=f"play round {r}")
    return logged


def reflection_policy(cfg: OELConfig, policy: Policy) -> Policy:
    """Who writes the knowledge: the acting policy itself, or `cfg.reflection_model` if one is set."""
    return (Policy.load(cfg.reflection_model, device=cfg.device, dtype=cfg.dtype) if cfg.reflection_model
            else policy)


def teacher_eval(cfg: OELConfig, run_dir: Path, policy: Policy, memory: Memory, episodes: list[LoggedEpisode],
                 test: Games, r: int) -> dict:
    """Test success of round r's teacher: `policy` with what the teacher sees in its prompt (the active
    memory, retrieved per situation; for the raw-trajectory baseline, this round's train episodes of
    the game's family; or both, as `cfg.teacher_context` says). Saved, so a resumed run does not evaluate it twice."""
    path = RunDir(run_dir).in_context
    for row in read_jsonl(path):
        if row["round"] == r:
            return {k: v for k, v in row.items() if k != "round"}
    result = evaluate(policy, test, cfg, **teacher_sources(cfg.teacher_context, memory, episodes, cfg),
                      desc=f"eval teacher {r}")
    row = {"success_in_context": result["success"], "in_context_ci95": result["ci95"],
           "in_context_steps": result["steps"], "in_context_tokens_per_episode": result["tokens_per_episode"],
           "in_context_wins": result["wins"], "in_context_invalid_per_episode": result["invalid_per_episode"]}
    with open_append(path) as f:
        f.write(json.dumps({"round": r, **row}) + "\n")
    return row


def current_eval(registry: Registry, rows: list[dict], split: str = "validation") -> dict | None:
    """The policy in force's evaluation on the validation (or test) games: its checkpoint's, or the base
    model's in round 0's row. Runs made before the split have one held-out evaluation, used for both."""
    current = registry.current()
    if current:
        evaluations = registry.manifest(current)["eval"]
        return evaluations.get("test", evaluations["after"]) if split == "test" else evaluations["after"]
    if not rows:
        return None
    if split == "validation" and "validation" in rows[0]:
        return rows[0]["validation"]
    return {k: rows[0][k] for k in (*EVAL_KEYS, *LATER_KEYS) if k in rows[0]}


def consolidate(cfg: OELConfig, run_dir: Path, registry: Registry, records: list[dict], knowledge_ids: list[str],
                current: str | None, parent: dict, suites: Suites, r: int,
                console: Console) -> tuple[dict | None, Policy | None]:
    """Distil the dataset into a new adapter, gate it on the validation games, and write the checkpoint.

    `parent` holds the current policy's validation evaluation (EVAL_KEYS). A promoted candidate is also
    evaluated on the test games, for the reports. Returns the manifest and the candidate policy it
    evaluated, or (None, None) if there was nothing to teach. Pruning is the caller's, and happens only
    after a promotion. The caller holds the run's consolidation lock (`consolidation_lock`).
    """
    if not records:
        console.print("  no knowledge for these games yet: nothing to consolidate")
        return None, None
    version = registry.next_version()
    console.print(f"  consolidating {len(records)} prefixes with {len(knowledge_ids) or 'raw-trajectory'} "
                  f"knowledge into {version}")
    started = time.time()
    for stale in run_dir.glob(".consolidate-*"):  # left by a run killed mid-training
        shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=".consolidate-", dir=run_dir) as tmp:
        student = load_policy(cfg, registry, current)  # a fresh copy: LoRA is injected into it in place
        training = distill(student, records, cfg, Path(tmp))
        del student
        distill_s = time.time() - started
        candidate = Policy.load(cfg.model, adapters=[*registry.lineage(current), Path(tmp) / "adapter"],
                                name=f"{cfg.model}+{version}", device=cfg.device, dtype=cfg.dtype)
        after = summary(evaluate(candidate, suites.validation, cfg, desc=f"eval {version} (validation)"))
        status = gate_status(after["success_no_memory"], parent["success_no_memory"], cfg.gate_tolerance)
        evaluations = {"before": {k: parent[k] for k in EVAL_KEYS}, "after": after}
        if status == "promoted":
            evaluations["test"] = summary(evaluate(candidate, suites.test, cfg, desc=f"eval {version} (test)"))
        manifest = {
            "version": version, "parent": current, "status": status, "replaces": replaced(registry),
            "round": r, "base_model": cfg.model, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "runtime": candidate.runtime(),
            "knowledge_ids": knowledge_ids,
            "dataset": {"fingerprint": fingerprint(records), "prefixes": len(records),
                        "teacher_context": cfg.teacher_context},
            "games": {"validation": [str(p) for p, _ in suites.validation],
                      "test": [str(p) for p, _ in suites.test]},
            "eval": evaluations,
            "gate": {"tolerance": cfg.gate_tolerance, "on": "validation",
                     "reason": f"validation success {after['success_no_memory']:.1%} vs parent "
                               f"{parent['success_no_memory']:.1%} - {cfg.gate_tolerance:.1%}"},
            "training": training,
            "timings": {"distill_s": round(distill_s, 1), "eval_s": round(time.time() - started - distill_s, 1)},
            "config": cfg.to_dict(),
        }
        registry.write(Path(tmp) / "adapter", manifest)
    console.print(f"  gate: {manifest['gate']['reason']} -> {manifest['status']} {version}")
    return manifest, candidate


def summary(evaluation: Evaluation) -> dict:
    """The figures a round row and a checkpoint manifest keep of an evaluation: `evaluate.summary`, with the
    success named for what it is (the policy played without memory)."""
    kept = evaluation_summary(evaluation)
    return {"success_no_memory": kept.pop("success"), **kept}


@contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Add the block's wall time, in seconds, to `timings[name]` (a round's row says where its time went)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - start, 1)


def append_row(run_dir: Path, r: int, policy_name: str, evaluation: dict, memory: Memory, gate: str,
               in_context: dict | None = None, validation: dict | None = None,
               timings: dict[str, float] | None = None) -> dict:
    """Record round r: the policy in force on the test games (`evaluation`), and on the validation games.
    `timings`: this process's wall seconds per phase of the round (a resumed round counts only what it redid)."""
    row = {"round": r, "policy": policy_name, **{k: evaluation[k] for k in EVAL_KEYS},
           **{k: evaluation[k] for k in LATER_KEYS if k in evaluation}, **(in_context or {}),
           "memory_active": memory.count("active"), "memory_consolidated": memory.count("consolidated"),
           "memory_quarantined": memory.count("quarantined"), "gate": gate,
           **({"validation": validation} if validation is not None else {}),
           **({"timings": timings} if timings else {})}
    path = RunDir(run_dir).rounds
    with open_append(path) as f:
        f.write(json.dumps(row) + "\n")
    return row


def consolidate_once(run_dir: str | Path, console: Console | None = None) -> dict | None:
    """`oel consolidate`: distil everything logged so far with the active memory, once.

    Idempotent: if the newest checkpoint was trained on exactly this dataset (same fingerprint), or there
    is no active knowledge left, it does nothing. Returns the new manifest, or None. Under a multi-process
    launcher every process trains, and only the leader reads or writes the run (`consolidation.ranks`).
    """
    console = console or Console()
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    registry = Registry(RunDir(run_dir).checkpoints)
    on_cpu = resolve_device(cfg.device).type == "cpu"
    if not ranks.is_leader():
        return train_share(cfg, registry, ranks.follow(on_cpu))
    # The lock is held from the first read of the memory to the last write, so two consolidations never
    # measure, train on or prune the same items at once.
    with ranks.leading(on_cpu) as send, consolidation_lock(run_dir):
        warn_precision_moved(cfg, registry, console)
        suites = prepare_games(cfg, run_dir, rounds=1)  # the gate needs validation games: made if `oel play` made none
        episodes = logged_episodes(run_dir)
        if not episodes:
            raise OELError(f"no trajectories in {run_dir}: play first (`oel play` or `oel loop`)")
        with open_memory(cfg, run_dir) as memory:
            current = registry.current()
            rows = read_rounds(run_dir)
            policy = None
            if cfg.utility_prefixes and any(i.utility is None for i in memory.list("active")):
                policy = load_policy(cfg, registry, current)
                measure_utilities(policy, memory, episodes, cfg, only_new=True)
            records, knowledge_ids = build_dataset(episodes, memory, cfg)
            manifests = [m for m in registry.manifests() if m["status"] != "tainted"]
            if records and manifests and manifests[-1]["dataset"]["fingerprint"] == fingerprint(records):
                console.print(f"nothing new: {manifests[-1]['version']} was trained on exactly this data")
                return None
            parent = current_eval(registry, rows)
            if parent is None and records:
                console.print(f"evaluating the current policy on {len(suites.validation)} validation games (no earlier result)")
                policy = policy or load_policy(cfg, registry, current)
                parent = summary(evaluate(policy, suites.validation, cfg, desc="eval parent"))
            if records:
                del policy  # the followers train now: no model held beside the student
                send({"records": records, "current": current})
            manifest, _ = consolidate(cfg, run_dir, registry, records, knowledge_ids, current, parent, suites,
                                      max(e["round"] for e in episodes), console)
            if manifest and manifest["status"] == "promoted":
                prune_absorbed(registry, memory, manifest["version"])
            return manifest


def train_share(cfg: OELConfig, registry: Registry, plan: ranks.Plan | None) -> None:
    """A follower's part of a consolidation: train beside the leader, keep nothing (the leader saves the
    adapter). Its scratch directory is outside the run, which the leader alone writes."""
    if plan is None:
        return None
    with tempfile.TemporaryDirectory(prefix="oel-follower-") as tmp:
        distill(load_policy(cfg, registry, plan["current"]), plan["records"], cfg, Path(tmp))
    return None
