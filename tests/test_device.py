"""Device and precision settings, and one rendering for acting and training (thinking templates included)."""

import pytest
import torch

from agent.device import resolve_device, resolve_dtype
from agent.policy import Policy
from agent.prompts import acting_messages, knowledge_block
from oel.config import OELConfig
from oel.errors import OELError
from tests.conftest import THINKING_TEMPLATE


def test_device_resolution_and_dtype_choice(monkeypatch):
    monkeypatch.undo()  # the CPU's own bfloat16 probe, which conftest pins for the other tests
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") == resolve_device("cpu")
    with pytest.raises(OELError, match="no CUDA device"):
        resolve_device("cuda:0")
    for probe, expected in ((True, torch.bfloat16), (False, torch.float32)):  # emulated half precision is slow
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: probe)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        assert resolve_dtype("auto", torch.device("cpu")) == expected
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16  # what is asked for, is given
    for supported, expected in ((True, torch.bfloat16), (False, torch.float16)):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: supported)
        assert resolve_dtype("auto", torch.device("cuda", 0)) == expected


@pytest.mark.parametrize("setting,value,message", [("device", "gpu", "device must be auto, cpu, cuda or cuda:N"),
                                                   ("device", "cuda:x", "device must be"),
                                                   ("dtype", "fp8", "dtype must be auto, float32")])
def test_bad_device_or_dtype_settings_are_one_line_errors(setting, value, message):
    with pytest.raises(OELError, match=message):
        OELConfig(**{setting: value})


def test_a_policy_loads_in_the_dtype_asked_for_and_says_where_it_runs(tiny_model_dir):
    half = Policy.load(str(tiny_model_dir), device="cpu", dtype="bfloat16")
    full = Policy.load(str(tiny_model_dir), device="cpu")
    assert half.runtime()["dtype"] == "bfloat16" and full.runtime() == {"device": "cpu", "dtype": "float32",
                                                                          "attention": "sdpa"}
    prompt = full.render(acting_messages("Objective: get the coin.\nYour command:"))
    # Scores are upcast before the softmax: bfloat16 weights give float32 scores close to float32's.
    close = half.score_candidates(prompt, ["go east", "look"]), full.score_candidates(prompt, ["go east", "look"])
    assert close[0].dtype == torch.float32 and torch.allclose(*close, atol=0.1)


def test_where_a_run_plays_may_change_between_invocations_but_not_its_precision(tmp_path):
    from consolidation.loop import check_run_dir, write_run_config

    write_run_config(OELConfig(device="auto"), tmp_path)
    check_run_dir(OELConfig(device="cpu"), tmp_path)  # e.g. consolidate on another machine
    with pytest.raises(OELError, match="was made with dtype='auto', not 'float32'"):
        check_run_dir(OELConfig(dtype="float32"), tmp_path)


@pytest.mark.parametrize("thinking", [False, True])
def test_trainers_render_exactly_what_the_policy_acts_on(tiny_model_dir, tmp_path, thinking):
    """A thinking template thinks by default: a trainer that rendered without the switch trained on another
    prompt than the one the policy acts with."""
    from consolidation.distill import make_trainer

    policy = Policy.load(str(tiny_model_dir), name="tiny-thinker")
    policy.tokenizer.chat_template = THINKING_TEMPLATE
    record = {"prompt": acting_messages("Objective: get the coin.\nYour command:"),
              "privileged_context": knowledge_block(["Go east."]), "candidates": ["go east", "look"],
              "episode": "e0", "turn": 0}
    cfg = OELConfig(model=str(tiny_model_dir), thinking=thinking, action_mode="generate", distill_steps=1,
                    distill_batch_size=1)
    # Generate mode (TRL's SDFT): the student's prompt as acting renders it, thinking as the run says.
    sdft, method = make_trainer(policy, [record], cfg, tmp_path)
    acted = policy.tokenizer.encode(policy.render(record["prompt"], thinking=thinking), add_special_tokens=False)
    assert method == "tokens" and sdft._tokenize_prompts([record["prompt"]])[0] == acted
    # Choose mode never thinks: the choice trainer renders as choose-mode acting does.
    choices, method = make_trainer(policy, [record], OELConfig(model=str(tiny_model_dir), distill_steps=1,
                                                               distill_batch_size=1), tmp_path)
    assert method == "choices" and choices.render(record["prompt"]) == policy.render(record["prompt"])
    assert "<think>\n\n</think>" in choices.render(record["prompt"])


def test_thinking_tokens_count_in_tokens_per_episode(tiny_model_dir, coin_game):
    from agent.envs import TextWorldEnv
    from agent.graph import Context, play_episode

    thinker = Policy.load(str(tiny_model_dir), name="tiny-thinker")
    thinker.tokenizer.chat_template = THINKING_TEMPLATE
    env = TextWorldEnv(coin_game, family="tw-coin_collector", max_steps=50)
    state = play_episode(Context(env=env, policy=thinker, mode="generate", max_steps=2, max_new_tokens=6,
                                 thinking=True, greedy=True))
    # Every generated token counts, the thinking ones too: a turn counts all that generate produced, not the
    # command parsed from it.
    first = state.turns[0]
    [(text, n)] = thinker.generate([thinker.render(first["prefix"], thinking=True)], 6, greedy=True)
    assert (first["output"], first["tokens"]) == (text, n)
    assert state.tokens == sum(t["tokens"] for t in state.turns)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_miniature_loop_runs_on_cuda(tiny_model_dir, tmp_path):
    from consolidation.loop import run_loop

    cfg = OELConfig(model=str(tiny_model_dir), challenges=["tw-coin_collector:1"], rounds=1, train_games=2,
                    validation_games=1, test_games=1, max_steps=3, distill_steps=1, utility_prefixes=0,
                    concurrency=2, device="cuda")
    rows = run_loop(cfg, tmp_path / "run")
    assert len(rows) == 2
    manifests = list((tmp_path / "run" / "checkpoints").glob("*/manifest.json"))
    import json

    assert all(json.loads(m.read_text())["runtime"]["device"].startswith("cuda") for m in manifests)


def test_a_run_that_goes_on_in_another_precision_says_so(tmp_path):
    """`dtype = "auto"` follows the machine, so the same setting can mean another precision than the one the
    run's checkpoints were trained in: the loop says so (and goes on)."""
    import json

    from consolidation.checkpoints import Registry
    from rich.console import Console

    from consolidation.loop import precision_moved, warn_precision_moved

    registry = Registry(tmp_path / "checkpoints")
    assert precision_moved(registry, "bfloat16") is None  # no checkpoint yet: nothing to compare with
    for version, dtype in (("v1", "bfloat16"), ("v2", "float32")):
        (tmp_path / "checkpoints" / version).mkdir(parents=True)
        (tmp_path / "checkpoints" / version / "manifest.json").write_text(json.dumps(
            {"version": version, "status": "promoted", "runtime": {"device": "cpu", "dtype": dtype}}))
    assert precision_moved(registry, "float32") is None  # the newest checkpoint's precision counts
    assert "trained in float32, and it goes on in bfloat16" in precision_moved(registry, "bfloat16")
    # What `oel loop`, `oel play` and `oel consolidate` print: the precision their settings give here.
    console = Console(record=True, width=400)
    warn_precision_moved(OELConfig(dtype="bfloat16", device="cpu"), registry, console)
    assert "warning: this run's newest checkpoint was trained in float32" in console.export_text()
    console = Console(record=True, width=400)
    warn_precision_moved(OELConfig(dtype="float32", device="cpu"), registry, console)
    assert console.export_text() == ""
