"""Does TRL's top-k renormalisation change the generate-mode objective here?

    .venv/bin/python -m bench.topk --run-dir runs/bench-learning/textworld --round 1 [--prefixes 32] [--json]

TRL's SDFT trainer takes the reverse KL over the student's top-k tokens and, by default
(`distillation_add_tail=False`), renormalises both distributions over those k tokens. The paper's reference
takes the top-k without renormalising. On real consolidation records of a run (its logged prefixes, the
teacher's prompt with the memory retrieved as consolidation retrieves it), the policy samples a response as
the consolidation student does (the run's `distill_temperature`, no truncation); then, on every response
token, this compares the per-token loss as TRL computes it three ways (`trl.experimental.sdft.loss_utils`):
renormalised top-k (TRL's default), top-k plus a tail bucket (`distillation_add_tail=True`), and the full
vocabulary, and the gradient each sends to the student's logits (cosine similarity against the full
vocabulary's). It also reports how much of the student's probability the top-k holds.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from agent.policy import Policy
from agent.prompts import with_context
from bench.teacher import knowledge_copy
from consolidation.dataset import build_dataset, load_trajectories
from consolidation.distill import TEACHER_TEMPLATE
from oel.config import load_run_config
from oel.errors import OELError, one_line_errors
from oel.progress import progress
from oel.rundir import RunDir

VARIANTS = ("renormalised top-k (TRL default)", "top-k + tail bucket", "full vocabulary")


def per_token_losses(student: torch.Tensor, teacher: torch.Tensor, k: int) -> list[torch.Tensor]:
    """The three per-token reverse KLs (alpha = 1), in VARIANTS' order, for [tokens, vocab] logits."""
    from trl.experimental.sdft.loss_utils import (compute_full_logit_self_distillation_loss,
                                                  compute_topk_self_distillation_loss)

    topk = [compute_topk_self_distillation_loss(student, teacher, distillation_topk=k, distillation_alpha=1.0,
                                                distillation_add_tail=tail) for tail in (False, True)]
    return [*topk, compute_full_logit_self_distillation_loss(student, teacher, distillation_alpha=1.0)]


def response_logits(policy: Policy, prompt: str, response_ids: list[int], temperature: float) -> torch.Tensor:
    """The logits that predict each response token after `prompt`, scaled as TRL scales them."""
    prompt_ids = policy.tokenizer.encode(prompt, add_special_tokens=False)
    ids = torch.tensor([prompt_ids + response_ids], device=policy.model.device)
    with torch.no_grad():
        logits = policy.model(input_ids=ids).logits[0, len(prompt_ids) - 1:-1].float()
    return logits / temperature


def measure(policy: Policy, records: list[dict], cfg) -> dict:
    losses, cosines, mass = [[] for _ in VARIANTS], [[] for _ in VARIANTS], []
    for record in progress(records, desc="top-k variants", unit="prefix"):
        student_prompt = policy.render(record["prompt"])
        teacher_prompt = policy.render(with_context(record["prompt"], record["privileged_context"], TEACHER_TEMPLATE))
        [(text, _)] = policy.generate([student_prompt], cfg.distill_max_new_tokens, cfg.distill_temperature,
                                      top_p=cfg.distill_top_p, top_k=cfg.distill_top_k)
        response = policy.tokenizer.encode(text, add_special_tokens=False) + policy.end_ids[:1]
        student = response_logits(policy, student_prompt, response, cfg.distill_temperature).requires_grad_()
        teacher = response_logits(policy, teacher_prompt, response, cfg.distill_temperature)
        grads = []
        for n, loss in enumerate(per_token_losses(student, teacher, cfg.distill_topk)):
            losses[n] += loss.detach().tolist()
            (grad,) = torch.autograd.grad(loss.mean(), student)
            grads.append(grad.flatten())
        for n, grad in enumerate(grads):
            cosines[n].append(torch.nn.functional.cosine_similarity(grad, grads[-1], dim=0).item())
        probs = torch.softmax(student.detach(), -1)
        mass += probs.topk(cfg.distill_topk, -1).values.sum(-1).tolist()
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    return {"prefixes": len(records), "tokens": len(mass), "topk": cfg.distill_topk,
            "topk_mass": {"mean": round(mean(mass), 4), "min": round(min(mass), 4)},
            "variants": {name: {"mean_kl": round(mean(losses[n]), 4), "grad_cosine_vs_full": round(mean(cosines[n]), 4)}
                         for n, name in enumerate(VARIANTS)}}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True, help="a run with logged episodes and a memory")
    parser.add_argument("--round", type=int, default=1, help="whose logged prefixes to use")
    parser.add_argument("--prefixes", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    args = parser.parse_args(argv)
    run = RunDir(args.run_dir)
    if not run.round_log(args.round).is_file():
        raise OELError(f"{run.round_log(args.round)} does not exist: pick a round the run has played")
    cfg = load_run_config(run.root)
    # The round's items as its consolidation retrieved them: active again if the loop has since pruned them.
    with tempfile.TemporaryDirectory() as tmp, knowledge_copy(args.run_dir, args.round, Path(tmp)) as memory:
        records, _ = build_dataset(load_trajectories([run.round_log(args.round)]), memory, cfg)
    if not records:
        raise OELError(f"round {args.round} of {args.run_dir} has no prefixes with knowledge to teach from")
    records = random.Random(args.seed).sample(records, min(args.prefixes, len(records)))
    torch.manual_seed(args.seed)
    result = {"run_dir": str(args.run_dir), "round": args.round, "model": cfg.model,
              **measure(Policy.load(cfg.model, device=cfg.device, dtype=cfg.dtype), records, cfg)}
    if args.json:
        print(json.dumps(result))
        return result
    table = Table(title=f"Per-token reverse KL on {result['tokens']} response tokens of {result['prefixes']} prefixes "
                        f"(student's top-{result['topk']} mass: mean {result['topk_mass']['mean']:.2%}, "
                        f"min {result['topk_mass']['min']:.2%})")
    for title in ("objective", "mean KL", "gradient cosine vs full vocabulary"):
        table.add_column(title, justify="right")
    for name, v in result["variants"].items():
        table.add_row(name, f"{v['mean_kl']:.4f}", f"{v['grad_cosine_vs_full']:.4f}")
    Console().print(table)
    return result


if __name__ == "__main__":
    with one_line_errors():
        main()
