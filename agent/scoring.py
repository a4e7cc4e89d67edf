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

    Differentiable. See `batch_candidate_logprobs`.
    """
    return batch_candidate_logprobs(model, tokenizer, [prompt], [candidates], end_ids)[0]


def trunk_candidate_logprobs(model, tokenizer, prompts: list[str], candidate_lists: list[list[str]],
                             end_ids: list[int]) -> list[torch.Tensor]:
    """The scores of several prompts' candidates in one forward pass, where the prompts' shared start is encoded
    once. Differentiable: the choose-mode student trains through it.

    The longest prompt is the trunk. Every other prompt is the trunk's first L tokens (its longest common
    prefix with the trunk) plus a branch of its own; the sequence is the trunk, then each branch followed by
    its prompt's packed candidates, then the trunk's candidates. A 4D attention mask lets a branch token see
    the trunk's first L tokens and its branch, and a candidate token its prompt and its own candidate's
    earlier tokens; position ids continue each prompt. So the scores equal one pass per prompt (up to float
    rounding) whatever the prompts are, and the cost falls with what they share: consecutive turns of one
    episode repeat the system prompt, the objective and the transcript, so 4 of them encode ~40% of their
    tokens (docs/BENCHMARKS.md, "Consolidation"). Only the positions that predict a candidate token reach
    the vocabulary projection.
    """
    if any(not c for c in candidate_lists):
        raise OELError("no admissible commands to choose from")
    ids = [tokenizer.encode(p, add_special_tokens=False) for p in prompts]
    trunk_at = max(range(len(ids)), key=lambda i: len(ids[i]))
    trunk = ids[trunk_at]
    encoded = [encode_candidates(tokenizer, c, end_ids) for c in candidate_lists]
    # Per token: its id, position, owner (-1: trunk; i: prompt i's branch or candidates), segment (-1: prompt;
    # j: candidate j) and how many trunk tokens it sees.
    tokens, positions = list(trunk), list(range(len(trunk)))
    owner, segment, sees = [-1] * len(trunk), [-1] * len(trunk), list(range(1, len(trunk) + 1))
    predictor, starts = [0] * len(ids), [0] * len(ids)  # per prompt: the token predicting its first candidate
    # token (the trunk's last token, or its branch's last), and where its candidates start
    for i in sorted(range(len(ids)), key=lambda i: i == trunk_at):  # the trunk's own candidates last
        shared = len(trunk)
        if i != trunk_at:
            shared = 0
            while shared < len(ids[i]) - 1 and ids[i][shared] == trunk[shared]:
                shared += 1  # at least one branch token: it predicts the first candidate token
            branch = ids[i][shared:]
            tokens += branch
            positions += range(shared, len(ids[i]))
            owner += [i] * len(branch)
            segment += [-1] * len(branch)
            sees += [shared] * len(branch)
        predictor[i], starts[i] = (len(trunk) if i == trunk_at else len(tokens)) - 1, len(tokens)
        for j, cand in enumerate(encoded[i]):
            tokens += cand
            positions += range(len(ids[i]), len(ids[i]) + len(cand))
            owner += [i] * len(cand)
            segment += [j] * len(cand)
            sees += [shared] * len(cand)
    device, width = model.device, len(tokens)
    owner_t, segment_t, sees_t = (torch.tensor(v, device=device) for v in (owner, segment, sees))
    at = torch.arange(width, device=device)
    in_trunk = at[None, :] < len(trunk)
    own = ((owner_t[None, :] == owner_t[:, None]) & (owner_t[:, None] >= 0) & (at[None, :] <= at[:, None])
           & ((segment_t[None, :] == -1) | (segment_t[None, :] == segment_t[:, None])))
    mask = (in_trunk & (at[None, :] < sees_t[:, None])) | (~in_trunk & own)
    widths = [sum(map(len, cands)) for cands in encoded]  # each prompt's candidate tokens
    keep = []  # the logits kept: per prompt, its predictor's, then its candidates' tokens'
    for i in range(len(ids)):
        keep += [predictor[i], *range(starts[i], starts[i] + widths[i])]
    logits = model(torch.tensor([tokens], device=device), attention_mask=mask[None, None],
                   position_ids=torch.tensor([positions], device=device),
                   logits_to_keep=torch.tensor(keep, device=device)).logits[0]
    scores, at_keep = [], 0
    for i in range(len(ids)):
        scores.append(candidate_means(logits[at_keep:at_keep + 1], logits[None, at_keep + 1:at_keep + 1 + widths[i]],
                                      [encoded[i]])[0])
        at_keep += 1 + widths[i]
    return scores


@torch.no_grad()
def frozen_rows_logprobs(model, tokenizer, prompts: list[str], candidate_lists: list[list[str]],
                         end_ids: list[int], bar=None) -> list[torch.Tensor]:
    """Scores of many prompts from a model that does not change meanwhile (a frozen teacher), no gradient.

    On an accelerator, one padded batch (`batch_candidate_logprobs`). On a CPU, one prompt at a time through
    one `TurnCache`, in sorted order: sorted, a prompt mostly extends its neighbour (the turns of one episode
    share all but the newest turn, knowledge included when it is the same), so only what differs is encoded.
    On the demo's consolidation teachers (73 prompts of ~720 tokens) that is 24-26% of their tokens. `bar`
    (a progress bar) advances by one a prompt. Returns the scores in the order of `prompts`."""
    if model.device.type != "cpu":
        scores = batch_candidate_logprobs(model, tokenizer, prompts, candidate_lists, end_ids)
        if bar is not None:
            bar.update(len(prompts))
        return scores
    turn, scores = TurnCache(), [None] * len(prompts)
    for i in sorted(range(len(prompts)), key=prompts.__getitem__):
        scores[i] = turn.score(model, tokenizer, prompts[i], candidate_lists[i], end_ids)
        if bar is not None:
            bar.update(1)
    return scores


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

    encoded = [encode_candidates(tokenizer, cands, end_ids) for cands in candidate_lists]
    n_rows, width, plen = len(prompts), max(sum(map(len, cands)) for cands in encoded), prompt_mask.shape[1]
    starts = lengths.tolist()  # one device sync, not one per candidate
    ids = torch.full((n_rows, width), tokenizer.pad_token_id, dtype=torch.long)
    positions = torch.zeros((n_rows, width), dtype=torch.long)
    segment = torch.full((n_rows, width), -1, dtype=torch.long)  # which candidate a token belongs to
    for row, cands in enumerate(encoded):
        at = 0
        for j, cand in enumerate(cands):
            ids[row, at:at + len(cand)] = torch.tensor(cand)
            positions[row, at:at + len(cand)] = starts[row] + torch.arange(len(cand))
            segment[row, at:at + len(cand)] = j
            at += len(cand)
    ids, positions, segment = ids.to(device), positions.to(device), segment.to(device)
    causal = torch.ones((width, width), dtype=torch.bool, device=device).tril()
    same = (segment[:, :, None] == segment[:, None, :]) & (segment[:, :, None] >= 0)
    # Padding rows attend to the prompt only, so no row is fully masked (that would give NaNs).
    mask = torch.cat([prompt_mask[:, None, :].expand(n_rows, width, plen), same & causal], dim=2)[:, None]
    logits = model(ids, past_key_values=cache, attention_mask=mask, position_ids=positions).logits

    return candidate_means(first_logits, logits, encoded)


def encode_candidates(tokenizer, candidates: list[str], end_ids: list[int]) -> list[list[int]]:
    """Each candidate's token ids followed by the end-of-turn ids (one tokenizer call for all)."""
    return [ids + end_ids for ids in tokenizer(candidates, add_special_tokens=False)["input_ids"]]


def candidate_means(first: torch.Tensor, packed: torch.Tensor, encoded: list[list[list[int]]]) -> list[torch.Tensor]:
    """Mean token log-probability of each candidate, per row.

    Row r's candidates `encoded[r]` are packed end to end in `packed[r]` ([rows, width, vocab]); `first[r]`
    holds the logits of the prompt's last position. Token k of a candidate is predicted by `first[r]`
    (k=0) or by the candidate's token k-1. Every candidate of every row goes through one log-softmax and
    one gather (one kernel each on a GPU, where a loop over candidates paid a launch and a copy for each).
    The results are on the CPU (gradients kept), where the sampling generators live.
    """
    device, width = packed.device, packed.shape[1]
    first_rows, first_targets, rest_at, rest_targets, rest_owner, counts = [], [], [], [], [], []
    for row, cands in enumerate(encoded):
        at = 0
        for cand in cands:
            owner = len(counts)
            first_rows.append(row)
            first_targets.append(cand[0])
            rest_at += range(row * width + at, row * width + at + len(cand) - 1)
            rest_targets += cand[1:]
            rest_owner += [owner] * (len(cand) - 1)
            counts.append(len(cand))
            at += len(cand)

    def token_logprobs(logits, targets):
        targets = torch.tensor(targets, device=device)
        return F.log_softmax(logits.float(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)

    sums = token_logprobs(first[first_rows], first_targets)  # candidate j's first token is row j
    if rest_at:
        rows = packed.reshape(-1, packed.shape[-1])[torch.tensor(rest_at, device=device)]
        sums = sums.index_add(0, torch.tensor(rest_owner, device=device), token_logprobs(rows, rest_targets))
    means = (sums / torch.tensor(counts, device=device)).cpu()
    return list(means.split([len(cands) for cands in encoded]))


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
        encoded = encode_candidates(tokenizer, candidates, end_ids)
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
        return candidate_means(out.logits[:, 0], out.logits[:, 1:], [encoded])[0]


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
