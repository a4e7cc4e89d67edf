"""Typed state and run context of the acting graph."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Literal

from agent.envs import Env
from agent.policy import Policy
from oel.config import ActingPrompt, OELConfig
from oel.errors import OELError
from oel.records import Turn


@dataclass
class State:
    """One episode. The caller passes nothing in: the `reset` node fills it from the environment."""

    objective: str = ""
    """The game's goal text."""
    start: str = ""
    """The game's first observation (the chat prompt opens with it)."""
    observation: str = ""
    """The latest observation text."""
    admissible: list[str] = field(default_factory=list)
    """Commands valid now."""
    turns: Annotated[list[Turn], operator.add] = field(default_factory=list)
    """Every move so far (`oel.records.Turn`)."""
    pending: dict | None = None
    """The action chosen by `act`, waiting for `step` to send it."""
    score: int = 0
    """TextWorld's running total."""
    max_score: int = 0
    steps: int = 0
    tokens: int = 0
    """Tokens the policy generated this episode (in choose mode: the chosen commands' tokens)."""
    invalid: int = 0
    """Generated responses that matched no admissible command."""
    done: bool = False
    won: bool = False
    outcome: Literal["", "won", "lost", "step_limit"] = ""
    reason: str = ""
    """Why the episode ended, in words."""
    knowledge_written: list[str] = field(default_factory=list)
    """Ids of the knowledge items the reflection stored."""


@dataclass
class EpisodeStart:
    """The graph's input: nothing. The game and the settings come in the `Context`; `reset` fills the state."""


@dataclass
class Episode:
    """The graph's output: what an episode was, without the acting state (observation, commands, pending)."""

    objective: str = ""
    outcome: Literal["", "won", "lost", "step_limit"] = ""
    won: bool = False
    reason: str = ""
    score: int = 0
    max_score: int = 0
    steps: int = 0
    tokens: int = 0
    invalid: int = 0
    turns: list[Turn] = field(default_factory=list)
    knowledge_written: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class Context:
    """Run settings, passed at invoke time (never through globals). The acting settings default to the
    config's (`OELConfig`), the one home of their defaults; `Context.from_config` copies a run's."""

    env: Env
    """The game to play. One context per episode."""
    policy: Policy | None = None
    """The acting model. Choose mode needs it: it scores the commands itself."""
    chat_model: Any = None
    """Any LangChain chat model. If set, generate mode acts through it instead of `policy`."""
    mode: Literal["choose", "generate"] = OELConfig.action_mode
    max_steps: int = OELConfig.max_steps
    temperature: float = OELConfig.temperature
    greedy: bool = OELConfig.greedy
    max_new_tokens: int = OELConfig.max_new_tokens
    one_line: bool = OELConfig.one_line
    """Generate mode: a response ends at its first line break (`agent.templates.response_stop`); a LangChain
    chat model is asked for that with `stop=["\\n"]` (set False for one that takes no stop sequences)."""
    acting_prompt: ActingPrompt = OELConfig.acting_prompt
    """The acting prompt's format (`agent.prompts.prompt_messages`)."""
    thinking: bool = OELConfig.thinking
    """Generate mode: let a model whose chat template supports it think before it answers."""
    knowledge: list[str] | Callable[[str], list[str]] = field(default_factory=list)
    """Knowledge put in the acting prompt: a fixed list, or a function of the prompt's text
    (`agent.prompts.retrieval_query`; retrieval).
    Empty when deploying: the policy plays from its weights."""
    reflect: Callable[[State, "Context"], list[str]] | None = None
    """Called once when the episode is done; returns ids of stored knowledge. None skips reflection."""
    seed: int | None = None
    """Seeds command sampling, for reproducible episodes."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form metadata (game name, round) carried to the reflection."""

    def __post_init__(self):
        if self.mode == "choose" and self.policy is None:
            raise OELError("choose mode needs a local policy (Context.policy): it scores every admissible command")
        if self.policy is None and self.chat_model is None:
            raise OELError("give the agent a policy or a LangChain chat model to act with")

    @classmethod
    def from_config(cls, cfg: OELConfig, *, env: Env, **given: Any) -> Context:
        """A context with a run's acting settings (`given` adds the rest: policy, knowledge, seed...)."""
        return cls(env=env, mode=cfg.action_mode, max_steps=cfg.max_steps, temperature=cfg.temperature,
                   greedy=cfg.greedy, max_new_tokens=cfg.max_new_tokens, one_line=cfg.one_line,
                   acting_prompt=cfg.acting_prompt,
                   thinking=cfg.thinking, **given)
