"""Consolidation training: distil the knowledge a teacher sees into a fresh LoRA adapter.

Three trainers, all writing a PEFT LoRA adapter:
- **tokens** (on-policy, generate mode): TRL's SDFT trainer. Checked against DESIGN.md §1 with trl 1.16.0:
  the student (policy + fresh LoRA) samples its own response to the prefix with no knowledge; the teacher
  is the same model with the adapter disabled (`teacher_model_kind="base"`, i.e. frozen pi_r) and sees the
  knowledge before the situation (`teacher_prompt_template`); the loss is reverse KL(student || teacher)
  on the student's top-k tokens (`distillation_alpha=1.0`, `distillation_mode="topk_logits"`, k=256),
  averaged over tokens; one optimiser step per batch of fresh samples (`num_generations=1`). The student
  samples without top-p/top-k truncation by default, as the method does (`distill_top_p`, `distill_top_k`).
  TRL renormalises the top-k distributions before the KL (`distillation_add_tail=False`); what that changes
  here is measured in docs/RESULTS.md ("Generate mode"). `GroundedSDFTTrainer` adds the fraction of samples
  that ground to a command to TRL's per-step log (KL, response length).
- **choices** (on-policy, choose mode): `ChoiceDistillTrainer`, reverse KL over the admissible commands.
- **sft** (off-policy baseline): TRL's `SFTTrainer` on responses the teacher sampled with the knowledge
  in context (in choose mode: the command the teacher picked).
"""

from __future__ import annotations

import logging
import random
import warnings
from pathlib import Path

from oel.progress import progress
from transformers import PrinterCallback, TrainerCallback

from agent.prompts import KNOWLEDGE_TEMPLATE, with_context
from agent.templates import response_stop, template_switches
from consolidation.choice_trainer import ChoiceDistillTrainer
from consolidation.dataset import CONTENT_KEYS
from oel.config import OELConfig

TEACHER_TEMPLATE = KNOWLEDGE_TEMPLATE
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def objective(cfg: OELConfig) -> str:
    """`tokens` or `choices`: `auto` follows the acting mode, so the student learns what it acts with."""
    if cfg.distill_objective != "auto":
        return cfg.distill_objective
    return "choices" if cfg.action_mode == "choose" else "tokens"


def distill(policy, records: list[dict], cfg: OELConfig, output_dir: Path) -> dict:
    """Train a LoRA adapter on `records` and save it to `output_dir / "adapter"`. Returns the training log."""
    logging.getLogger("transformers").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer, method = make_trainer(policy, records, cfg, output_dir)
        trainer.remove_callback(PrinterCallback)  # it prints raw log dicts
        trainer.add_callback(DistillProgress(cfg.distill_steps, method))
        trainer.train()
    if trainer.is_world_process_zero():  # under a multi-process launcher the processes hold the same adapter
        trainer.model.save_pretrained(str(output_dir / "adapter"))
    return {"method": method, "log": [dict(row) for row in trainer.state.log_history]}


def make_trainer(policy, records: list[dict], cfg: OELConfig, output_dir: Path):
    """The configured trainer for `records` and the name of its method (`sft`, `choices` or `tokens`)."""
    common, lora = training_settings(policy, cfg, output_dir)
    method = "sft" if cfg.distill_method == "sft" else objective(cfg)
    if method == "choices":  # blocks of consecutive turns, in the trainer's own seeded shuffle, cycled as needed
        return _choice_trainer(policy, episode_blocks(records, cfg.distill_batch_size), cfg, common, lora), method
    # Exactly `distill_steps` batches: prefixes are cycled (in a seeded shuffle) when there are fewer than
    # steps x batch. Each pass scores or samples afresh with the current student, so steps stay on-policy.
    needed = cfg.distill_steps * cfg.distill_batch_size
    order = random.Random(cfg.seed).sample(range(len(records)), len(records))
    rows = [records[order[i % len(order)]] for i in range(needed)]
    build = {"sft": _sft_trainer, "tokens": _sdft_trainer}[method]
    return build(policy, rows, cfg, common, lora), method


def episode_blocks(records: list[dict], size: int) -> list[list[dict]]:
    """The choose-mode batches: up to `size` consecutive turns of one episode each (turns 0..size-1, size..,
    by the record's `turn`). Such prompts share most of their tokens (the system prompt, the objective, the
    transcript so far), which the student's scoring encodes once (`agent.scoring.trunk_candidate_logprobs`);
    with `size` equal to `agent.prompts.HISTORY_TURNS` the blocks also follow the transcript window's moves.
    4 consecutive turns of the demo's play encode 39% of the tokens that 4 random prefixes do; the student's
    forward and backward pass takes about a third of the time, a whole step about half (docs/BENCHMARKS.md,
    "Consolidation"). An episode whose turn count is no multiple of `size` ends in a smaller block. Records
    that say nothing of where they were logged (made by hand, not by `build_dataset`) are taken `size` at a
    time in their order."""
    blocks: dict[tuple, list[dict]] = {}
    for i, r in enumerate(records):
        key = (r["episode"], r["turn"] // size) if "episode" in r else (None, i // size)
        blocks.setdefault(key, []).append(r)
    return list(blocks.values())


def training_settings(policy, cfg: OELConfig, output_dir: Path) -> tuple[dict, object]:
    """The trainer arguments every method shares, and the LoRA adapter each trains (bench/consolidation.py
    gives a plain SFT step the same)."""
    from peft import LoraConfig

    lora = LoraConfig(r=cfg.lora_rank, lora_alpha=2 * cfg.lora_rank, lora_dropout=0.0,
                      target_modules=LORA_TARGETS, task_type="CAUSAL_LM")
    common = dict(output_dir=str(output_dir / "trainer"), per_device_train_batch_size=cfg.distill_batch_size,
                  gradient_accumulation_steps=1, max_steps=cfg.distill_steps, learning_rate=cfg.learning_rate,
                  lr_scheduler_type="constant", max_grad_norm=1.0, report_to=[], save_strategy="no",
                  logging_steps=1, seed=cfg.seed, **precision(policy),
                  disable_tqdm=True)  # DistillProgress shows one bar instead
    return common, lora


def _sdft_trainer(policy, rows, cfg, common, lora):
    from datasets import Dataset
    from trl.experimental.sdft import SDFTConfig

    from consolidation.sdft_trainer import GroundedSDFTTrainer

    args = SDFTConfig(**common, num_generations=1, max_completion_length=cfg.distill_max_new_tokens,
                      temperature=cfg.distill_temperature, top_p=cfg.distill_top_p, top_k=cfg.distill_top_k,
                      distillation_alpha=1.0,
                      distillation_mode="topk_logits", distillation_topk=cfg.distill_topk,
                      teacher_model_kind="base", teacher_prompt_template=TEACHER_TEMPLATE,
                      # TRL keeps only the last 512 tokens of every prompt by default; with the memory in it,
                      # 62% of the pilot's teacher prompts were longer (mean 544, up to 768 tokens), so the
                      # teacher lost the system prompt and the start of the knowledge. Prompts stay whole, as
                      # acting and the choose-mode teacher see them.
                      max_prompt_length=None,
                      # rendered as acting renders it (generate mode thinks when cfg.thinking says so)
                      chat_template_kwargs=template_switches(policy.tokenizer, cfg.thinking, policy.name))
    data = Dataset.from_list([{key: r[key] for key in CONTENT_KEYS} for r in rows])
    return GroundedSDFTTrainer(model=policy.model, args=args, train_dataset=data, processing_class=policy.tokenizer,
                               peft_config=lora, one_line=response_stop(cfg.one_line, cfg.thinking) is not None)


def _choice_trainer(policy, blocks, cfg, common, lora):
    from peft import get_peft_model
    from transformers import TrainingArguments

    # One block a step: the trainer's "batch" is one item of the dataset, a block of up to distill_batch_size rows.
    args = TrainingArguments(**{**common, "per_device_train_batch_size": 1}, remove_unused_columns=False)
    return ChoiceDistillTrainer(model=get_peft_model(policy.model, lora), args=args, train_dataset=blocks,
                                data_collator=lambda batch: batch[0], processing_class=policy.tokenizer,
                                end_ids=policy.end_ids, temperature=cfg.temperature, teacher_template=TEACHER_TEMPLATE)


def _sft_trainer(policy, rows, cfg, common, lora):
    """Off-policy baseline: the frozen teacher (with knowledge) answers each prefix once; SFT on that."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    data = []
    for row in progress(rows, desc="teacher samples", unit="prefix"):
        prompt = policy.render(with_context(row["prompt"], row["privileged_context"], TEACHER_TEMPLATE))
        if objective(cfg) == "choices":
            answer = policy.choose(prompt, row["candidates"], cfg.temperature, cfg.greedy).command
        else:
            [(answer, _)] = policy.generate([prompt], cfg.distill_max_new_tokens, cfg.distill_temperature,
                                            stop=response_stop(cfg.one_line, cfg.thinking))
        data.append({"prompt": row["prompt"], "completion": [{"role": "assistant", "content": answer}]})
    args = SFTConfig(**common, completion_only_loss=True, max_length=2048)
    return SFTTrainer(model=policy.model, args=args, train_dataset=Dataset.from_list(data),
                      processing_class=policy.tokenizer, peft_config=lora)


class DistillProgress(TrainerCallback):
    """One tqdm bar for consolidation, with the current loss."""

    def __init__(self, total: int, method: str):
        self.total, self.method, self.bar = total, method, None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:  # one bar, whatever the number of processes
            self.bar = progress(total=self.total, desc=f"consolidate ({self.method})", unit="step")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{logs['loss']:.4f}")

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(1)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()


def precision(policy) -> dict:
    """Train where the policy was loaded, in its precision (mixed precision for half-precision weights;
    the LoRA weights themselves stay float32, as PEFT makes them)."""
    import torch

    dtype, on_cpu = policy.model.dtype, policy.model.device.type == "cpu"
    return {"use_cpu": on_cpu, "bf16": dtype == torch.bfloat16 and not on_cpu, "fp16": dtype == torch.float16 and not on_cpu}
