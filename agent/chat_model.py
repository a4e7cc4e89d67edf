"""The policy as a LangChain chat model, so it drops into any LangChain app, and any LangChain chat model
can act in the graph instead of it (`Context.chat_model`).

It behaves like the ecosystem's other chat models (LangChain's standard tests run against it,
tests/test_langchain_standard.py):
- `ChatOEL(model="smollm2-135m")` loads a policy as `Policy.load` would; `policy=` wraps one already loaded.
- `temperature=0` decodes greedily; `max_tokens`, `stop` and `timeout` (seconds, transformers' `max_time`)
  apply at construction and per call. A stop string ends generation where it appears, and is not returned.
- `stream`/`astream` yield tokens as the model writes them (a transformers streamer on a worker thread),
  and callbacks get `on_llm_new_token`; the last chunk carries the usage and `chunk_position="last"`.
- An unknown setting is an error, at construction or per call, never silently ignored.
What it honestly lacks: tool calling, structured output through tools, and non-text input.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, model_validator

from oel.config import DEFAULT_MODEL, OELConfig

ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "user"}
CALL_SETTINGS = ("max_tokens", "max_new_tokens", "temperature", "top_p", "top_k", "timeout", "seed")


def to_role_dicts(messages: list[BaseMessage]) -> list[dict]:
    return [{"role": ROLES.get(m.type, "user"), "content": m.text if hasattr(m, "text") else str(m.content)}
            for m in messages]


class PolicyChatModel(BaseChatModel):
    """Wraps an `agent.policy.Policy`. Sampling: the config's acting temperature (`OELConfig.temperature`), and the
    paper's top-p 0.8 and top-k 20."""

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True, extra="forbid")

    model_name: str = Field(default=DEFAULT_MODEL, alias="model")
    """The model to load (as `Policy.load` takes it) when no `policy` is given; else the policy's name."""
    policy: Any = Field(default=None, exclude=True)
    max_tokens: int = Field(default=OELConfig.max_new_tokens, alias="max_new_tokens", ge=1)
    temperature: float = Field(default=OELConfig.temperature, ge=0)
    """0 decodes greedily. The default is the config's acting temperature, as for the agent's own policy."""
    top_p: float = Field(default=0.8, gt=0, le=1)
    top_k: int = Field(default=20, ge=0)
    greedy: bool = False
    """Same as temperature=0 (kept for code written before temperature=0 worked)."""
    stop: list[str] | None = None
    seed: int | None = None
    """Seeds sampling for each call, so the same call gives the same text (None: unseeded)."""
    timeout: float | None = Field(default=None, gt=0)
    """Seconds a call may generate for; the text so far is returned when it is up."""
    streaming: bool = False
    """`invoke` streams under the hood (callbacks then get each token)."""

    @model_validator(mode="after")
    def _load(self) -> PolicyChatModel:
        if self.policy is None:
            from agent.policy import Policy

            self.policy = Policy.load(self.model_name)
        else:
            self.model_name = self.policy.name
        return self

    @property
    def _llm_type(self) -> str:
        return "oel-policy"

    @property
    def _identifying_params(self) -> dict:
        return {"model_name": self.model_name, "max_tokens": self.max_tokens, "temperature": self.temperature}

    def get_num_tokens(self, text: str) -> int:
        return self.policy.count_tokens(text)

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools=None) -> int:
        """Tokens of the prompt these messages render to, chat template included."""
        return self.policy.count_tokens(self.policy.render(to_role_dicts(messages)))

    def _settings(self, stop: list[str] | None, kwargs: dict) -> dict:
        unknown = sorted(k for k in kwargs if k not in CALL_SETTINGS and not k.startswith("ls_"))
        if unknown:
            raise TypeError(f"unknown argument(s) {unknown} for {type(self).__name__}; use {', '.join(CALL_SETTINGS)}")
        temperature = kwargs.get("temperature", self.temperature)
        return {"max_new_tokens": kwargs.get("max_tokens", kwargs.get("max_new_tokens", self.max_tokens)),
                "temperature": temperature or 1.0, "greedy": self.greedy or temperature == 0,
                "top_p": kwargs.get("top_p", self.top_p), "top_k": kwargs.get("top_k", self.top_k),
                "stop": stop if stop is not None else self.stop, "max_time": kwargs.get("timeout", self.timeout),
                "seed": kwargs.get("seed", self.seed)}

    def _usage(self, prompt: str, n_tokens: int) -> dict:
        prompt_tokens = self.policy.count_tokens(prompt)
        return {"input_tokens": prompt_tokens, "output_tokens": n_tokens, "total_tokens": prompt_tokens + n_tokens}

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        if self.streaming:
            from langchain_core.language_models.chat_models import generate_from_stream

            return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))
        prompt = self.policy.render(to_role_dicts(messages))
        [(text, n_tokens)] = self.policy.generate([prompt], **self._settings(stop, kwargs))
        message = AIMessage(content=text, usage_metadata=self._usage(prompt, n_tokens),
                            response_metadata={"model_name": self.model_name, "model_provider": "oel"})
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        from transformers import TextIteratorStreamer

        settings = self._settings(stop, kwargs)
        prompt = self.policy.render(to_role_dicts(messages))
        streamer = TextIteratorStreamer(self.policy.tokenizer, skip_prompt=True, skip_special_tokens=True)
        done: dict = {}

        def work() -> None:
            try:
                done["result"] = self.policy.generate([prompt], **settings, streamer=streamer)
            except BaseException as err:  # noqa: BLE001 - raised again on the caller's thread
                done["error"] = err
                streamer.end()

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        for piece in _until_stop(streamer, settings["stop"] or []):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
        worker.join()
        if "error" in done:
            raise done["error"]
        [(_, n_tokens)] = done["result"]
        yield ChatGenerationChunk(message=AIMessageChunk(
            content="", usage_metadata=self._usage(prompt, n_tokens), chunk_position="last",
            response_metadata={"model_name": self.model_name, "model_provider": "oel"}))


def _until_stop(pieces: Iterator[str], stop: list[str]) -> Iterator[str]:
    """The streamed text up to the first stop string, in pieces as they come. A tail that could be the start
    of a stop string is held back until the next piece shows it is not. The stream is read to its end."""
    hold = max((len(s) for s in stop), default=1) - 1
    text, sent, stopped = "", 0, False
    for piece in pieces:
        if stopped:
            continue  # drain: the worker finishes its last tokens
        text += piece
        cuts = [text.find(s) for s in stop if s and s in text]
        end = min(cuts) if cuts else max(sent, len(text) - hold)
        stopped = bool(cuts)
        if end > sent:
            yield text[sent:end]
            sent = end
    if not stopped and len(text) > sent:
        yield text[sent:]

ChatOEL = PolicyChatModel
"""The name LangChain users look for (`ChatOpenAI`, `ChatOllama`...)."""
