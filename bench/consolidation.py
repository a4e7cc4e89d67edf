"""Consolidation benchmark: optimiser steps per second of choose-mode and token-mode distillation against a
plain TRL `SFTTrainer` step, in one run.

    .venv/bin/python -m bench.consolidation [--games 4] [--steps 16] [--methods sft,choices,tokens]
                                            [--dtype auto|float32|bfloat16] [--json]

All three train the same LoRA adapter (`consolidation.distill.training_settings`) with the same batch size
on the same prefixes: those of `--games` real TextWorld games the embedded SmolLM2-135M plays first.

- `choices`: the choose-mode objective (`ChoiceDistillTrainer`): reverse KL over the admissible commands,
  the teacher's scores computed once per record, the student's for a step's block of consecutive turns of
  one episode in one pass that encodes their shared start once (`trunk_candidate_logprobs`). A block holds
  up to the batch size of prefixes, fewer at an episode's end: `choices_prefixes_per_step` is their mean;
- `tokens`: the generate-mode objective (TRL's SDFT): the student samples a response, the teacher scores
  it token by token;
- `sft`: plain supervised fine-tuning on the prompt plus the command the policy took (what each step of
  the others must at least do: one forward and backward pass over those tokens).

The teacher's context is the other games' play logs (`consolidation.dataset.trajectory_items`), the size a
consolidation's teacher reads. `choices_vs_sft` and `tokens_vs_sft` are the steps-per-second ratios.
Steps are timed from the first step's start to the last step's end; setting the trainers up is not counted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
import time
import warnings
from pathlib import Path

import datasets
from rich.console import Console
from rich.table import Table
from transformers import PrinterCallback, TrainerCallback

from agent.games import make_suite, suite_specs
from agent.policy import Policy
from agent.prompts import knowledge_block
from agent.rollout import play_games
from bench.common import device_description
from consolidation.dataset import trajectory_items
from consolidation.distill import DistillProgress, episode_blocks, make_trainer, training_settings
from oel.config import OELConfig
from oel.errors import one_line_errors

CHALLENGES = ["tw-coin_collector:3", "tw-treasure_hunter:2"]
METHODS = ("sft", "choices", "tokens")


class StepClock(TrainerCallback):
    """Wall time from the first step's start to the last step's end."""

    def __init__(self):
        self.start = self.end = None

    def on_step_begin(self, args, state, control, **kwargs):
        self.start = self.start or time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.end = time.perf_counter()


def records_of(episodes: list[dict]) -> list[dict]:
    """One record per logged turn: the prompt, the commands, the taken one, and other games' logs as the
    teacher's context."""
    records = []
    for episode in episodes:
        others = [e for e in episodes if e["id"] != episode["id"]]
        context = knowledge_block(trajectory_items(others))
        records += [{"prompt": t["prefix"], "privileged_context": context, "candidates": t["admissible"],
                     "action": t["action"], "episode": episode["id"], "turn": i} for i, t in enumerate(episode["turns"])]
    return records


def sft_trainer(policy, records: list[dict], cfg: OELConfig, output_dir: Path):
    """Plain SFT on prompt + taken command, with the distillation's LoRA, batch size and steps."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    common, lora = training_settings(policy, cfg, output_dir)
    needed = cfg.distill_steps * cfg.distill_batch_size
    rows = [records[i % len(records)] for i in range(needed)]
    data = Dataset.from_list([{"prompt": r["prompt"], "completion": [{"role": "assistant", "content": r["action"]}]}
                              for r in rows])
    return SFTTrainer(model=policy.model, args=SFTConfig(**common, completion_only_loss=True, max_length=2048),
                      train_dataset=data, processing_class=policy.tokenizer, peft_config=lora)


def steps_per_s(method: str, records: list[dict], cfg: OELConfig) -> float:
    policy = Policy.load(dtype=cfg.dtype)  # a fresh copy each: LoRA is injected into the model in place
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "sft":
            trainer = sft_trainer(policy, records, cfg, Path(tmp))
        else:
            trainer, _ = make_trainer(policy, records, dataclasses.replace(cfg, distill_objective=method), Path(tmp))
        clock = StepClock()
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(DistillProgress(cfg.distill_steps, method))
        trainer.add_callback(clock)
        trainer.train()
    return cfg.distill_steps / (clock.end - clock.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=4, help="games whose prefixes are trained on")
    parser.add_argument("--max-steps", type=int, default=10, help="step limit of those games")
    parser.add_argument("--steps", type=int, default=16, help="optimiser steps per method (a consolidation's)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of: {', '.join(METHODS)}")
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16 (as the config's dtype)")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    methods = args.methods.split(",")
    if any(m not in METHODS for m in methods) or "sft" not in methods:
        parser.error(f"--methods: some of {', '.join(METHODS)}, sft among them (the reference), got {args.methods!r}")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    datasets.disable_progress_bars()  # TRL prepares the data with bars of its own, one per trainer

    cfg = OELConfig(distill_steps=args.steps, max_steps=args.max_steps, dtype=args.dtype)
    specs = suite_specs(CHALLENGES, args.games, 20_000)
    games = list(zip(make_suite(specs), [s.env_family for s in specs]))
    player = Policy.load(dtype=cfg.dtype)
    episodes = play_games(player, games, cfg, round=1, seed_base=0, desc="play")
    records = records_of(episodes)
    rates = {method: steps_per_s(method, records, cfg) for method in methods}
    result = {
        **{f"{m}_steps_per_s": round(rates[m], 3) for m in methods},
        **{f"{m}_vs_sft": round(rates[m] / rates["sft"], 3) for m in methods if m != "sft"},
        "steps": args.steps, "batch_size": cfg.distill_batch_size, "prefixes": len(records),
        "choices_prefixes_per_step": round(len(records) / len(episode_blocks(records, cfg.distill_batch_size)), 2),
        "commands_per_prefix": round(sum(len(r["candidates"]) for r in records) / len(records), 1),
        "device": device_description(player.runtime())["device"], "dtype": player.runtime()["dtype"],
    }
    if args.json:
        print(json.dumps(result))
        return
    table = Table(title=f"Consolidation steps per second ({args.steps} steps, batch {cfg.distill_batch_size}, "
                        f"{len(records)} prefixes, {result['device']}, {result['dtype']}; a choices step takes "
                        f"{result['choices_prefixes_per_step']} prefixes on average)")
    for column in ("method", "steps/s", "vs plain SFT"):
        table.add_column(column, justify="right")
    for method in methods:
        table.add_row(method, f"{rates[method]:.3f}", f"{rates[method] / rates['sft']:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    with one_line_errors():
        main()
