"""On-policy context distillation with TRL's SDFT trainer, training a fresh LoRA adapter.

Checked against DESIGN.md §1 (trl 1.16.0, `trl.experimental.sdft`):
- student = policy + fresh LoRA, sampling its own response to the prefix with no knowledge;
- teacher = the same policy with the adapter disabled (`teacher_model_kind="base"`), i.e. frozen pi_r,
  given the knowledge before the situation (`teacher_prompt_template`);
- loss = reverse KL(student || teacher) over the student's top-k tokens (`distillation_alpha=1.0`,
  `distillation_mode="topk_logits"`, k = 256), averaged over tokens;
- one optimiser step per batch of fresh samples (`num_generations=1`, no gradient accumulation).
"""

from __future__ import annotations

import logging
import random
import warnings
from pathlib import Path

from tqdm import tqdm
from transformers import PrinterCallback, TrainerCallback

from oel.config import OELConfig

TEACHER_TEMPLATE = "{privileged_context}\n\n{prompt}"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def distill(policy, records: list[dict], cfg: OELConfig, output_dir: Path) -> dict:
    """Train a LoRA adapter on `records` and save it to `output_dir`. Returns the training log."""
    from datasets import Dataset
    from peft import LoraConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from trl.experimental.sdft import SDFTConfig, SDFTTrainer

    logging.getLogger("transformers").setLevel(logging.ERROR)
    args = SDFTConfig(
        output_dir=str(output_dir / "trainer"),
        per_device_train_batch_size=cfg.distill_batch_size,
        gradient_accumulation_steps=1,
        max_steps=cfg.distill_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant",
        max_grad_norm=1.0,
        num_generations=1,
        max_completion_length=cfg.distill_max_new_tokens,
        temperature=cfg.distill_temperature,
        top_p=0.8,
        top_k=20,
        distillation_alpha=1.0,
        distillation_mode="topk_logits",
        distillation_topk=cfg.distill_topk,
        teacher_model_kind="base",
        teacher_prompt_template=TEACHER_TEMPLATE,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        use_cpu=not _cuda(),
        seed=cfg.seed,
        disable_tqdm=True,  # our DistillProgress bar replaces the trainer's dict printing
    )
    lora = LoraConfig(r=cfg.lora_rank, lora_alpha=2 * cfg.lora_rank, lora_dropout=0.0,
                      target_modules=LORA_TARGETS, task_type="CAUSAL_LM")
    # Exactly `distill_steps` batches: prefixes are cycled (in a seeded shuffle) when there are fewer than
    # steps x batch. Each pass still samples fresh student responses, so every step stays on-policy.
    needed = cfg.distill_steps * cfg.distill_batch_size
    order = random.Random(cfg.seed).sample(range(len(records)), len(records))
    rows = [records[order[i % len(order)]] for i in range(needed)]
    trainer = SDFTTrainer(model=policy.model, args=args, train_dataset=Dataset.from_list(rows),
                          processing_class=policy.tokenizer, peft_config=lora)
    trainer.remove_callback(PrinterCallback)  # prints raw log dicts; DistillProgress shows the loss instead
    trainer.add_callback(DistillProgress(cfg.distill_steps))
    trainer.train()
    trainer.model.save_pretrained(str(output_dir / "adapter"))
    return {"log": [{k: v for k, v in row.items()} for row in trainer.state.log_history]}


class DistillProgress(TrainerCallback):
    """One tqdm bar for consolidation, with the current distillation loss."""

    def __init__(self, total: int):
        self.total = total
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.bar = tqdm(total=self.total, desc="consolidate", unit="step", leave=False)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs and "loss" in logs:
            self.bar.set_postfix(kl=f"{logs.get('sdft/distillation_loss', logs['loss']):.4f}")

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(1)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
