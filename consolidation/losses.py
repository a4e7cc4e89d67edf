"""Loss maths for consolidation, as small pure functions.

The token-level objective (generate mode) is TRL's: `trl.experimental.sdft.loss_utils` with
`distillation_alpha=1.0`, i.e. reverse KL(student || teacher) on the student's top-k tokens.
The choose-mode objective is here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def choice_kl(student_scores: torch.Tensor, teacher_scores: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Reverse KL(student || teacher) between two distributions over the same admissible commands.

    Each policy acts by sampling a command from softmax(score / temperature), where a score is the
    command's length-normalised log-likelihood. The student's distribution is known exactly over the
    whole (small) support, so the on-policy expectation needs no sampling:
        KL = sum_c p_s(c) * (log p_s(c) - log p_t(c)).
    """
    log_ps = F.log_softmax(student_scores / temperature, dim=-1)
    log_pt = F.log_softmax(teacher_scores / temperature, dim=-1)
    return (log_ps.exp() * (log_ps - log_pt)).sum(-1)
