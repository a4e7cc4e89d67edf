"""Shared fixtures. Fast tests use a tiny random model with the real SmolLM2 tokenizer; tests marked
`slow` use the real embedded model, TextWorld, Chroma and TRL end to end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import oel  # noqa: E402,F401  (sets the offline environment)


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    from agent.policy import embedded_model_dir

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
