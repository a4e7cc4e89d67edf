"""Concurrent games with their model calls batched into one forward pass.

`BatchedPolicy` wraps a `Policy` for K games that run at once (one thread each, same acting graph).
Every game's `choose` call goes into a queue; a worker thread takes whatever is waiting, scores all
those prompts and all their candidate commands in one batched shared-prefix pass, and hands each game
its own result. Sampling still uses each game's own seeded generator, so a game's actions depend only
on its own scores.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from agent.policy import Choice, Policy
from oel.errors import OELError

CANDIDATE_CHUNK = 48
"""Candidate rows scored per forward pass. Each row holds a copy of its prompt's KV cache, so this bounds
memory: ~28 MB a row for a 600-token prompt on SmolLM2-135M."""


@torch.no_grad()
def batch_candidate_logprobs(model, tokenizer, prompts: list[str], candidate_lists: list[list[str]],
                             end_ids: list[int], chunk: int = CANDIDATE_CHUNK) -> list[torch.Tensor]:
    """`candidate_logprobs` for many prompts at once: one left-padded prefill, then the candidates of all
    prompts in chunks, each row reusing its prompt's KV cache."""
    if any(not c for c in candidate_lists):
        raise OELError("no admissible commands to choose from")
    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    prompt_mask = batch.attention_mask
    positions = (prompt_mask.cumsum(1) - 1).clamp(min=0)
    out = model(batch.input_ids, attention_mask=prompt_mask, position_ids=positions, use_cache=True)
    first_logits, cache = out.logits[:, -1:, :], out.past_key_values
    lengths = prompt_mask.sum(1)

    rows = [(p, tokenizer.encode(c, add_special_tokens=False) + end_ids) for p, cands in enumerate(candidate_lists)
            for c in cands]
    scores = []
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        owner = torch.tensor([p for p, _ in part])
        width = max(len(ids) for _, ids in part)
        ids = torch.full((len(part), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(part), width), dtype=torch.long)
        for i, (_, cand) in enumerate(part):
            ids[i, :len(cand)] = torch.tensor(cand)
            mask[i, :len(cand)] = 1
        part_cache = _select_rows(cache, owner)
        attention = torch.cat([prompt_mask[owner], mask], dim=1)
        pos = lengths[owner].unsqueeze(1) + torch.arange(width).unsqueeze(0)
        logits = model(ids, past_key_values=part_cache, attention_mask=attention, position_ids=pos).logits
        logits = torch.cat([first_logits[owner], logits[:, :-1]], dim=1)
        token_logp = F.log_softmax(logits.float(), dim=-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
        scores.append((token_logp * mask).sum(1) / mask.sum(1))
    flat = torch.cat(scores)
    sizes = [len(c) for c in candidate_lists]
    return list(torch.split(flat, sizes))


def _select_rows(cache, owner: torch.Tensor):
    """A copy of the prompt cache with row i holding prompt owner[i]'s keys and values."""
    import copy

    part = copy.copy(cache)
    part.layers = [copy.copy(layer) for layer in cache.layers]
    for layer in part.layers:
        layer.keys = layer.keys.index_select(0, owner)
        layer.values = layer.values.index_select(0, owner)
    return part


@dataclass
class _Request:
    prompt: str
    candidates: list[str]
    temperature: float
    greedy: bool
    generator: torch.Generator | None
    future: Future = field(default_factory=Future)


class BatchedPolicy:
    """A `Policy` whose `choose` calls from concurrent games are batched. Everything else is delegated."""

    def __init__(self, policy: Policy, max_batch: int = 16, wait_s: float = 0.02):
        self.policy = policy
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.batch_sizes: list[int] = []
        """Size of every batch run, for the benchmark and tests."""
        self._queue: queue.Queue[_Request] = queue.Queue()
        self._worker = threading.Thread(target=self._serve, daemon=True)
        self._worker.start()

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def choose(self, prompt: str, candidates: list[str], temperature: float = 1.0, greedy: bool = False,
               generator: torch.Generator | None = None) -> Choice:
        if not candidates:
            raise OELError("no admissible commands to choose from")
        request = _Request(prompt, candidates, temperature, greedy, generator)
        self._queue.put(request)
        return request.future.result()

    def close(self) -> None:
        """Stop the worker thread (after the requests already queued)."""
        self._queue.put(None)
        self._worker.join(timeout=60)

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            # Gather what the other games send while this one waited: their env steps take ~2 ms.
            while len(batch) < self.max_batch:
                try:
                    request = self._queue.get(timeout=self.wait_s)
                except queue.Empty:
                    break
                if request is None:  # closing: serve this batch, then stop
                    self._queue.put(None)
                    break
                batch.append(request)
            try:
                self.batch_sizes.append(len(batch))
                scores = batch_candidate_logprobs(self.policy.model, self.policy.tokenizer, [r.prompt for r in batch],
                                                  [r.candidates for r in batch], self.policy.end_ids)
                for request, s in zip(batch, scores):
                    request.future.set_result(self.policy.pick(s, request.candidates, request.temperature,
                                                               request.greedy, request.generator))
            except Exception as err:  # hand the error to every waiting game instead of hanging them
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(err)
