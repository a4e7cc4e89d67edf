"""Generate-mode consolidation: TRL's SDFT trainer, plus one figure per step that TRL cannot know.

TRL already logs, per optimiser step, the reverse KL(student || teacher) (`self_distillation/distillation_loss`,
which is the KL itself at `distillation_alpha=1.0`) and the student's mean response length
(`completions/mean_length`, in tokens). What it cannot know is whether a sampled response would have been a
move in the game: that needs the prefix's admissible commands. `completions/valid_fraction` is the fraction of
the student's samples that ground to an admissible command by the rule acting uses (`ground_response`), so
the training log shows the student learning the form of a command, or not.
"""

from __future__ import annotations

import torch
from trl.experimental.sdft import SDFTTrainer

from agent.prompts import ground_response
from agent.templates import line_end_ids
from consolidation.dataset import CONTENT_KEYS

VALID_FRACTION = "completions/valid_fraction"


class GroundedSDFTTrainer(SDFTTrainer):
    def __init__(self, *args, one_line: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if one_line:
            # The student samples as it acts (`OELConfig.one_line`): its response ends at the first line break.
            # TRL's sampling takes no stop string, so every token holding a line break ends it, as an end-of-turn
            # token does; TRL's completion mask then ends there too, that token included.
            self.eos_token_ids = [*self.eos_token_ids, *line_end_ids(self.processing_class)]
            self.generation_config.eos_token_id = self.eos_token_ids

    def _set_signature_columns_if_needed(self):
        # The dataset's `candidates` column must reach `_prepare_training_batch` (TRL keeps only its own two).
        if self._signature_columns is None:
            self._signature_columns = list(CONTENT_KEYS)

    def _prepare_training_batch(self, inputs: list[dict]):
        batch = super()._prepare_training_batch(inputs)
        responses = self.processing_class.batch_decode(self._get_completion_ids_list(batch), skip_special_tokens=True)
        valid = torch.tensor([float(ground_response(text, row["candidates"])[1]) for text, row in zip(responses, inputs)],
                             device=self.accelerator.device)
        mode = "train" if self.model.training else "eval"
        # Over every process's samples, as TRL aggregates its own completion figures.
        self._metrics[mode][VALID_FRACTION].append(self.accelerator.gather(valid).mean().item())
        return batch
