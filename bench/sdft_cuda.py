"""Why does generate-mode consolidation (TRL SDFT) stop on CUDA? One variant of it per call, with checks.

On an H100 in bfloat16, round 1's SDFT consolidation stopped at its first step with a device-side assert in
the student's sampling ("probability tensor contains either `inf`, `nan` or element < 0"; docs/BENCHMARKS.md).
This script runs that consolidation (`consolidation.distill.distill`, the product's own path) on saved
records, with one change per variant, and checks what a device-side assert would hide:

- every `torch.multinomial` call is checked on the host first, so a bad distribution is reported (which
  rows, at which generated position) as a Python error instead of poisoning the CUDA context;
- the logits of every forward pass of generation are checked for NaN/inf, separately at the real tokens and
  at the left padding of each row, and at the last position (the one sampled from).

    python -m bench.sdft_cuda --records R.json --variant as_run --steps 4

Variants: as_run (bf16, SDPA, TRL's sampling as configured), eager (bf16, eager attention), float32 (fp32
weights, SDPA), one_row (bf16, SDPA, batch size 1: no padding), prompt512 (bf16, SDPA, prompts cut to their last 512 tokens,
as TRL did before commit 427d0d2, when the assert was seen), probe (no training: the first batch's
student prompts generated with the trainer's generation settings, in eval and in train mode).
It prints one line `RESULT <variant> ok|fail <detail>` at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

FINDINGS: dict = {"bad_logits": [], "pads": None}


def check_multinomial():
    original = torch.multinomial

    def checked(probs, *args, **kwargs):
        finite = torch.isfinite(probs).all(dim=-1) & (probs >= 0).all(dim=-1)
        if not bool(finite.all()):
            rows = (~finite).nonzero().flatten().tolist()
            raise RuntimeError(f"bad sampling distribution in rows {rows} of {probs.shape[0]}; "
                               f"left pads per row {FINDINGS['pads']}; first bad logits {FINDINGS['bad_logits'][:3]}")
        return original(probs, *args, **kwargs)

    torch.multinomial = checked


def watch_logits(model):
    """Record forward passes whose logits hold NaN/inf: at real tokens, at padding, at the sampled position."""
    def hook(module, inputs, output):
        logits = output if torch.is_tensor(output) else output[0]
        bad = ~torch.isfinite(logits.float()).all(dim=-1)  # [batch, positions]
        if bool(bad.any()) and len(FINDINGS["bad_logits"]) < 20:
            FINDINGS["bad_logits"].append({"shape": list(logits.shape), "rows": bad.any(dim=1).nonzero().flatten().tolist(),
                                           "last_position_bad_rows": bad[:, -1].nonzero().flatten().tolist(),
                                           "bad_positions_row0": bad[0].nonzero().flatten().tolist()[:8]})
    return model.get_output_embeddings().register_forward_hook(hook)


def load(variant: str):
    from agent.policy import Policy

    policy = Policy.load(dtype="float32" if variant == "float32" else "auto")
    if variant == "eager":
        policy.model.set_attn_implementation("eager")
    return policy


def probe(policy, records, cfg):
    """Generation alone, on the first batch's prompts, as TRL's trainer would sample them."""
    from transformers import GenerationConfig

    from agent.templates import template_switches

    prompts = [policy.tokenizer.apply_chat_template(r["prompt"], tokenize=True, add_generation_prompt=True,
                                                     **template_switches(policy.tokenizer, cfg.thinking, policy.name))
               for r in records[:cfg.distill_batch_size]]
    prompts = [p["input_ids"] if isinstance(p, dict) or hasattr(p, "keys") else p for p in prompts]
    width = max(map(len, prompts))
    pad = policy.tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts], device=policy.model.device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=policy.model.device)
    FINDINGS["pads"] = [width - len(p) for p in prompts]
    config = GenerationConfig(max_new_tokens=cfg.distill_max_new_tokens, do_sample=True, pad_token_id=pad,
                              temperature=cfg.distill_temperature, top_p=cfg.distill_top_p, top_k=cfg.distill_top_k,
                              disable_compile=True)
    for mode in ("eval", "train"):
        getattr(policy.model, mode)()
        with torch.no_grad():
            out = policy.model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        print(f"probe {mode}: generated {out.shape[1] - width} tokens a row; bad logits so far: {FINDINGS['bad_logits'][:3]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", required=True)
    parser.add_argument("--variant", default="as_run", choices=["as_run", "eager", "float32", "one_row", "prompt512", "probe"])
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()

    from consolidation.distill import distill
    from oel.config import OELConfig

    records = json.loads(Path(args.records).read_text())
    cfg = OELConfig(action_mode="generate", distill_steps=args.steps,
                    distill_batch_size=1 if args.variant == "one_row" else 4)
    check_multinomial()
    started = time.time()
    policy = load(args.variant)
    print(f"{args.variant}: {policy.runtime()} torch {torch.__version__}, loaded in {time.time() - started:.1f}s", flush=True)
    hook = watch_logits(policy.model)
    try:
        if args.variant == "probe":
            probe(policy, records, cfg)
            detail = f"bad logits {FINDINGS['bad_logits'][:3]}"
            status = "fail" if FINDINGS["bad_logits"] else "ok"
        else:
            from trl.experimental.sdft import SDFTTrainer

            generate = SDFTTrainer._generate_transformers

            def recording(self, prompt_ids):
                width = max(map(len, prompt_ids))
                FINDINGS["pads"] = [width - len(p) for p in prompt_ids]
                return generate(self, prompt_ids)

            SDFTTrainer._generate_transformers = recording
            if args.variant == "prompt512":
                import trl.experimental.sdft as sdft

                config = sdft.SDFTConfig
                sdft.SDFTConfig = lambda **kw: config(**{**kw, "max_prompt_length": 512})
            with tempfile.TemporaryDirectory() as out:
                log = distill(policy, records, cfg, Path(out))["log"]
            steps = [{k: round(v, 4) for k, v in row.items() if isinstance(v, float)} for row in log if "loss" in row]
            print(json.dumps(steps))
            status, detail = ("fail", f"bad logits {FINDINGS['bad_logits'][:3]}") if FINDINGS["bad_logits"] else \
                ("ok", f"{len(steps)} steps, loss {[s.get('loss') for s in steps]}")
    except Exception as err:  # report it as one line: the point of the script is to see it
        traceback.print_exc(limit=6)
        status, detail = "fail", f"{type(err).__name__}: {str(err)[:600]}"
    finally:
        hook.remove()
    print(f"RESULT {args.variant} {status} {detail} ({time.time() - started:.0f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
