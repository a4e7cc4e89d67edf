"""Rollout benchmark: steps per second of choose-mode play, naive versus the project's fast path.

    .venv/bin/python -m bench.rollout [--games 16] [--steps 6] [--generate-games 4] [--challenges C ...]
                                      [--acting-prompt chat|transcript] [--device D] [--processes P] [--json]

- naive: one game at a time; every candidate command is scored with a full forward pass over prompt +
  candidate, so the whole prompt is re-encoded for every candidate, every turn;
- fast@1 (no reuse): one game at a time, shared-prefix scoring (the prompt is encoded once per step and
  every candidate reads its KV cache), each prompt encoded from scratch;
- fast@1: the same, plus the previous turn's cache reused where the prompt only grew (`TurnCache`);
- fast@K: K games at once through the same graph, their scoring batched into shared forward passes (each
  batch encodes its prompts from scratch: games' caches differ in length).

- generate@1 and generate@G: generate mode (the model writes each command), one game at a time and G
  games at once (their `generate` calls batched);
- reflect@1 and reflect@K: the lessons of fast@K's K episodes generated one episode at a time, and all at
  once (their `generate` calls batched, as concurrent play does).
- fast@K in P processes (`--processes P`, off by default): the same K games split over P processes, each
  with its own copy of the model on the device and its K/P games batched as fast@K batches them (one game a
  process: the fast@1 path). Not a path of the loop: it measures whether what one process can do a step (its
  games' CPU-side work, and the one thread that runs its batched forward passes) is what bounds fast@K on an
  accelerator. Timed from when every process has loaded its model and warmed up.

`prompt_tokens_reused` is the share of fast@1's prompt tokens taken from the turn cache, and
`prompt_tokens_per_step` the mean prompt's length: both depend on the acting prompt's format
(`--acting-prompt`, the config's by default), and on the step limit, since the history window moves (and
the prompt is encoded afresh) every 4 turns once a game is 8 turns long (`--steps 20`, the loop's limit,
shows that cost; at 6 steps it never moves).

`fast_steps_per_s` is the best of fast@1 and fast@K on this machine (`fast_path` says which), `speedup` is
that over naive, and `batched_speedup` is fast@K over fast@1. All figures come from one run on one
machine, with the embedded SmolLM2-135M and real TextWorld games. The naive path is slow (~3 s a step on
2 CPU cores), so it plays fewer games; steps per second are comparable regardless.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor


from agent.games import make_suite, suite_specs
from agent.policy import Policy
from agent.scoring import naive_candidate_logprobs
from agent.batching import BatchedPolicy
from agent.rollout import play_games
from bench.common import device_description, print_result
from memory.reflection import Reflector
from oel.progress import progress
from oel.config import ACTING_PROMPTS, DEFAULT_MODEL, OELConfig
from oel.errors import OELError, one_line_errors

CHALLENGES = ["tw-coin_collector:3", "tw-treasure_hunter:2"]
"""The default suite: what the learning loop plays. These games offer ~5 commands a step, which bounds what
shared-prefix scoring can save; `--challenges tw-cooking:1` (~13-21 commands a step) shows the regime the
naive path is worst at."""


class NaivePolicy(Policy):
    def score_candidates(self, prompt, candidates):
        return naive_candidate_logprobs(self.model, self.tokenizer, prompt, candidates, self.end_ids)


def steps_per_s(policy, games, cfg, concurrency) -> tuple[float, int, float, list[dict]]:
    """Steps per second, steps played, the mean number of commands scored a step, and the episodes."""
    start = time.perf_counter()
    records = play_games(policy, games, cfg, round=0, seed_base=0, concurrency=concurrency,
                         desc=f"{type(policy).__name__} {cfg.action_mode}@{concurrency}")
    steps = sum(r["steps"] for r in records)
    turns = [t for r in records for t in r["turns"]]
    commands = sum(len(t["admissible"]) for t in turns) / max(1, len(turns))
    return steps / (time.perf_counter() - start), steps, commands, records


def reflections_per_s(policy, episodes, cfg, concurrency) -> float:
    """Episodes reflected on per second (the lessons' generation, `reflection_samples` answers each), one
    episode at a time or `concurrency` at once through a `BatchedPolicy`, as concurrent play does."""
    writer = BatchedPolicy(policy, max_batch=concurrency) if concurrency > 1 else policy
    reflector = Reflector(writer, None, cfg, "bench")
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(progress(pool.map(reflector.lessons, episodes),
                      total=len(episodes), desc=f"reflect@{concurrency}", unit="episode"))
    if writer is not policy:
        writer.close()
    return len(episodes) / (time.perf_counter() - start)


def process_share(games, cfg, seed_base, model, device, dtype, threads, ready, results) -> None:
    """One process of `processes_steps_per_s`: load the model, warm up, wait for the others, play its share of
    the games batched, and report (steps, start time, end time). A process that fails, however it ends, is
    seen by `watch_processes`."""
    import torch

    torch.set_num_threads(threads)  # the processes share the cores
    policy = Policy.load(model, device=device, dtype=dtype)
    play_games(policy, games[:1], cfg, round=0, seed_base=seed_base, desc="warm-up")
    ready.wait()
    began = time.monotonic()
    records = play_games(policy, games, cfg, round=0, seed_base=seed_base, concurrency=len(games), desc="share")
    results.put((sum(r["steps"] for r in records), began, time.monotonic()))


def processes_steps_per_s(games, cfg, processes: int, device: str, dtype: str, model: str = DEFAULT_MODEL,
                          share=process_share) -> float:
    """Steps per second of `games` played at once over `processes` processes (module docstring). Process p
    plays a contiguous block with the seeds those games have in fast@K, so both paths play the same games.
    `share` is what each process runs (`process_share`; a test passes one that dies)."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no copied CUDA state
    size = -(-len(games) // processes)
    blocks = [(games[at:at + size], at) for at in range(0, len(games), size)]
    ready, results = context.Barrier(len(blocks) + 1), context.Queue()
    threads = max(1, (os.cpu_count() or 1) // len(blocks))
    workers = [context.Process(target=share, args=(block, cfg, at, model, device, dtype, threads, ready, results))
               for block, at in blocks]
    for worker in workers:
        worker.start()
    collected = threading.Event()
    watcher = threading.Thread(target=watch_processes, args=(workers, ready, results, collected), daemon=True)
    watcher.start()
    try:
        ready.wait()
        shares = []
        while len(shares) < len(workers) and None not in shares:  # one failure is enough to stop waiting
            shares.append(results.get())
    except threading.BrokenBarrierError:
        shares = [None]
    collected.set()
    watcher.join()
    for worker in workers:
        worker.join()
    if None in shares:
        raise OELError("a process of the multi-process path failed (its error is above)")
    return sum(steps for steps, _, _ in shares) / (max(end for _, _, end in shares) - min(b for _, b, _ in shares))


def watch_processes(workers, ready, results, collected: threading.Event, every_s: float = 0.5) -> None:
    """Until `collected` is set: if a process has ended with an error (an exception, or a signal, which runs no
    Python cleanup), release whoever waits for it: abort the start barrier and post a failure (None)."""
    while not collected.wait(every_s):
        if any(worker.exitcode not in (None, 0) for worker in workers):
            ready.abort()
            results.put(None)
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=16, help="games for the fast paths (and the batch size)")
    parser.add_argument("--naive-games", type=int, default=4,
                        help="games for the naive path (~3 s a step on 2 CPU cores; fewer games, a noisier rate)")
    parser.add_argument("--steps", type=int, default=6, help="step limit per game")
    parser.add_argument("--generate-games", type=int, default=4,
                        help="games for generate mode, played one at a time and all at once (it is slow on a CPU)")
    parser.add_argument("--challenges", nargs="+", default=CHALLENGES, metavar="C",
                        help=f"game challenges, as for `oel games make` (default: {' '.join(CHALLENGES)})")
    parser.add_argument("--acting-prompt", choices=ACTING_PROMPTS, default=OELConfig.acting_prompt,
                        help="the acting prompt's format (as the config's acting_prompt)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (as the config's device)")
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16 (as the config's dtype)")
    parser.add_argument("--processes", type=int, default=1,
                        help="also play the fast@K games over this many processes, each with its own model (1: not)")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    # One game is not a batch, and the one-at-a-time and all-at-once figures would share a key (fast1, generate1).
    for name in ("games", "generate_games"):
        if getattr(args, name) < 2:
            parser.error(f"--{name.replace('_', '-')} must be at least 2, got {getattr(args, name)}")
    if not 1 <= args.processes <= args.games:
        parser.error(f"--processes must be between 1 and --games ({args.games}), got {args.processes}")

    cfg = OELConfig(max_steps=args.steps, acting_prompt=args.acting_prompt)
    specs = suite_specs(args.challenges, args.games, 20_000)
    games = list(zip(make_suite(specs), [s.env_family for s in specs]))
    fast = Policy.load(device=args.device, dtype=args.dtype)
    naive = NaivePolicy(fast.model, fast.tokenizer, "naive")
    # Warm-up: first-call allocations, and one game of each challenge, so that no path pays TextWorld's one-off
    # parse of a challenge's game logic (~0.1 s; it is cached for the process).
    firsts = list({family: (game, family) for game, family in reversed(games)}.values())
    play_games(fast, firsts, cfg, round=0, seed_base=0)

    naive_rate, naive_steps, _, _ = steps_per_s(naive, games[:args.naive_games], cfg, 1)
    fast.reuse_cache = False
    plain_rate, plain_steps, candidates, _ = steps_per_s(fast, games, cfg, 1)
    fast.reuse_cache, fast.prompt_tokens = True, {"reused": 0, "encoded": 0}
    fast1_rate, fast1_steps, _, _ = steps_per_s(fast, games, cfg, 1)
    prompt_tokens = fast.prompt_tokens["reused"] + fast.prompt_tokens["encoded"]
    reused = fast.prompt_tokens["reused"] / max(1, prompt_tokens)
    fastk_rate, fastk_steps, _, episodes = steps_per_s(fast, games, cfg, args.games)
    # Generate mode (the model writes each command) and reflection, one at a time against batched.
    written = dataclasses.replace(cfg, action_mode="generate")
    few = games[:args.generate_games]
    gen1_rate, gen1_steps, _, _ = steps_per_s(fast, few, written, 1)
    genk_rate, genk_steps, _, _ = steps_per_s(fast, few, written, len(few))
    reflect1_rate = reflections_per_s(fast, episodes, cfg, 1)
    reflectk_rate = reflections_per_s(fast, episodes, cfg, len(episodes))
    split = {}
    if args.processes > 1:
        rate = processes_steps_per_s(games, cfg, args.processes, args.device, args.dtype)
        split = {f"fast{args.games}_in_{args.processes}_processes_steps_per_s": round(rate, 3),
                 "processes_vs_naive": round(rate / naive_rate, 2), "processes_vs_batched": round(rate / fastk_rate, 2)}
    best_rate, best_path = max((fast1_rate, "fast@1"), (fastk_rate, f"fast@{args.games}"))
    result = {
        "naive_steps_per_s": round(naive_rate, 3), "fast1_no_reuse_steps_per_s": round(plain_rate, 3),
        "fast1_steps_per_s": round(fast1_rate, 3), f"fast{args.games}_steps_per_s": round(fastk_rate, 3),
        "fast_steps_per_s": round(best_rate, 3), "fast_path": best_path,
        "speedup": round(best_rate / naive_rate, 2), "batched_speedup": round(fastk_rate / fast1_rate, 2),
        "reuse_speedup": round(fast1_rate / plain_rate, 2), "prompt_tokens_reused": round(reused, 3),
        "prompt_tokens_per_step": round(prompt_tokens / max(1, fast1_steps), 1), "acting_prompt": args.acting_prompt,
        "max_steps": args.steps,
        "concurrency": args.games, "challenges": args.challenges, "commands_per_step": round(candidates, 1),
        "generate1_steps_per_s": round(gen1_rate, 3), f"generate{len(few)}_steps_per_s": round(genk_rate, 3),
        "generate_batched_speedup": round(genk_rate / gen1_rate, 2),
        "reflect1_episodes_per_s": round(reflect1_rate, 3),
        f"reflect{len(episodes)}_episodes_per_s": round(reflectk_rate, 3),
        "reflect_batched_speedup": round(reflectk_rate / reflect1_rate, 2), **split,
        "steps_measured": {"naive": naive_steps, "fast1_no_reuse": plain_steps, "fast1": fast1_steps,
                           f"fast{args.games}": fastk_steps, "generate1": gen1_steps,
                           f"generate{len(few)}": genk_steps},
        **device_description(fast.runtime()),
    }
    print_result(result, args.json)


if __name__ == "__main__":
    with one_line_errors():
        main()
