"""Choose-mode consolidation: the student learns the teacher's distribution over admissible commands.

A narrow subclass of the transformers `Trainer`: it only overrides `compute_loss`. TRL has no trainer
for this objective; its SDFT trainer covers the token-level (generate-mode) one.
- student: the policy + LoRA, scoring the commands from the plain prefix;
- teacher: the same model with the adapter disabled (frozen pi_r), scoring the same commands from the
  prefix with the knowledge inserted before the situation;
- loss: reverse KL(student || teacher) over the commands (`losses.choice_kl`), averaged over the batch.
Every step scores fresh with the current student weights, so training stays on-policy.
"""

from __future__ import annotations

import torch
from transformers import Trainer

from agent.policy import candidate_logprobs
from consolidation.losses import choice_kl


def teacher_messages(messages: list[dict], privileged_context: str, template: str) -> list[dict]:
    """The prefix with the knowledge put before the situation, exactly as TRL's SDFT composes it."""
    last = messages[-1]
    return messages[:-1] + [{**last, "content": template.format(prompt=last["content"],
                                                                   privileged_context=privileged_context)}]


class ChoiceDistillTrainer(Trainer):
    def __init__(self, *args, end_ids: list[int], temperature: float, teacher_template: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.end_ids = end_ids
        self.temperature = temperature
        self.teacher_template = teacher_template

    def render(self, messages: list[dict]) -> str:
        return self.processing_class.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        tok = self.processing_class
        losses = []
        for row in inputs:
            student = candidate_logprobs(model, tok, self.render(row["prompt"]), row["candidates"], self.end_ids)
            with torch.no_grad(), model.disable_adapter():
                teacher_prompt = self.render(teacher_messages(row["prompt"], row["privileged_context"],
                                                              self.teacher_template))
                teacher = candidate_logprobs(model, tok, teacher_prompt, row["candidates"], self.end_ids)
            losses.append(choice_kl(student, teacher, self.temperature))
        loss = torch.stack(losses).mean()
        return (loss, None) if return_outputs else loss
