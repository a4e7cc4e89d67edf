"""Concurrent games with their model calls batched into one forward pass.

`BatchedPolicy` wraps a `Policy` for K games that run at once (one thread each, same acting graph).
Every game's `choose` and `generate` call goes into a queue; a worker thread takes whatever is waiting:
- all `choose` calls are scored in one batched shared-prefix pass (prompts and all their candidate
  commands). Sampling still uses each game's own seeded generator, so a game's actions depend only on its
  own scores;
- `generate` calls with the same settings (generate-mode acting, reflection) become one batched
  `generate` over all their prompts.
Each game gets its own result.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from agent.policy import Choice, Policy
from agent.scoring import batch_candidate_logprobs
from oel.errors import OELError

GATHER_S = 0.02
"""How long a batch waits for the other games' calls once one has come: their env steps take ~2 ms. A batch
that already holds a call from every game in play (`BatchedPolicy.playing`) does not wait."""


@dataclass
class _Request:
    prompt: str
    candidates: list[str]
    temperature: float
    greedy: bool
    generator: torch.Generator | None
    future: Future = field(default_factory=Future)


@dataclass
class _Generation:
    prompts: list[str]
    settings: tuple
    """(max_new_tokens, temperature, greedy, top_p, top_k, stop, max_time): calls batch when these agree."""
    future: Future = field(default_factory=Future)


class BatchedPolicy:
    """A `Policy` whose `choose` and `generate` calls from concurrent games are batched. Everything else is
    delegated."""

    def __init__(self, policy: Policy, max_batch: int = 16, wait_s: float | None = None):
        self.policy = policy
        self.max_batch = max_batch
        self.wait_s = GATHER_S if wait_s is None else wait_s
        self.batch_sizes: list[int] = []
        """Size of every batch run, for the benchmark and tests."""
        self._playing = 0
        """Callers inside `playing()`: once each has a call in the batch, nobody else will send one."""
        self._count_lock = threading.Lock()
        self._queue: queue.Queue[_Request] = queue.Queue()
        self._worker = threading.Thread(target=self._serve, daemon=True)
        self._worker.start()

    def __getattr__(self, name):
        return getattr(self.policy, name)

    @contextmanager
    def playing(self):
        """Count the calling game as in play while inside. A batch closes as soon as it holds a call from
        every game in play, where it would otherwise wait `wait_s` for calls that cannot come (on a GPU the
        wait was longer than the forward pass, whenever fewer games than `max_batch` were left)."""
        with self._count_lock:
            self._playing += 1
        try:
            yield self
        finally:
            with self._count_lock:
                self._playing -= 1

    def choose(self, prompt: str, candidates: list[str], temperature: float = 1.0, greedy: bool = False,
               generator: torch.Generator | None = None) -> Choice:
        if not candidates:
            raise OELError("no admissible commands to choose from")
        request = _Request(prompt, candidates, temperature, greedy, generator)
        self._queue.put(request)
        return request.future.result()

    def generate(self, prompts: list[str], max_new_tokens: int = 48, temperature: float = 0.7,
                 greedy: bool = False, top_p: float = 0.8, top_k: int = 20, stop: list[str] | None = None,
                 max_time: float | None = None, streamer=None, seed: int | None = None) -> list[tuple[str, int]]:
        # `seed` is not honoured: a batch of several callers samples from one stream, so no caller's seed can
        # fix its own draws (a run repeats exactly at concurrency 1, where the policy itself serves the call).
        if streamer is not None:  # a stream belongs to one caller: not batched
            return self.policy.generate(prompts, max_new_tokens, temperature, greedy, top_p, top_k, stop,
                                        max_time, streamer)
        request = _Generation(list(prompts), (max_new_tokens, temperature, greedy, top_p, top_k,
                                              tuple(stop or ()), max_time))
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
            while len(batch) < self.max_batch and not 0 < self._playing <= len(batch):
                try:
                    request = self._queue.get(timeout=self.wait_s)
                except queue.Empty:
                    break
                if request is None:  # closing: serve this batch, then stop
                    self._queue.put(None)
                    break
                batch.append(request)
            self.batch_sizes.append(len(batch))
            self._run([r for r in batch if isinstance(r, _Request)])
            groups: dict[tuple, list[_Generation]] = {}
            for r in batch:
                if isinstance(r, _Generation):
                    groups.setdefault(r.settings, []).append(r)
            for requests in groups.values():
                self._run_generation(requests)

    def _run(self, batch: list[_Request]) -> None:
        if not batch:
            return
        try:
            with torch.no_grad():
                scores = batch_candidate_logprobs(self.policy.model, self.policy.tokenizer,
                                                  [r.prompt for r in batch], [r.candidates for r in batch],
                                                  self.policy.end_ids)
            for request, s in zip(batch, scores):
                request.future.set_result(self.policy.pick(s, request.candidates, request.temperature,
                                                           request.greedy, request.generator))
        except Exception as err:  # hand the error to every waiting game instead of hanging them
            _fail(batch, err)

    def _run_generation(self, batch: list[_Generation]) -> None:
        max_new_tokens, temperature, greedy, top_p, top_k, stop, max_time = batch[0].settings
        try:
            results = self.policy.generate([p for r in batch for p in r.prompts], max_new_tokens, temperature,
                                           greedy, top_p, top_k, list(stop) or None, max_time)
            at = 0
            for request in batch:
                request.future.set_result(results[at:at + len(request.prompts)])
                at += len(request.prompts)
        except Exception as err:
            _fail(batch, err)


def _fail(batch: list, err: Exception) -> None:
    for request in batch:
        if not request.future.done():
            request.future.set_exception(err)
