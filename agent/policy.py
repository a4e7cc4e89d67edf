"""The policy: a local causal LM that acts by choosing among commands or by writing a response.

- `Policy.load("smollm2-135m")` loads the embedded default; any local Hugging Face model directory works
  too, as does a hub id already in the local cache (`agent/models.py` finds it).
- LoRA adapters from earlier rounds are applied and merged, in order: policy r = base + adapters 1..r.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from agent.device import dtype_name, resolve_device, resolve_dtype
from agent.models import resolve_model_path
from agent.scoring import TurnCache, candidate_logprobs
from agent.templates import cut_at_stop, render_prompt, supports_thinking
from oel.config import DEFAULT_MODEL
from oel.errors import OELError


@dataclass
class Choice:
    command: str
    index: int
    logprobs: list[float]
    """Length-normalised log-likelihood of every candidate, in candidate order."""
    n_tokens: int
    """Tokens of the chosen command (what acting 'generated')."""


class Policy:
    """A causal LM with a tokenizer, and the name of what it is (model plus adapters) for provenance."""

    def __init__(self, model, tokenizer, name: str):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.end_ids = tokenizer.encode(tokenizer.eos_token, add_special_tokens=False)
        self.reuse_cache = True
        """Choose mode keeps the previous turn's KV cache (one per thread, i.e. per game) and encodes only
        what the new prompt adds to it (`TurnCache`). Off: every prompt is encoded from scratch."""
        self._turns = threading.local()
        self.prompt_tokens = {"reused": 0, "encoded": 0}
        """Prompt tokens scored in choose mode, over all threads: taken from a turn cache, or encoded."""
        self._stop_matchers: dict[tuple[str, ...], object] = {}
        """One transformers `StopStringCriteria` per stop list (`stop_matcher`)."""

    @classmethod
    def load(cls, model: str = DEFAULT_MODEL, adapters: list[str | Path] = (), name: str | None = None,
             device: str = "auto", dtype: str = "auto") -> Policy:
        """Load `model` onto `device` in `dtype` (settings as in `agent.device`) and merge `adapters` there.

        transformers picks SDPA attention wherever the model supports it (`runtime()` says which it took).
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        where = resolve_device(device)
        if where.type == "cuda":
            torch.cuda.set_device(where)  # so the trainer's plain "cuda" is this device too
        precision = resolve_dtype(dtype, where)
        path = resolve_model_path(model)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            lm = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=precision)
        except OSError as err:
            raise OELError(f"cannot load model {model!r}: {str(err).splitlines()[0]}") from None
        lm = lm.to(where)
        for adapter in adapters:
            lm = merge_adapter(lm, adapter)
        lm.eval()
        lm.generation_config.pad_token_id = tokenizer.pad_token_id or tokenizer.eos_token_id
        return cls(lm, tokenizer, name or model)

    def runtime(self) -> dict:
        """Device, dtype and attention kernel, as manifests and bench JSON record them."""
        return {"device": str(self.model.device), "dtype": dtype_name(self.model.dtype),
                "attention": getattr(self.model.config, "_attn_implementation", None)}

    def as_chat_model(self, **settings):
        """This policy as a LangChain chat model (`agent.chat_model.PolicyChatModel`)."""
        from agent.chat_model import PolicyChatModel

        return PolicyChatModel(policy=self, **settings)

    # ---- prompts ----
    @property
    def supports_thinking(self) -> bool:
        """Whether the chat template has a thinking switch (`enable_thinking`, as Qwen3's does)."""
        return supports_thinking(self.tokenizer)

    def render(self, messages: list[dict], prefill: str = "", thinking: bool = False) -> str:
        """The exact text the model sees (`render_prompt`)."""
        return render_prompt(self.tokenizer, messages, prefill, thinking, self.name)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    # ---- choose mode ----
    @torch.no_grad()
    def score_candidates(self, prompt: str, candidates: list[str]) -> torch.Tensor:
        """Length-normalised log-likelihood of each candidate (followed by end-of-turn) after `prompt`."""
        if not self.reuse_cache:
            return candidate_logprobs(self.model, self.tokenizer, prompt, candidates, self.end_ids)
        if not hasattr(self._turns, "cache"):
            self._turns.cache = TurnCache()
        turn = self._turns.cache
        scores = turn.score(self.model, self.tokenizer, prompt, candidates, self.end_ids)
        self.prompt_tokens["reused"] += turn.last_reused
        self.prompt_tokens["encoded"] += turn.last_encoded
        return scores

    def reset_cache(self) -> None:
        """Forget this thread's cached turn. Needed only after changing the weights in place."""
        self._turns.__dict__.pop("cache", None)

    def choose(self, prompt: str, candidates: list[str], temperature: float = 1.0, greedy: bool = False,
               generator: torch.Generator | None = None) -> Choice:
        return self.pick(self.score_candidates(prompt, candidates), candidates, temperature, greedy, generator)

    def pick(self, scores: torch.Tensor, candidates: list[str], temperature: float = 1.0, greedy: bool = False,
             generator: torch.Generator | None = None) -> Choice:
        """Sample a command from softmax(scores / temperature), or take the argmax."""
        if greedy:
            index = int(scores.argmax())
        else:
            probs = F.softmax(scores / temperature, dim=0)
            index = int(torch.multinomial(probs, 1, generator=generator))
        command = candidates[index]
        return Choice(command, index, scores.tolist(), self.count_tokens(command))

    # ---- generate mode ----
    @torch.no_grad()
    def generate(self, prompts: list[str], max_new_tokens: int = 48, temperature: float = 0.7,
                 greedy: bool = False, top_p: float = 0.8, top_k: int = 20, stop: list[str] | None = None,
                 max_time: float | None = None, streamer=None, seed: int | None = None) -> list[tuple[str, int]]:
        """Batched sampling (paper defaults T=0.7, top-p 0.8, top-k 20). Returns (text, tokens generated).
        Generation ends at a `stop` string (not after it: the string is cut off the text), or after
        `max_time` seconds; `streamer` (a transformers streamer) receives the tokens as they come. `seed`
        seeds torch's generator first (transformers samples from it), so the same call repeats."""
        if seed is not None:
            torch.manual_seed(seed)
        tok = self.tokenizer
        tok.padding_side = "left"
        batch = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        sampling = {"do_sample": False} if greedy else {"do_sample": True, "temperature": temperature,
                                                        "top_p": top_p, "top_k": top_k}
        extra = {"stopping_criteria": [self.stop_matcher(stop)]} if stop else {}
        if max_time is not None:
            extra["max_time"] = max_time
        if streamer is not None:
            extra["streamer"] = streamer
        if len(set(prompts)) < len(prompts) and batch.input_ids.shape[1] > 1:
            extra["past_key_values"] = self.prefill_once(prompts, batch)
        out = self.model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id, **sampling, **extra)
        results = []
        for row in out[:, batch.input_ids.shape[1]:]:
            row = row.tolist()
            n = next((i for i, t in enumerate(row) if t in self.end_ids or t == tok.pad_token_id), len(row))
            results.append((cut_at_stop(tok.decode(row[:n], skip_special_tokens=True), stop), n))
        return results

    def prefill_once(self, prompts: list[str], batch) -> object:
        """The KV cache of a batch's prompts but their last token, each distinct prompt encoded once and its
        cache copied to the rows that repeat it; `generate` then encodes only the last tokens. Reflection asks
        for several samples of one prompt (`reflection_samples`), and on a CPU encoding each copy of it was
        most of the call's cost."""
        first_row = {}
        rows = [first_row.setdefault(p, i) for i, p in enumerate(prompts)]
        distinct = list(first_row.values())
        ids, mask = batch.input_ids[distinct, :-1], batch.attention_mask[distinct, :-1]
        out = self.model(ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0), use_cache=True,
                         logits_to_keep=1)
        cache = out.past_key_values
        cache.reorder_cache(torch.tensor([distinct.index(r) for r in rows], device=ids.device))
        return cache

    def stop_matcher(self, stop: list[str]):
        """transformers' matcher for `stop` strings. Given `stop_strings`, `generate` builds it again from the
        whole vocabulary on every call (a few tenths of a second on a CPU, one call per move in generate
        mode); it keeps no state between calls, so one per stop list is built and reused."""
        from transformers import StopStringCriteria

        key = tuple(stop)
        if key not in self._stop_matchers:
            self._stop_matchers[key] = StopStringCriteria(self.tokenizer, list(key))
        return self._stop_matchers[key]


def merge_adapter(model, adapter_dir: str | Path):
    """Apply a LoRA adapter and fold it into the weights, so the next round trains a fresh one on top."""
    from peft import PeftModel

    if not (Path(adapter_dir) / "adapter_config.json").is_file():
        raise OELError(f"adapter not found: {adapter_dir} has no adapter_config.json")
    try:
        with warnings.catch_warnings():
            # PEFT asks the model a property that transformers 5 deprecates; the warning is theirs, not the user's.
            warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
            return PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    except Exception as err:  # peft raises many types for a damaged adapter
        raise OELError(f"cannot load the adapter in {adapter_dir} (damaged?): {type(err).__name__}: {err}; "
                       "roll back past it with `oel checkpoints rollback`") from None
