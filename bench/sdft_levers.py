"""Generate mode's consolidation, measured without playing: is the teacher better where SDFT trains, and what
the learning rate and the number of steps do.

    .venv/bin/python -m bench.sdft_levers --run-dir RUN [--round 1] [--prefixes 32] [--games 12] [--samples 4]
        [--setting learning_rate=3e-4 --setting distill_steps=32 ...] [--json]

RUN is a run that has played round `--round` (`oel play` or `oel loop`): its logged prefixes and the items
written in that round, retrieved for each prefix as consolidation retrieves them
(`consolidation.dataset.build_dataset`; items pruned since are read as active, as `bench/teacher.py` reads them). The bench
measures generate mode with the run's other settings; a choose-mode run's prefixes serve as well (they are the
same acting prompts), though its student would not have played them.
Issue 19's training levers, and the condition they depend on:

1. **Where SDFT trains.** SDFT pulls the student's responses toward the teacher's on the logged prefixes, so it
   can teach the form of a command only if the teacher, with the memory before the situation, writes valid
   commands more often than the student does *there*. `bench/teacher.py` measures the teacher on new games,
   whose layouts no procedure in the memory has seen; on its own train prefixes the teacher may read the
   procedure of that very episode. Student and teacher each sample `--samples` one-line responses to
   `--prefixes` of the round's records, as the consolidation student samples (`distill_temperature`,
   `distill_top_p`, `distill_top_k`, `distill_max_new_tokens`), with the same seeds, and each response is
   grounded against that prefix's valid commands by acting's rule (`agent.prompts.ground_response`).
2. **The training levers.** For each `--setting` (any config keys, `learning_rate` and `distill_steps` by
   default), one consolidation of the round's records from the run's base model, as the loop's round 1
   consolidates (`consolidation.distill.distill`: TRL's SDFT), then the new policy's responses to the
   validation situations of `bench/wording.py` (the first and third move of `--games` validation games,
   `--samples` responses each, sampled as acting samples), paired response by response with the base
   model's. Each row also gives the training log's start -> end (means over the first and last quarter of the
   steps, as `oel report` shows them): the reverse KL, and the share of the student's own samples that
   ground to a command.

A share is of responses (Wilson 95% interval; the samples of one prefix are not independent, so read it as
rough); the pairs are exact McNemar tests. Writes --out (JSON), with a few responses of each row.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from agent.policy import Policy
from agent.prompts import ground_response, with_context
from agent.templates import response_stop
from bench.common import pct, report_comparison, settings, validation_comparison, versus, versus_cells
from bench.teacher import knowledge_copy
from bench.wording import situations
from consolidation.dataset import build_dataset, load_trajectories
from consolidation.distill import TEACHER_TEMPLATE, distill
from consolidation.report import training_trend
from oel.config import OELConfig
from oel.errors import OELError, one_line_errors
from oel.progress import progress
from oel.stats import wilson

DEFAULT_SETTINGS = ["learning_rate=3e-4", "learning_rate=3e-3", "distill_steps=32"]
"""Beside the run's own settings (the loop's defaults: learning rate 1e-3, 16 steps of 4 prefixes)."""
BATCH = 16
"""Prompts sampled in one `generate` call: long enough to share the decoding, short enough that the
left-padding of prompts of different lengths stays small."""
EXAMPLES = 6


def sample_responses(policy: Policy, prompts: list[str], admissibles: list[list[str]], samples: int, seed: int,
                     sampling: dict, desc: str) -> dict:
    """`samples` responses to each prompt, each grounded against its valid commands: the share that is a
    command, the tokens a response, the validity flags (sample-major, the same order for every row sampled
    with the same prompts count) and a few examples."""
    valid, tokens, examples = [], 0, []
    bar = progress(total=samples * len(prompts), desc=desc, unit="response")
    for sample in range(samples):
        for start in range(0, len(prompts), BATCH):
            outputs = policy.generate(prompts[start:start + BATCH], seed=seed + 1000 * sample + start, **sampling)
            for (text, n), admissible in zip(outputs, admissibles[start:start + BATCH]):
                command, ok = ground_response(text, admissible)
                valid.append(int(ok))
                tokens += n
                if len(examples) < EXAMPLES:
                    examples.append({"response": text, "grounded": command if ok else None})
            bar.update(len(outputs))
    bar.close()
    return {"valid": sum(valid) / len(valid), "ci95": wilson(sum(valid), len(valid)),
            "tokens_per_response": round(tokens / len(valid), 1), "responses": len(valid), "valid_flags": valid,
            "examples": examples}


def parse_setting(text: str, parser) -> dict:
    """`key=JSON[,key=JSON...]` as config overrides (`bench.common.settings` reads each pair)."""
    return settings(parser, [pair for pair in text.split(",") if pair])


def options(parser) -> None:
    parser.add_argument("--prefixes", type=int, default=32, help="train prefixes that student and teacher answer")
    parser.add_argument("--samples", type=int, default=4, help="responses sampled per prefix or situation")
    parser.add_argument("--setting", action="append", metavar="KEY=JSON[,KEY=JSON]",
                        help=f"a consolidation setting to try (repeatable; default: {' '.join(DEFAULT_SETTINGS)})")


def main(argv: list[str] | None = None) -> dict:
    import argparse

    args, cfg, log, suite = validation_comparison(__doc__.splitlines()[0], "bench/results/sdft_levers.json",
                                                  argv, options)
    if log is None:
        raise OELError("--run-dir is required: a run that has played the round")
    cfg = OELConfig.from_dict({**cfg.to_dict(), "action_mode": "generate"})
    if args.prefixes < 1 or args.samples < 1:
        raise OELError("--prefixes and --samples must be positive integers")
    parser = argparse.ArgumentParser(prog="--setting")
    levers = {"run's settings": {}, **{text: parse_setting(text, parser) for text in args.setting or DEFAULT_SETTINGS}}
    configs = {label: OELConfig.from_dict({**cfg.to_dict(), **extra}, source=f"--setting {label}")
               for label, extra in levers.items()}  # every setting checked before anything runs

    # The round's items as its consolidation retrieved them: active again if the loop has since pruned them.
    with tempfile.TemporaryDirectory() as tmp, knowledge_copy(args.run_dir, args.round, Path(tmp)) as memory:
        records, _ = build_dataset(load_trajectories([log]), memory, cfg)
    if not records:
        raise OELError(f"round {args.round} of {args.run_dir} has no prefixes with knowledge to teach from")
    stop = response_stop(cfg.one_line, cfg.thinking)
    policy = Policy.load(cfg.model, device=cfg.device, dtype=cfg.dtype)
    rows = {}

    # 1. Where SDFT trains: the records' prefixes, sampled as the consolidation student samples.
    train = random.Random(cfg.seed).sample(records, min(args.prefixes, len(records)))
    distill_sampling = dict(max_new_tokens=cfg.distill_max_new_tokens, temperature=cfg.distill_temperature,
                            top_p=cfg.distill_top_p, top_k=cfg.distill_top_k, stop=stop)
    candidates = [r["candidates"] for r in train]
    student = [policy.render(r["prompt"]) for r in train]
    teacher = [policy.render(with_context(r["prompt"], r["privileged_context"], TEACHER_TEMPLATE)) for r in train]
    rows["student, train prefixes"] = sample_responses(policy, student, candidates, args.samples, cfg.seed,
                                                       distill_sampling, "student on train prefixes")
    rows["teacher, train prefixes"] = sample_responses(policy, teacher, candidates, args.samples, cfg.seed,
                                                       distill_sampling, "teacher on train prefixes")
    rows["teacher, train prefixes"]["vs"] = versus(rows["student, train prefixes"], rows["teacher, train prefixes"], "valid_flags")

    # 2. The training levers: one consolidation each, then the validation situations, as acting samples.
    found = situations(suite, cfg.max_steps, cfg.seed)
    prompts, admissibles = [policy.render(m) for m, _ in found], [a for _, a in found]
    acting = dict(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, stop=stop)
    base = rows["base model, validation"] = sample_responses(policy, prompts, admissibles, args.samples, cfg.seed,
                                                             acting, "base model on validation")
    for label, lever_cfg in configs.items():
        with tempfile.TemporaryDirectory() as tmp:  # distil into a fresh copy: training wraps the model in LoRA
            training = distill(Policy.load(cfg.model, device=cfg.device, dtype=cfg.dtype), records, lever_cfg, Path(tmp))
            trained = Policy.load(cfg.model, adapters=[Path(tmp) / "adapter"], device=cfg.device, dtype=cfg.dtype)
        row = sample_responses(trained, prompts, admissibles, args.samples, cfg.seed, acting, f"after SDFT ({label})")
        row.update(vs=versus(base, row, "valid_flags"), setting=levers[label],
                   training={key: training_trend(training["log"], key)
                             for key in ("loss", "completions/valid_fraction", "completions/mean_length")})
        rows[f"after SDFT: {label}"] = row

    result = {"run_dir": str(args.run_dir), "round": args.round, "records": len(records), "prefixes": len(train),
              "games": args.games, "situations": len(found), "samples": args.samples, "split": "validation",
              "rows": rows}

    def cells(row):
        trend = (row.get("training") or {})
        kl, valid = trend.get("loss"), trend.get("completions/valid_fraction")
        return [pct(row["valid"], row["ci95"]), f"{row['tokens_per_response']:.1f}",
                f"{kl[0]:.3f} -> {kl[1]:.3f}" if kl else "-",
                f"{valid[0]:.0%} -> {valid[1]:.0%}" if valid else "-", *versus_cells(row.get("vs"))]

    return report_comparison(
        args, result, ["row", "responses that are a command", "tokens/response", "reverse KL (training)",
                       "student samples that are commands (training)", "gained / lost", "p"],
        f"SDFT in generate mode: {len(train)} train prefixes of round {args.round}, {len(found)} situations of "
        f"{args.games} validation games, {args.samples} samples each (pairs: teacher vs student, "
        f"after SDFT vs base model)", cells)


if __name__ == "__main__":
    with one_line_errors():
        main()
