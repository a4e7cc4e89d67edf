"""LangChain's own conformance suites (the `langchain-tests` package) against the policy's chat model and
the memory's retriever, on the real embedded model and a real Chroma memory.

Switched off, because the model honestly lacks them: tool calling, structured output and non-text input.
The standard constructor settings are LangChain's, less `api_key` and `max_retries`: a local model has no
key and no transient failures to retry, and the chat model refuses settings it would ignore.
"""

from functools import lru_cache

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests, RetrieversIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from agent.chat_model import ChatOEL

pytestmark = pytest.mark.slow  # real model, subprocesses or servers: `make test-fast` leaves it out


@lru_cache(maxsize=1)
def embedded_policy():
    from agent.policy import Policy

    return Policy.load()  # the embedded SmolLM2-135M, loaded once for every test here


class _Settings:
    @property
    def chat_model_class(self):
        return ChatOEL

    @property
    def chat_model_params(self) -> dict:
        return {"policy": embedded_policy()}

    @property
    def standard_chat_model_params(self) -> dict:
        return {"temperature": 0, "max_tokens": 24, "timeout": 60, "stop": []}

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False


class TestChatOELUnit(_Settings, ChatModelUnitTests):
    pass


class TestChatOELIntegration(_Settings, ChatModelIntegrationTests):
    pass


class TestMemoryRetriever(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _memory(self, tmp_path):
        from memory.store import Memory

        memory = Memory(tmp_path / "memory")
        lessons = ["When you see a coin, take coin.", "A locked door needs the key from the chest first.",
                   "Go east twice from the kitchen to reach the cellar.", "Eat the apple only after the quest is won.",
                   "Open the red box before you look for the blue key.", "The lamp in the hall lights the dark attic."]
        for n, text in enumerate(lessons):  # different enough that none merges into another
            memory.add(text, env="tw-coin_collector", source=f"r1-ep{n}", outcome="won", round=1, created_by="smollm2-135m")
        self.memory = memory
        yield
        memory.close()

    @property
    def retriever_constructor(self):
        from memory.retriever import MemoryRetriever

        return MemoryRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"memory": self.memory}

    @property
    def retriever_query_example(self) -> str:
        return "how do I get the coin"


def test_the_chat_model_streams_tokens_stops_early_and_refuses_what_it_would_ignore():
    from langchain_core.callbacks import BaseCallbackHandler

    class Tokens(BaseCallbackHandler):
        def __init__(self):
            self.tokens = []

        def on_llm_new_token(self, token, **kwargs):
            self.tokens.append(token)

    chat = ChatOEL(policy=embedded_policy(), temperature=0, max_tokens=24)
    seen = Tokens()
    chunks = list(chat.stream("Count from one to ten in words.", config={"callbacks": [seen]}))
    assert len(chunks) > 3 and chunks[-1].chunk_position == "last"  # token by token, not one message
    assert "".join(c.content for c in chunks) == chat.invoke("Count from one to ten in words.").content  # greedy
    assert len(seen.tokens) >= len(chunks) - 1
    full = chat.invoke("Count from one to ten in words.")
    assert full.response_metadata["model_name"] == "smollm2-135m" and chat._get_ls_params()["ls_model_name"] == "smollm2-135m"
    word = full.content.split()[1]
    stopped = chat.invoke("Count from one to ten in words.", stop=[word])
    assert word not in stopped.content and stopped.usage_metadata["output_tokens"] < full.usage_metadata["output_tokens"]
    assert "".join(c.content for c in chat.stream("Count from one to ten in words.", stop=[word])) == stopped.content
    assert ChatOEL(policy=embedded_policy(), temperature=0, max_tokens=3).invoke("Hi").usage_metadata["output_tokens"] <= 3
    assert chat.get_num_tokens("take coin") == len(embedded_policy().tokenizer.encode("take coin"))
    with pytest.raises(ValueError, match="max_token"):
        ChatOEL(policy=embedded_policy(), max_token=5)  # a typo is an error, not a silent default
    with pytest.raises(TypeError, match="unknown argument"):
        chat.invoke("Hi", top_q=0.5)
    sampled = ChatOEL(policy=embedded_policy(), temperature=1.0, max_tokens=12, seed=7)
    assert sampled.invoke("Name a colour.").content == sampled.invoke("Name a colour.").content  # seeded
    assert {sampled.invoke("Name a colour.", seed=s).content for s in range(4)} != {sampled.invoke("Name a colour.").content}


def test_the_retriever_takes_k_mmr_thresholds_and_reaches_consolidated_items(tmp_path):
    from memory.store import Memory

    with Memory(tmp_path / "memory") as memory:
        texts = ["When you see a coin, take coin.", "When you see a coin on the table, take the coin.",
                 "A locked door needs the key from the chest first.", "Go east twice from the kitchen to the cellar."]
        ids = [memory.add(t, env="tw-coin_collector", source=f"r1-ep{n}", outcome="won", round=1,
                          created_by="smollm2-135m", merge_distance=0)[0] for n, t in enumerate(texts)]
        retriever = memory.as_retriever(k=3)
        assert len(retriever.invoke("coin", k=1)) == 1
        nearest = retriever.invoke("how do I get the coin")
        assert [d.id for d in nearest[:2]] == ids[:2] and all(0 <= d.metadata["relevance_score"] <= 1 for d in nearest)
        diverse = memory.as_retriever(k=2, search_type="mmr", search_kwargs={"lambda_mult": 0.1}).invoke("how do I get the coin")
        assert len(diverse) == 2 and {d.id for d in diverse} != set(ids[:2])  # MMR trades the near-duplicate away
        strict = memory.as_retriever(search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.99})
        assert strict.invoke("how do I get the coin") == []
        memory.mark_consolidated(ids[:1], "v1")
        assert ids[0] not in [d.id for d in retriever.invoke("coin")]
        absorbed = memory.as_retriever(search_kwargs={"status": "consolidated"}).invoke("coin")
        assert [d.id for d in absorbed] == ids[:1]
        with pytest.raises(ValueError, match="unknown search_kwargs"):
            memory.as_retriever(search_kwargs={"top": 2})
