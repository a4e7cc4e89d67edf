"""Why does generate-mode consolidation (TRL SDFT) stop on CUDA? One variant of it per call, with checks.

On an H100 in bfloat16, round 1's SDFT consolidation once stopped at its first step with a device-side assert
in the student's sampling ("probability tensor contains either `inf`, `nan` or element < 0"; docs/BENCHMARKS.md).
This script runs that consolidation (`consolidation.distill.distill`, the product's own path) on a run's
records, with one change per variant, and checks what a device-side assert would hide:

- every `torch.multinomial` call is checked on the host first, so a bad distribution is reported (which rows,
  how much left padding each had) as a Python error instead of poisoning the CUDA context;
- the logits of every forward pass are checked for NaN/inf, per row and at the sampled (last) position.

    python -m bench.sdft_cuda --run runs/demo --round 1 --variant as_run --steps 4
    python -m bench.sdft_cuda --records records.json --variant eager

Variants: as_run (the configured device and dtype), eager (eager attention), float32 (fp32 weights), one_row
(batch size 1: no padding), prompt512 (prompts cut to their last 512 tokens, as TRL did before commit 427d0d2,
when the assert was seen), probe (no training: the first batch's student prompts generated with the trainer's
sampling settings, in eval and in train mode). The last line is `RESULT <variant> ok|fail <detail>`;
the exit code is 0 for ok, 1 for fail, 2 when there are no records to run on.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import torch

from oel.config import DEFAULT_MODEL
from oel.errors import OELError

VARIANTS = ["as_run", "eager", "float32", "one_row", "prompt512", "probe"]


class Findings:
    """What the checks saw: logits with NaN/inf, and the left padding of the batch being sampled."""

    def __init__(self):
        self.bad_logits: list[dict] = []
        self.pads: list[int] | None = None


@contextmanager
def checked_sampling(findings: Findings):
    """`torch.multinomial` refuses a bad distribution with a Python error that names its rows."""
    original = torch.multinomial

    def checked(probs, *args, **kwargs):
        good = torch.isfinite(probs).all(dim=-1) & (probs >= 0).all(dim=-1)
        if not bool(good.all()):
            raise RuntimeError(f"bad sampling distribution in rows {(~good).nonzero().flatten().tolist()} of "
                               f"{probs.shape[0]}; left padding per row {findings.pads}; "
                               f"first bad logits {findings.bad_logits[:3]}")
        return original(probs, *args, **kwargs)

    torch.multinomial = checked
    try:
        yield
    finally:
        torch.multinomial = original


@contextmanager
def watched_logits(model, findings: Findings):
    """Record forward passes whose logits hold NaN/inf: which rows, and which at the sampled position."""
    def hook(module, inputs, output):
        bad = ~torch.isfinite(output.float()).all(dim=-1)  # [batch, positions]
        if bool(bad.any()) and len(findings.bad_logits) < 20:
            findings.bad_logits.append({"shape": list(output.shape), "rows": bad.any(dim=1).nonzero().flatten().tolist(),
                                        "sampled_position_rows": bad[:, -1].nonzero().flatten().tolist()})
    handle = model.get_output_embeddings().register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def recorded_padding(findings: Findings, cut_prompts_at: int | None):
    """Note each student batch's left padding; optionally bring back TRL's old cut of every prompt."""
    import trl.experimental.sdft as sdft
    from trl.experimental.sdft import SDFTTrainer

    generate, config = SDFTTrainer._generate_transformers, sdft.SDFTConfig

    def recording(self, prompt_ids):
        width = max(map(len, prompt_ids))
        findings.pads = [width - len(p) for p in prompt_ids]
        return generate(self, prompt_ids)

    SDFTTrainer._generate_transformers = recording
    if cut_prompts_at is not None:  # consolidation.distill imports SDFTConfig from the module when it builds
        sdft.SDFTConfig = lambda **kw: config(**{**kw, "max_prompt_length": cut_prompts_at})
    try:
        yield
    finally:
        SDFTTrainer._generate_transformers, sdft.SDFTConfig = generate, config


def run_records(run_dir: Path, r: int) -> list[dict]:
    """Round r's consolidation records of a run, built as the loop builds them (memory opened read-only)."""
    from consolidation.dataset import build_dataset, load_trajectories
    from consolidation.loop import workers_episodes
    from memory.store import open_memory
    from oel.config import load_run_config
    from oel.rundir import RunDir

    cfg = load_run_config(run_dir)
    episodes = load_trajectories([RunDir(run_dir).round_log(r)]) + workers_episodes(run_dir, r)
    with open_memory(cfg, run_dir, read_only=True) as memory:
        records, _ = build_dataset(episodes, memory, cfg)
    return records


def probe(policy, records, cfg, findings: Findings) -> None:
    """Generation alone, on the first batch's prompts, with the trainer's sampling settings."""
    from transformers import GenerationConfig

    tokenizer = policy.tokenizer
    tokenizer.padding_side = "left"  # as TRL and `Policy.generate` pad a batch for generation
    batch = tokenizer([policy.render(r["prompt"], thinking=cfg.thinking) for r in records[:cfg.distill_batch_size]],
                      return_tensors="pt", padding=True, add_special_tokens=False).to(policy.model.device)
    findings.pads = (batch.attention_mask == 0).sum(dim=1).tolist()
    config = GenerationConfig(max_new_tokens=cfg.distill_max_new_tokens, do_sample=True,
                              pad_token_id=tokenizer.pad_token_id,
                              temperature=cfg.distill_temperature, top_p=cfg.distill_top_p, top_k=cfg.distill_top_k,
                              disable_compile=True)
    for mode in ("eval", "train"):
        getattr(policy.model, mode)()
        with torch.no_grad():
            out = policy.model.generate(**batch, generation_config=config)
        print(f"probe {mode}: {out.shape[1] - batch.input_ids.shape[1]} tokens generated; bad logits so far: {findings.bad_logits[:3]}")


def consolidate(policy, records, cfg, variant: str, findings: Findings) -> str:
    from consolidation.distill import distill

    with recorded_padding(findings, 512 if variant == "prompt512" else None), tempfile.TemporaryDirectory() as out:
        log = distill(policy, records, cfg, Path(out))["log"]
    steps = [{k: round(v, 4) for k, v in row.items() if isinstance(v, float)} for row in log if "loss" in row]
    print(json.dumps(steps))
    return f"{len(steps)} steps, loss {[s.get('loss') for s in steps]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="a run directory: its round's records, as the loop builds them")
    source.add_argument("--records", type=Path, help="a JSON list of records (prompt, privileged_context, candidates)")
    parser.add_argument("--round", type=int, default=1)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--variant", default="as_run", choices=VARIANTS)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args(argv)

    from agent.policy import Policy
    from oel.config import OELConfig

    try:
        records = json.loads(args.records.read_text()) if args.records else run_records(args.run, args.round)
    except (OELError, OSError, ValueError) as err:
        print(f"cannot read the records: {err}", file=sys.stderr)
        return 2
    if not records:
        print(f"no records to consolidate in {args.records or args.run} (round {args.round})", file=sys.stderr)
        return 2
    cfg = OELConfig(action_mode="generate", distill_steps=args.steps,
                    distill_batch_size=1 if args.variant == "one_row" else 4)
    started, findings = time.time(), Findings()
    policy = Policy.load(args.model, dtype="float32" if args.variant == "float32" else "auto")
    if args.variant == "eager":
        policy.model.set_attn_implementation("eager")
    print(f"{args.variant}: {policy.runtime()}, torch {torch.__version__}, {len(records)} records", flush=True)
    try:
        with checked_sampling(findings), watched_logits(policy.model, findings):
            if args.variant == "probe":
                probe(policy, records, cfg, findings)
                detail = "no bad logits"
            else:
                detail = consolidate(policy, records, cfg, args.variant, findings)
        status = "fail" if findings.bad_logits else "ok"
        detail = f"bad logits {findings.bad_logits[:3]}" if findings.bad_logits else detail
    except Exception as err:  # reported as one line: seeing it is the point of the script
        traceback.print_exc(limit=6)
        status, detail = "fail", f"{type(err).__name__}: {str(err)[:600]}"
    print(f"RESULT {args.variant} {status} {detail} ({time.time() - started:.0f}s)", flush=True)
    return 0 if status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
