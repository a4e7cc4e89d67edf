"""Shared fixtures. Fast tests use a tiny random model with the real SmolLM2 tokenizer; tests marked
`slow` use the real embedded model, TextWorld, Chroma and TRL end to end."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# `oel loop` and `oel play` record the run they used (for the commands that follow); in the tests that record
# goes to a scratch file, not into the checkout's runs/ directory.
os.environ["OEL_LAST_RUN"] = os.path.join(tempfile.mkdtemp(prefix="oel-tests-"), ".last-run")

import oel as _offline  # noqa: E402,F401  (importing oel sets the offline environment)


@pytest.fixture(autouse=True)
def float32_on_every_cpu(monkeypatch):
    """`dtype = "auto"` takes bfloat16 on a CPU that has it in hardware. In-process tests run in float32 on every
    CPU, so that their tolerances hold wherever they run: tests/test_device.py checks the choice itself, and
    bench/precision.py's test plays in bfloat16. (`oel` subprocesses take what the CPU offers.)"""
    monkeypatch.setattr("agent.device.native_bf16_cpu", lambda: False)


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    from agent.models import embedded_model_dir

    return AutoTokenizer.from_pretrained(embedded_model_dir())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer) -> Path:
    """A randomly initialised 2-layer Llama saved as a Hugging Face model directory."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    path = tmp_path_factory.mktemp("tiny-model")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_policy(tiny_model_dir):
    from agent.policy import Policy

    return Policy.load(str(tiny_model_dir), name="tiny")


@pytest.fixture(scope="session")
def coin_game() -> Path:
    """A real TextWorld coin-collector game (level 1), generated once with tw-make and cached."""
    from agent.games import GameSpec, make_game

    return make_game(GameSpec("tw-coin_collector", 1, 424242))


# A logged coin-collector episode, built by hand in the format `agent.rollout` logs: the procedure, grounding
# and reflection tests read it.
_START = "-= Cellar =-\nYou arrive in a cellar. There is an exit to the west."
_ROOMS = {
    "Shower": "-= Shower =-\nYou are in a shower. There is an exit to the north. There is an exit to the east.",
    "Cellar": _START,
    "Chamber": "-= Chamber =-\nYou arrive in a chamber. There is a coin on the floor. There is an exit to the south.",
}
_VALID = {"Cellar": ["go west", "look"], "Shower": ["go east", "go north", "look"],
          "Chamber": ["examine coin", "go south", "look", "take coin"]}
_WANDERING = [("go west", _ROOMS["Shower"]), ("go east", _ROOMS["Cellar"]), ("go west", _ROOMS["Shower"]),
              ("go north", _ROOMS["Chamber"]), ("examine coin", "The coin is modern."),
              ("go south", _ROOMS["Shower"]), ("go north", _ROOMS["Chamber"]),
              ("take coin", "You pick up the coin from the ground.\nYour score has just gone up by one point.\n"
                            "*** The End ***")]


def _episode(moves: list[tuple[str, str]], won: bool = True, outcome: str | None = None) -> dict:
    """An episode in the logged format: moves are (command, feedback); a feedback naming a room moves there."""
    from agent.prompts import prompt_messages
    from oel.config import OELConfig

    turns, room, observation, score = [], "Cellar", _START, 0
    for command, feedback in moves:
        reward = int(command == "take coin")
        score += reward
        prefix = prompt_messages(OELConfig.acting_prompt, "find the coin", _START, turns, observation, _VALID[room])
        turns.append({"prefix": prefix, "action": command, "output": command, "admissible": _VALID[room],
                      "feedback": feedback, "score": score, "reward": reward})
        room = next((name for name, text in _ROOMS.items() if feedback == text), room)
        observation = feedback
    return {"id": "e1", "env": "tw-coin_collector", "won": won, "outcome": outcome or ("won" if won else "lost"),
            "objective": "Welcome to TextWorld! First, go west. Then recover the coin from the floor of the chamber.",
            "turns": turns}


@pytest.fixture
def ROOMS():  # noqa: N802  (read as the constant it is)
    """Observation text of each room of the hand-built episode."""
    return _ROOMS


@pytest.fixture
def WANDERING():  # noqa: N802
    """A won episode's moves: there and back, an examine and a loop before the coin is taken."""
    return _WANDERING


@pytest.fixture
def episode():
    """Build a logged episode from (command, feedback) moves."""
    return _episode


CHROMA = str(Path(sys.executable).parent / "chroma")


def free_port() -> int:
    """A localhost port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chroma_server(tmp_path):
    """A real Chroma server (`chroma run`) on a free localhost port, for this test only; yields its URL."""
    port = free_port()
    server = subprocess.Popen([CHROMA, "run", "--path", str(tmp_path / "db"), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.3)
    else:
        server.kill()
        pytest.fail("chroma server did not start within 60 s")
    yield url
    server.terminate()
    server.wait(timeout=30)


# Helpers several test modules use (import them from tests.conftest).

OEL = str(Path(sys.executable).parent / "oel")


def oel(*args, env=None, cwd=None):
    """The `oel` command line in a subprocess, as a user would run it."""
    return subprocess.run([OEL, *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, cwd=cwd)


THINKING_TEMPLATE = (  # the shape of Qwen3's switch, reduced to what matters here
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n{% endif %}{% endif %}")


def naive_scores(policy, prompt, candidates):
    """Reference: one full forward pass per candidate over prompt + candidate."""
    from agent.scoring import naive_candidate_logprobs

    return naive_candidate_logprobs(policy.model, policy.tokenizer, prompt, candidates, policy.end_ids)
