"""Choose-mode consolidation: the student learns the teacher's distribution over admissible commands.

A narrow subclass of the transformers `Trainer`: it only overrides `compute_loss`. TRL has no trainer
for this objective; its SDFT trainer covers the token-level (generate-mode) one.
- student: the policy + LoRA, scoring the commands from the plain prefix;
- teacher: the same model with the adapter disabled (frozen pi_r), scoring the same commands from the
  prefix with the knowledge inserted before the situation;
- loss: reverse KL(student || teacher) over the commands (`losses.choice_kl`), averaged over the batch.
Every step scores the student fresh with its current weights, so training stays on-policy. The teacher is
frozen for the whole consolidation, so its distribution over a record's commands never changes: it is
computed once per record and kept (`teacher_cache`), not at every step the record appears in. A batch is a
block of consecutive turns of one episode (`distill.episode_blocks`); the student scores the block's prompts,
and each prompt's commands, in one forward pass that encodes what the prompts share once
(`trunk_candidate_logprobs`). The teacher's go through per batch on an
accelerator; on a CPU all the records are scored at the first step, in one sorted pass where each prompt
reuses the encoding of the one before (`frozen_rows_logprobs`): a consolidation's teacher prompts are the
turns of a few episodes with the same knowledge, so about a quarter of their tokens need encoding.
"""

from __future__ import annotations

import torch
from transformers import Trainer

from agent.prompts import with_context
from agent.scoring import frozen_rows_logprobs, trunk_candidate_logprobs
from agent.templates import render_prompt
from consolidation.losses import choice_kl
from oel.progress import progress


class ChoiceDistillTrainer(Trainer):
    """`train_dataset` is a list of blocks (lists of records, `distill.episode_blocks`), and the collator gives
    `compute_loss` one block as its batch."""

    def __init__(self, *args, end_ids: list[int], temperature: float, teacher_template: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.end_ids = end_ids
        self.temperature = temperature
        self.teacher_template = teacher_template
        self.teacher_cache: dict[tuple, torch.Tensor] = {}
        """(teacher prompt, commands) -> the frozen teacher's log-probabilities of the commands."""

    def render(self, messages: list[dict]) -> str:
        """As acting renders a choose-mode prompt (never thinking), so the student learns what it acts on."""
        return render_prompt(self.processing_class, messages)

    def teacher_key(self, row: dict) -> tuple[str, tuple[str, ...]]:
        """What the teacher's scores of a row depend on: its rendered prompt with the context, and the commands."""
        return (self.render(with_context(row["prompt"], row["privileged_context"], self.teacher_template)),
                tuple(row["candidates"]))

    def teacher_logprobs(self, model, rows: list[dict]) -> list[torch.Tensor]:
        """The frozen teacher's scores of each row's commands, scored only for rows not seen before (on a
        CPU, every record of the dataset at the first call: see the module docstring)."""
        # The teacher is the PEFT model itself (unwrapped from DDP when several processes train: it takes no
        # gradient, so nothing of it is synchronised).
        peft = self.accelerator.unwrap_model(model)
        keys = [self.teacher_key(r) for r in rows]
        wanted = keys
        if peft.device.type == "cpu" and not self.teacher_cache:
            wanted = keys + [self.teacher_key(r) for block in self.train_dataset for r in block]
        new = list(dict.fromkeys(k for k in wanted if k not in self.teacher_cache))
        if new:
            bar = progress(total=len(new), desc="teacher scores", unit="prompt") if len(new) > len(rows) else None
            with peft.disable_adapter():
                scores = frozen_rows_logprobs(peft, self.processing_class, [k[0] for k in new],
                                              [list(k[1]) for k in new], self.end_ids, bar)
            if bar is not None:
                bar.close()
            self.teacher_cache.update((k, v.detach()) for k, v in zip(new, scores))
        return [self.teacher_cache[k] for k in keys]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        teacher = self.teacher_logprobs(model, inputs)
        student = trunk_candidate_logprobs(model, self.processing_class, [self.render(r["prompt"]) for r in inputs],
                                           [r["candidates"] for r in inputs], self.end_ids)
        # The scores come back on the CPU (where sampling lives); the trainer wants the loss on the model's device.
        loss = torch.stack([choice_kl(s, t, self.temperature) for s, t in zip(student, teacher)]).mean()
        loss = loss.to(self.args.device)
        return (loss, None) if return_outputs else loss
