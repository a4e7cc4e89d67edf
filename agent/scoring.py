"""Scoring commands: the length-normalised log-likelihood of each candidate command after a prompt.

The fast kernels pack a prompt's candidates into one forward pass with a 4D attention mask (each candidate
sees the shared prefix and itself, never its siblings); `TurnCache` also reuses the previous turn's prompt
encoding where the new prompt only grew. `naive_candidate_logprobs`, one forward pass per candidate, is the
reference the tests and `bench.rollout` compare against."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from oel.errors import OELError


def candidate_logprobs(model, tokenizer, prompt: str, candidates: list[str], end_ids: list[int]) -> torch.Tensor:
    """Length-normalised log-likelihood of each candidate (followed by end-of-turn) after `prompt`.

    Differentiable: choose-mode consolidation trains through it. See `batch_candidate_logprobs`.
    """
    return batch_candidate_logprobs(model, tokenizer, [prompt], [candidates], end_ids)[0]


def batch_candidate_logprobs(model, tokenizer, prompts: list[str], candidate_lists: list[list[str]],
                             end_ids: list[int]) -> list[torch.Tensor]:
    """Score every prompt's candidates with one prefill and one packed forward pass.

    1. The prompts are encoded once, left-padded into one batch; their KV cache is kept.
    2. Each prompt's candidates are packed end to end into one row. A 4D attention mask lets every
       candidate token see its prompt and the earlier tokens of its own candidate only, and position ids
       restart at the prompt's length for each candidate. So all candidates share the prompt's cache
       without copying it (copying it per candidate costs ~28 MB a row and dominated on CPU).
    Returns, per prompt, the mean token log-probability of each candidate.
    """
    if any(not c for c in candidate_lists):
        raise OELError("no admissible commands to choose from")
    device = model.device
    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    prompt_mask = batch.attention_mask.bool()
    # Only the last prompt position's logits are used (they predict each first candidate token): computing
    # the vocabulary projection for the other positions was a fifth of the prefill's cost.
    out = model(batch.input_ids, attention_mask=batch.attention_mask,
                position_ids=(batch.attention_mask.cumsum(1) - 1).clamp(min=0), use_cache=True, logits_to_keep=1)
    first_logits, cache = out.logits[:, -1, :], out.past_key_values
    lengths = prompt_mask.sum(1)

    encoded = [[tokenizer.encode(c, add_special_tokens=False) + end_ids for c in cands] for cands in candidate_lists]
    n_rows, width, plen = len(prompts), max(sum(map(len, cands)) for cands in encoded), prompt_mask.shape[1]
    ids = torch.full((n_rows, width), tokenizer.pad_token_id, dtype=torch.long)
    positions = torch.zeros((n_rows, width), dtype=torch.long)
    segment = torch.full((n_rows, width), -1, dtype=torch.long)  # which candidate a token belongs to
    for row, cands in enumerate(encoded):
        at = 0
        for j, cand in enumerate(cands):
            ids[row, at:at + len(cand)] = torch.tensor(cand)
            positions[row, at:at + len(cand)] = lengths[row].cpu() + torch.arange(len(cand))
            segment[row, at:at + len(cand)] = j
            at += len(cand)
    ids, positions, segment = ids.to(device), positions.to(device), segment.to(device)
    causal = torch.ones((width, width), dtype=torch.bool, device=device).tril()
    same = (segment[:, :, None] == segment[:, None, :]) & (segment[:, :, None] >= 0)
    # Padding rows attend to the prompt only, so no row is fully masked (that would give NaNs).
    mask = torch.cat([prompt_mask[:, None, :].expand(n_rows, width, plen), same & causal], dim=2)[:, None]
    logits = model(ids, past_key_values=cache, attention_mask=mask, position_ids=positions).logits

    # Row r's sequence of logits: the prompt's last position, then its packed candidates.
    return [mean_candidate_logprobs(torch.cat([first_logits[row:row + 1], logits[row]]), 0, cands)
            for row, cands in enumerate(encoded)]


def mean_candidate_logprobs(logits: torch.Tensor, last_prompt: int, encoded: list[list[int]]) -> torch.Tensor:
    """Mean token log-probability of each candidate, packed end to end in `logits` ([positions, vocab])
    right after the prompt's last position `last_prompt`. Token k of a candidate is predicted by that
    position (k=0) or by the candidate's token k-1. The result is on the CPU (gradients kept), where the
    sampling generators live."""
    scores, at = [], last_prompt + 1
    for cand in encoded:
        rows = torch.tensor([last_prompt, *range(at, at + len(cand) - 1)], device=logits.device)
        target = torch.tensor(cand, device=logits.device)
        scores.append(F.log_softmax(logits[rows].float(), dim=-1).gather(-1, target[:, None]).mean())
        at += len(cand)
    return torch.stack(scores).cpu()


class TurnCache:
    """The KV cache of one game's previous prompt, reused for the next turn's scoring.

    A turn's prompt mostly repeats the last one (system prompt, objective, earlier turns), so only the
    tokens after the longest common prefix of the two are encoded. They go through the model in the same
    forward pass as the packed candidates (4D mask, as in `batch_candidate_logprobs`); the candidates'
    entries are then cropped off, leaving the cache of exactly this prompt for the next turn. The scores
    equal a fresh encoding up to float rounding (tests/test_policy.py).
    """

    def __init__(self):
        self.ids: list[int] = []
        self.cache = None
        self.last_reused = 0
        """Prompt tokens of the last call taken from the cache."""
        self.last_encoded = 0
        """Prompt tokens of the last call that had to be encoded."""

    def score(self, model, tokenizer, prompt: str, candidates: list[str], end_ids: list[int]) -> torch.Tensor:
        if not candidates:
            raise OELError("no admissible commands to choose from")
        ids = tokenizer.encode(prompt, add_special_tokens=False)
        keep, limit = 0, min(len(self.ids), len(ids) - 1)  # at least one new token predicts the first candidate token
        while keep < limit and self.ids[keep] == ids[keep]:
            keep += 1
        if keep == 0:
            self.cache = None
        else:
            self.cache.crop(keep - self.cache.get_seq_length())
        new = ids[keep:]
        encoded = [tokenizer.encode(c, add_special_tokens=False) + end_ids for c in candidates]
        sequence = new + [t for cand in encoded for t in cand]
        positions = list(range(keep, len(ids)))
        segment = [-1] * len(new)  # -1: prompt; j: candidate j
        for j, cand in enumerate(encoded):
            positions += range(len(ids), len(ids) + len(cand))
            segment += [j] * len(cand)
        device, width = model.device, len(sequence)
        segment_t = torch.tensor(segment, device=device)
        causal = torch.ones((width, width), dtype=torch.bool, device=device).tril()
        # A token sees the cached prefix, the new prompt tokens before it, and its own candidate's earlier tokens.
        own = (segment_t[None, :] == -1) | (segment_t[None, :] == segment_t[:, None])
        mask = torch.cat([torch.ones((width, keep), dtype=torch.bool, device=device), causal & own], dim=1)
        # Logits from the last prompt position on: the new prompt tokens before it predict nothing we score.
        out = model(torch.tensor([sequence], device=device), past_key_values=self.cache, use_cache=True,
                    attention_mask=mask[None, None], position_ids=torch.tensor([positions], device=device),
                    logits_to_keep=width - len(new) + 1)
        self.cache = out.past_key_values
        self.cache.crop(len(ids) - self.cache.get_seq_length())  # drop the candidates' entries
        self.ids = ids
        self.last_reused, self.last_encoded = keep, len(new)
        return mean_candidate_logprobs(out.logits[0], 0, encoded)


@torch.no_grad()
def naive_candidate_logprobs(model, tokenizer, prompt: str, candidates: list[str], end_ids: list[int]) -> torch.Tensor:
    """The reference `candidate_logprobs`: one full forward pass over prompt + candidate per candidate.

    ~20x the cost with 20 candidates; kept for tests and as the baseline of bench/rollout.py.
    """
    prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
    scores = []
    for candidate in candidates:
        cand_ids = tokenizer.encode(candidate, add_special_tokens=False) + end_ids
        ids = torch.tensor([prompt_ids + cand_ids], device=model.device)
        logp = F.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
        token_logp = logp[len(prompt_ids) - 1:].gather(-1, ids[0, len(prompt_ids):, None]).squeeze(-1)
        scores.append(token_logp.mean())
    return torch.stack(scores).cpu()
