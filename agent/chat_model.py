"""The policy as a LangChain chat model, so it drops into any LangChain app, and any LangChain chat model
can act in the graph instead of it (`Context.chat_model`)."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "user"}


def to_role_dicts(messages: list[BaseMessage]) -> list[dict]:
    return [{"role": ROLES.get(m.type, "user"), "content": m.text if hasattr(m, "text") else str(m.content)}
            for m in messages]


class PolicyChatModel(BaseChatModel):
    """Wraps an `agent.policy.Policy`. Sampling follows the paper's defaults unless set."""

    policy: Any
    max_new_tokens: int = 48
    temperature: float = 0.7
    greedy: bool = False

    @property
    def _llm_type(self) -> str:
        return "oel-policy"

    @property
    def _identifying_params(self) -> dict:
        return {"model": self.policy.name, "max_new_tokens": self.max_new_tokens, "temperature": self.temperature}

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        prompt = self.policy.render(to_role_dicts(messages))
        [(text, n_tokens)] = self.policy.generate([prompt], kwargs.get("max_new_tokens", self.max_new_tokens),
                                                  kwargs.get("temperature", self.temperature), self.greedy)
        for s in stop or []:
            text = text.split(s)[0]
        prompt_tokens = self.policy.count_tokens(prompt)
        message = AIMessage(content=text, usage_metadata={"input_tokens": prompt_tokens, "output_tokens": n_tokens,
                                                          "total_tokens": prompt_tokens + n_tokens})
        return ChatResult(generations=[ChatGeneration(message=message)])
