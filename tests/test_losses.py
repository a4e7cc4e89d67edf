"""Consolidation losses against hand computations."""

import math

import torch
from peft import LoraConfig, get_peft_model
from transformers import TrainingArguments

from agent.policy import Policy
from agent.prompts import acting_messages, knowledge_block, with_context
from consolidation.choice_trainer import ChoiceDistillTrainer
from consolidation.distill import TEACHER_TEMPLATE
from consolidation.losses import choice_kl
from tests.conftest import naive_scores


def hand_kl(student, teacher, temperature):
    def softmax(xs):
        z = sum(math.exp(x / temperature) for x in xs)
        return [math.exp(x / temperature) / z for x in xs]

    ps, pt = softmax(student), softmax(teacher)
    return sum(p * (math.log(p) - math.log(q)) for p, q in zip(ps, pt))


def test_choice_kl_matches_hand_computation():
    s, t = [-1.0, -2.5, -0.3], [-0.7, -3.0, -1.1]
    for temperature in (1.0, 0.7):
        got = choice_kl(torch.tensor(s), torch.tensor(t), temperature).item()
        assert math.isclose(got, hand_kl(s, t, temperature), rel_tol=1e-5)
    assert choice_kl(torch.tensor(s), torch.tensor(s)).item() == 0.0


def test_trl_topk_reverse_kl_matches_hand_computation():
    """The token objective we configure (alpha=1.0, top-k, no tail) is reverse KL on the student's top-k."""
    from trl.experimental.sdft.loss_utils import compute_topk_self_distillation_loss

    torch.manual_seed(0)
    student, teacher = torch.randn(1, 1, 10), torch.randn(1, 1, 10)
    got = compute_topk_self_distillation_loss(student, teacher, distillation_topk=4, distillation_alpha=1.0,
                                              distillation_add_tail=False).item()
    top = torch.topk(student[0, 0], 4).indices.tolist()
    s = [student[0, 0, i].item() for i in top]
    t = [teacher[0, 0, i].item() for i in top]
    assert math.isclose(got, hand_kl(s, t, 1.0), rel_tol=1e-4)


def test_choice_trainer_loss_on_a_tiny_model(tiny_model_dir, tmp_path):
    policy = Policy.load(str(tiny_model_dir))
    row = {"prompt": acting_messages("Objective: get the coin.\nNow: a room.\nValid commands: go east, take coin\nYour command:"),
           "privileged_context": knowledge_block(["Take the coin first."]), "candidates": ["go east", "take coin", "look"]}
    # A student that already differs from the teacher: a randomly initialised (non-zero) LoRA.
    torch.manual_seed(0)
    model = get_peft_model(policy.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "o_proj"],
                                                    init_lora_weights=False, task_type="CAUSAL_LM"))
    policy.model = model
    teacher_prompt = policy.render(with_context(row["prompt"], row["privileged_context"], TEACHER_TEMPLATE))
    assert teacher_prompt.index("Take the coin first.") < teacher_prompt.index("Objective:")
    # Hand computation with full forward passes: student with its adapter, teacher with the adapter off.
    student = naive_scores(policy, policy.render(row["prompt"]), row["candidates"]).tolist()
    with model.disable_adapter():
        teacher = naive_scores(policy, teacher_prompt, row["candidates"]).tolist()
    temperature = 0.7
    expected = hand_kl(student, teacher, temperature)

    trainer = ChoiceDistillTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True,
                                                                     report_to=[], remove_unused_columns=False),
                                   train_dataset=[[row]], data_collator=lambda b: b[0], processing_class=policy.tokenizer,
                                   end_ids=policy.end_ids, temperature=temperature, teacher_template=TEACHER_TEMPLATE)
    loss = trainer.compute_loss(model, [row])
    assert expected > 1e-4 and math.isclose(loss.item(), expected, rel_tol=1e-3)
    loss.backward()  # gradients reach the LoRA weights
    grads = [p.grad for n, p in model.named_parameters() if "lora_" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
