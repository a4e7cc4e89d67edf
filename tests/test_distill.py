"""Consolidation training on a tiny model: a real optimiser step, a loadable adapter that changes the policy.
Covers TRL's SDFT (tokens), the choose-mode trainer (choices) and the off-policy SFT baseline."""

import warnings

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
    with warnings.catch_warnings(record=True) as seen:  # merging prints nothing of PEFT's own deprecations
        warnings.simplefilter("always")
        tuned = Policy.load(str(tiny_model_dir), adapters=[adapter])
    assert not [w for w in seen if issubclass(w.category, FutureWarning)]
    prompt = base.render(records[0]["prompt"])
    assert not torch.allclose(base.score_candidates(prompt, ["go east", "look"]),
                              tuned.score_candidates(prompt, ["go east", "look"]))


@pytest.mark.parametrize("context", ["memory", "knowledge", "trajectories", "knowledge+trajectories"])
def test_teacher_context_holds_what_the_setting_names(tmp_path, context):
    from consolidation.dataset import build_dataset
    from memory.store import Memory

    cfg = OELConfig(teacher_context=context, retrieve_k=4)

    def episode(i, won):
        turn = {"prefix": acting_messages("Objective: find the coin. You are in a cellar."), "action": "go east",
                "feedback": "You find a coin." if won else "A wall.", "admissible": ["go east", "go west"]}
        return {"id": f"e{i}", "env": "tw-coin_collector", "won": won, "outcome": "won" if won else "lost",
                "turns": [turn]}

    with Memory(tmp_path / "memory") as memory:
        memory.add("Take the coin as soon as you see it.", env="tw-coin_collector", source="s", outcome="won",
                   round=1, created_by="hand")
        memory.add("Won in 1 step: go east -> You find a coin.", env="tw-coin_collector", source="s",
                   outcome="won", round=1, created_by="log", kind="procedure", signature="go east")
        records, used = build_dataset([episode(0, True), episode(1, False)], memory, cfg)
    assert len(records) == 2 and records[0]["candidates"] == ["go east", "go west"]
    text = records[1]["privileged_context"]  # episode 1's teacher sees episode 0's play, never its own
    knows, replays = "Take the coin" in text, "Game (won): go east -> You find a coin." in text
    assert (knows, replays) == (context != "trajectories", context.endswith("trajectories"))
    assert ("Won in 1 step" in text) == (context == "memory")  # procedures: the memory context only
    assert "Game (lost)" not in text
    assert bool(used) == (context != "trajectories")
    if knows and replays:
        assert text.index("Take the coin") < text.index("Game (won)")  # knowledge first
    with Memory(tmp_path / "empty") as memory:  # nothing left to absorb: the play logs never come alone
        records, _ = build_dataset([episode(0, True), episode(1, False)], memory, cfg)
    assert len(records) == (2 if context == "trajectories" else 0)


def test_choice_trainer_scores_the_teacher_once_per_record_and_the_batch_together(tiny_model_dir, tmp_path):
    """The cached, batched loss equals the per-row loss of the reference formulation, and a record's
    teacher scores are computed once however many steps it appears in."""
    from peft import LoraConfig, get_peft_model
    from transformers import TrainingArguments

    from agent.scoring import candidate_logprobs
    from agent.prompts import with_context
    from consolidation.choice_trainer import ChoiceDistillTrainer
    from consolidation.distill import TEACHER_TEMPLATE
    from consolidation.losses import choice_kl

    policy = Policy.load(str(tiny_model_dir))
    rows = [{"prompt": acting_messages(f"Objective: get the coin.\nNow: room {i}.\nValid commands: {cmds}\nYour command:"),
             "privileged_context": knowledge_block(["Go east to find the coin."]), "candidates": cmds.split(", ")}
            for i, cmds in enumerate(["go east, look", "go west, take coin, look", "open door, go north"])]
    model = get_peft_model(policy.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.eval()  # no dropout: the two formulations must agree to float precision
    trainer = ChoiceDistillTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to=[]),
                                   train_dataset=[rows], data_collator=lambda b: b[0], processing_class=policy.tokenizer,
                                   end_ids=policy.end_ids, temperature=1.0, teacher_template=TEACHER_TEMPLATE)
    loss = trainer.compute_loss(model, rows)
    reference = []
    for r in rows:
        student = candidate_logprobs(model, policy.tokenizer, trainer.render(r["prompt"]), r["candidates"], policy.end_ids)
        with torch.no_grad(), model.disable_adapter():
            teacher = candidate_logprobs(model, policy.tokenizer, trainer.render(
                with_context(r["prompt"], r["privileged_context"], TEACHER_TEMPLATE)), r["candidates"], policy.end_ids)
        reference.append(choice_kl(student, teacher, 1.0))
    assert torch.allclose(loss, torch.stack(reference).mean(), atol=1e-4)
    assert loss.requires_grad
    cached = dict(trainer.teacher_cache)
    trainer.compute_loss(model, rows[:2])  # a later step with records already seen: nothing rescored
    assert len(cached) == 3 and trainer.teacher_cache.keys() == cached.keys()
    assert all(trainer.teacher_cache[k] is cached[k] for k in cached)


def test_sdft_log_counts_the_student_samples_that_ground_to_a_command(tiny_model_dir, tmp_path):
    """`completions/valid_fraction` grounds each sample against its own prefix's commands, as acting does:
    here one sample is a command of its prefix and one is not, whatever the tiny model would have written."""
    from consolidation.distill import make_trainer

    policy = Policy.load(str(tiny_model_dir))
    records = [{"prompt": acting_messages(f"Now: room {i}.\nValid commands: go east, look\nYour command:"),
                "privileged_context": knowledge_block(["Go east."]), "candidates": candidates}
               for i, candidates in enumerate([["go east", "look"], ["open door"]])]
    cfg = OELConfig(model=str(tiny_model_dir), distill_steps=1, distill_batch_size=2, distill_max_new_tokens=8,
                    distill_topk=16, distill_objective="tokens")
    trainer, method = make_trainer(policy, records, cfg, tmp_path)
    assert method == "tokens" and (trainer.args.top_p, trainer.args.top_k) == (1.0, 0)  # the method: no truncation
    written = [policy.tokenizer.encode(text, add_special_tokens=False) for text in ("Go east.", "take the key")]
    trainer._generate = lambda prompt_ids: (prompt_ids, written)  # what the student "sampled"
    trainer._prepare_training_batch([dict(r) for r in records])
    assert trainer._metrics["train"]["completions/valid_fraction"] == [0.5]
    assert trainer._metrics["train"]["completions/mean_length"] == [sum(map(len, written)) / 2]


@pytest.mark.parametrize("one_line", [True, False])
def test_sdft_student_ends_its_samples_at_a_line_break_as_it_acts(tiny_model_dir, tmp_path, one_line):
    """With `one_line`, every token holding a line break ends the student's sample (TRL's sampling takes no stop
    string) and TRL's completion mask with it; without, only the end-of-turn token does."""
    from agent.templates import line_end_ids
    from consolidation.distill import make_trainer

    policy = Policy.load(str(tiny_model_dir))
    records = [{"prompt": acting_messages("Now: a room.\nValid commands: go east, look\nYour command:"),
                "privileged_context": knowledge_block(["Go east."]), "candidates": ["go east", "look"]}]
    cfg = OELConfig(model=str(tiny_model_dir), distill_steps=1, distill_batch_size=1, distill_max_new_tokens=8,
                    distill_topk=16, distill_objective="tokens", one_line=one_line)
    trainer, _ = make_trainer(policy, records, cfg, tmp_path)
    newline = policy.tokenizer.encode("go east\nlook", add_special_tokens=False)
    ends = set(trainer.eos_token_ids)
    assert ends == set(trainer.generation_config.eos_token_id) and set(policy.end_ids) <= ends
    assert (set(line_end_ids(policy.tokenizer)) <= ends) is one_line and bool(ends & set(newline)) is one_line


def test_sdft_teacher_sees_the_whole_prompt_however_long_the_knowledge(tiny_model_dir, tmp_path):
    """TRL cuts prompts to their last 512 tokens unless told otherwise: the teacher must see the system
    prompt and all of its knowledge, as acting with memory does."""
    from transformers import TrainerCallback

    from agent.prompts import with_context
    from consolidation.distill import TEACHER_TEMPLATE, make_trainer

    policy = Policy.load(str(tiny_model_dir))
    knowledge = knowledge_block([f"Lesson {i}: in room {i}, go east to find the coin." for i in range(80)])
    record = {"prompt": acting_messages("Objective: get the coin.\nValid commands: go east, look\nYour command:"),
              "privileged_context": knowledge, "candidates": ["go east", "look"]}
    cfg = OELConfig(model=str(tiny_model_dir), distill_steps=1, distill_batch_size=1, distill_max_new_tokens=4,
                    distill_topk=16, distill_objective="tokens")
    full = policy.tokenizer.apply_chat_template(with_context(record["prompt"], knowledge, TEACHER_TEMPLATE),
                                                add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    assert len(full) > 1000  # far beyond TRL's default cut

    seen = []

    class Spy(TrainerCallback):
        def on_self_distillation_batch_prepared(self, teacher_input_ids, teacher_attention_mask, completion_ids, **_):
            prompt_part = teacher_input_ids[0, : teacher_input_ids.shape[1] - completion_ids.shape[1]]
            seen.append(prompt_part[teacher_attention_mask[0, : len(prompt_part)].bool()].tolist())

    trainer, method = make_trainer(policy, [record], cfg, tmp_path)
    trainer.add_callback(Spy())
    trainer.train()
    assert method == "tokens" and seen == [full]


def test_sdft_cuda_check_names_the_rows_of_a_bad_distribution():
    """bench/sdft_cuda.py turns a device-side sampling assert into an error that says which rows were bad."""
    from bench.sdft_cuda import Findings, checked_sampling

    findings, original = Findings(), torch.multinomial
    findings.pads = [0, 3]
    probs = torch.tensor([[0.5, 0.5], [float("nan"), 1.0]])
    with checked_sampling(findings), pytest.raises(RuntimeError, match=r"rows \[1\] of 2; left padding per row \[0, 3\]"):
        torch.multinomial(probs, 1)
    assert torch.multinomial is original  # put back, error or not
    with checked_sampling(findings):
        assert torch.multinomial(probs[:1], 1).shape == (1, 1)


def test_sdft_cuda_consolidates_a_runs_round_with_every_check(tiny_model_dir, tmp_path, episode, WANDERING, capsys):
    import json

    from bench.sdft_cuda import main
    from memory.store import Memory
    from oel.rundir import RunDir

    run = RunDir(tmp_path / "run")
    run.trajectories.mkdir(parents=True)
    run.config.write_text(json.dumps(OELConfig(model=str(tiny_model_dir)).to_dict()))
    run.round_log(1).write_text("".join(json.dumps({**episode(WANDERING), "id": f"e{i}"}) + "\n" for i in range(2)))
    with Memory(run.memory) as memory:
        memory.add("Take the coin as soon as you see it.", env="tw-coin_collector", source="e0", outcome="won",
                   round=1, created_by="hand")
    assert main(["--run", str(run.root), "--model", str(tiny_model_dir), "--steps", "1"]) == 0
    result = capsys.readouterr().out.strip().splitlines()[-1]
    assert result.startswith("RESULT as_run ok 1 steps"), result
    assert main(["--run", str(run.root), "--model", str(tiny_model_dir), "--variant", "probe"]) == 0
    out = capsys.readouterr().out
    assert "probe eval: " in out and "probe train: " in out and "RESULT probe ok no bad logits" in out
    assert main(["--run", str(tmp_path / "run"), "--round", "2", "--model", str(tiny_model_dir)]) == 2  # no round 2
    assert "no records to consolidate" in capsys.readouterr().err
    assert main(["--run", str(tmp_path), "--model", str(tiny_model_dir)]) == 2  # not a run directory
    assert capsys.readouterr().err.startswith("cannot read the records: ")


def test_choose_mode_batches_are_consecutive_turns_of_one_episode(tiny_model_dir, tmp_path):
    """Blocks follow the episode and the turn (0-3, 4-7, ...), whatever order the records come in, and the
    choice trainer steps through whole blocks."""
    from consolidation.distill import episode_blocks, make_trainer

    records = [{"prompt": acting_messages(f"Now: room {e}.{t}\nYour command:"), "privileged_context": "- Go east.",
                "candidates": ["go east", "look"], "episode": f"e{e}", "turn": t}
               for e, turns in ((0, 6), (1, 3)) for t in range(turns)]
    blocks = episode_blocks(records[::-1], 4)
    assert sorted((b[0]["episode"], sorted(r["turn"] for r in b)) for b in blocks) == [
        ("e0", [0, 1, 2, 3]), ("e0", [4, 5]), ("e1", [0, 1, 2])]
    cfg = OELConfig(model=str(tiny_model_dir), distill_steps=2, distill_batch_size=4)
    trainer, method = make_trainer(Policy.load(str(tiny_model_dir)), records, cfg, tmp_path)
    assert method == "choices" and trainer.train_dataset == episode_blocks(records, 4)
    batch = next(iter(trainer.get_train_dataloader()))
    assert len({r["episode"] for r in batch}) == 1 and 1 <= len(batch) <= 4
