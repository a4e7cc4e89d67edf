"""Consolidation training on a tiny model: a real optimiser step, a loadable adapter that changes the policy.
Covers TRL's SDFT (tokens), the choose-mode trainer (choices) and the off-policy SFT baseline."""

import pytest
import torch

from agent.policy import Policy
from agent.prompts import acting_messages, knowledge_block
from consolidation.distill import distill
from oel.config import OELConfig


@pytest.mark.parametrize("objective,method", [("tokens", "on_policy"), ("choices", "on_policy"), ("choices", "sft")])
def test_distill_trains_an_adapter_that_changes_the_policy(tiny_model_dir, tmp_path, objective, method):
    policy = Policy.load(str(tiny_model_dir))
    records = [{"prompt": acting_messages(f"Objective: get the coin.\nNow: room {i}.\nValid commands: go east, look\nYour command:"),
                "privileged_context": knowledge_block(["Go east to find the coin."]),
                "candidates": ["go east", "look", "take coin"]} for i in range(3)]
    cfg = OELConfig(model=str(tiny_model_dir), distill_steps=2, distill_batch_size=2, distill_max_new_tokens=8,
                    learning_rate=5e-2, distill_topk=16, distill_objective=objective, distill_method=method)
    result = distill(policy, records, cfg, tmp_path)
    assert result["method"] == ("sft" if method == "sft" else objective)
    steps = [row for row in result["log"] if "loss" in row]
    assert len(steps) == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in steps)
    adapter = tmp_path / "adapter"
    assert (adapter / "adapter_config.json").is_file()

    base = Policy.load(str(tiny_model_dir))
    tuned = Policy.load(str(tiny_model_dir), adapters=[adapter])
    prompt = base.render(records[0]["prompt"])
    assert not torch.allclose(base.score_candidates(prompt, ["go east", "look"]),
                              tuned.score_candidates(prompt, ["go east", "look"]))
