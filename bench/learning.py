"""Learning benchmark: does experience become skill? Reproduces the paper's analyses at a size a CPU can run.

    .venv/bin/python -m bench.learning            # TextWorld, FrozenLake, Sokoban, 3 rounds, baselines, OOD
    .venv/bin/python -m bench.learning --quick    # 2 games, 1 round: checks the whole pipeline
    .venv/bin/python -m bench.learning --skip textworld ood baselines --concurrency 16 \
        --out bench/results/learning-boards.json --docs docs/BOARDS.md        # the board arms alone (a GPU)

Every arm is an ordinary `oel loop` run directory under --runs-dir, with `eval_in_context` on, so each
round records both the policy without memory and the round's teacher (the same policy with the experience
that `teacher_context` names in its prompt). A killed bench resumes where it stopped: the loop resumes
from its artifacts, and finished evaluations are saved. Each round plays fresh train games; the gate
decides on validation games, and every figure here is on test games, on which nothing is decided.

Arms (all on fixed seeds; train, validation and test games never share a seed):
- `textworld`: the method (the default settings: the teacher sees the memory, insights and procedures) on
  TextWorld coin collector + treasure hunter, rounds 0..R;
- `frozenlake`: the method on TextArena FrozenLake 4x4 with 3 holes, reported on 48 distinct test boards;
- `sokoban`: the method on TextArena Sokoban (6x6, one box, 30 steps), reported on 48 distinct test boards;
- baselines on TextWorld, for --baseline-rounds rounds: insights alone (the paper's teacher), raw
  trajectories alone (both in context = the teacher, and consolidated), off-policy SFT on teacher samples,
  and knowledge written by a different model (`--knowledge-model`, only if one is given: none ships with
  the project);
- `ood`: the method trained on coin collector only; its round-0 and final policies are then evaluated on
  treasure hunter, a challenge type it never saw (--ood-games each);
- `heldout_recheck`: the `textworld` arm's round-0 and final policies on --recheck-games test games (the
  loop's own test games first, then new test seeds): at the loop's n=16 a 19-point gain has a p-value near
  0.25, so the gain and the cost targets are also read here, on more games.

Success intervals are Wilson 95% intervals (exact enough at small n, never outside [0, 1]). The gain from
round 0 to the last round also gets an exact McNemar p-value: both policies play the same held-out games
with the same sampling seeds, so the games one wins and the other loses are the evidence. Writes
--out (JSON), a PNG beside it, and the marked section of --docs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from rich.console import Console

from bench.arms import FROZENLAKE, OOD, OOD_TRAIN, SOKOBAN, SOKOBAN_STEPS, TEXTWORLD, ood_eval, recheck_eval, run_arm
from bench.common import machine, pct, settings, write_docs
from oel.stats import paired_p
from oel.config import DEFAULT_MODEL, OELConfig
from oel.errors import OELError, one_line_errors

SECTION = ("<!-- bench/learning.py: start -->", "<!-- bench/learning.py: end -->")


def targets(main: list[dict] | None, ood: dict | None, action_mode: str, recheck: dict | None,
            lake: list[dict] | None = None, sokoban: list[dict] | None = None) -> dict:
    """The targets, each with the measured value and whether it was met. From the rounds table (the loop's
    test games; issue 6's thresholds), and from the recheck on more test games (issue 13's: the final policy
    at 75% or more, 30 points over round 0, episodes at most 0.6 of round 0's cost). Without the TextWorld
    arm (`--skip textworld`, `main` None) only the other arms' targets are read."""
    ood_target = ({"value": ood["drop_points"], "target": "<= 2", "met": ood["drop_points"] <= 2} if ood
                  else {"value": "not measured (--skip ood)", "target": "<= 2", "met": False})
    boards = {**(board_targets("frozenlake", lake, threshold=True) if lake else {}),
              **(board_targets("sokoban", sokoban, threshold=False) if sokoban else {})}
    if not main:
        return {"ood_drop_points": ood_target, **boards}
    first, last = main[0], main[-1]
    gain = round(100 * (last["success_no_memory"] - first["success_no_memory"]), 1)
    p = paired_p(first.get("wins"), last.get("wins"))
    teacher1 = main[1]["success_in_context"] if len(main) > 1 else None
    cost_key = "tokens_per_episode" if action_mode == "generate" else "steps"
    ratio = round(last[cost_key] / first[cost_key], 3) if first[cost_key] else None
    before, after = recheck["round0"][cost_key], recheck["final"][cost_key]
    recheck_ratio = round(after / before, 3) if before else None
    final = round(recheck["final"]["success"], 4)
    return {
        "gain_points": {"value": gain, "target": ">= 15", "met": gain >= 15, "paired_p": p},
        "final_vs_round1_teacher": {"value": [last["success_no_memory"], teacher1], "target": "final >= teacher",
                                    "met": teacher1 is not None and last["success_no_memory"] >= teacher1},
        f"{cost_key}_ratio": {"value": ratio, "target": "<= 0.7", "met": ratio is not None and ratio <= 0.7},
        "ood_drop_points": ood_target,
        "final_success_recheck": {"value": final, "target": ">= 0.75", "met": final >= 0.75},
        "gain_points_recheck": {"value": recheck["change_points"], "target": ">= 30",
                                "met": recheck["change_points"] >= 30, "paired_p": recheck["paired_p"]},
        f"{cost_key}_ratio_recheck": {"value": recheck_ratio, "target": "<= 0.6",
                                      "met": recheck_ratio is not None and recheck_ratio <= 0.6},
        **boards,
        **(generate_targets(recheck) if action_mode == "generate" else {}),
    }


def generate_targets(recheck: dict) -> dict:
    """Issue 19's, on the recheck's test games: invalid responses and generated tokens per episode fall to
    half and 0.7 of round 0's, and success without memory rises 10 points."""
    before, after = recheck["round0"], recheck["final"]
    invalid = (round(after["invalid_per_episode"] / before["invalid_per_episode"], 3)
               if before.get("invalid_per_episode") and after.get("invalid_per_episode") is not None else None)
    tokens = round(after["tokens_per_episode"] / before["tokens_per_episode"], 3) if before["tokens_per_episode"] else None
    return {"generate_invalid_ratio": {"value": invalid, "target": "<= 0.5", "met": invalid is not None and invalid <= 0.5},
            "generate_gain_points": {"value": recheck["change_points"], "target": ">= 10",
                                     "met": recheck["change_points"] >= 10, "paired_p": recheck["paired_p"]},
            "generate_tokens_ratio": {"value": tokens, "target": "<= 0.7", "met": tokens is not None and tokens <= 0.7}}


def board_targets(arm: str, rows: list[dict], threshold: bool) -> dict:
    """Issue 14's, on an arm's distinct test boards: the base policy wins some; three rounds gain 15 points
    (FrozenLake). For Sokoban the issue asks for the same figures with no threshold: `met` is then None."""
    first, last = rows[0], rows[-1]
    gain = round(100 * (last["success_no_memory"] - first["success_no_memory"]), 1)
    return {f"{arm}_base_success": {"value": first["success_no_memory"], "target": "> 0" if threshold else "reported",
                                    "met": first["success_no_memory"] > 0 if threshold else None},
            f"{arm}_gain_points": {"value": gain, "target": ">= 15" if threshold else "reported",
                                   "met": gain >= 15 if threshold else None,
                                   "paired_p": paired_p(first.get("wins"), last.get("wins"))}}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [(name, result["arms"][name]["rounds"]) for name in ("textworld", "frozenlake", "sokoban") if name in result["arms"]]
    fig, axes = plt.subplots(1, len(arms) + 1, figsize=(4.6 * (len(arms) + 1), 3.8))
    for ax, (name, rows) in zip(axes, arms):
        rounds = [r["round"] for r in rows]
        for key, ci, label, style in (("success_no_memory", "ci95", "no memory", "-o"),
                                      ("success_in_context", "ci95_in_context", "teacher (experience in prompt)", "--s")):
            pts = [r for r in rows if r[key] is not None]
            if pts:
                y = [100 * r[key] for r in pts]
                err = [[100 * (r[key] - r[ci][0]) for r in pts], [100 * (r[ci][1] - r[key]) for r in pts]]
                ax.errorbar([r["round"] for r in pts], y, yerr=err, fmt=style, capsize=4, label=label)
        ax.set(title=f"{name}: held-out success (n={rows[0]['n_games']})", xlabel="round", ylabel="% won",
               ylim=(-5, 105), xticks=rounds)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[-1]
    for name, rows in arms:
        ax.plot([r["round"] for r in rows], [r["steps"] for r in rows], "-o", label=name)
    # From 0, so small changes are not drawn as dramatic ones.
    ax.set(title="Steps per episode (no memory)", xlabel="round", ylim=(0, None), xticks=arms[0][1] and
           [r["round"] for r in arms[0][1]])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ood_lines(ood: dict) -> list[str]:
    change = (f"a drop of {ood['drop_points']} points" if ood["drop_points"] > 0
              else f"no drop ({-ood['drop_points']:+} points)")
    return ["### Out of distribution", "",
            f"Trained on {', '.join(ood['trained_on'])}; evaluated on {', '.join(ood['challenges'])} "
            f"(n={ood['round0']['n_games']}): base model {pct(ood['round0']['success'], ood['round0']['ci95'])}, "
            f"final policy ({ood['final_policy'] or 'base model: nothing promoted'}) "
            f"{pct(ood['final']['success'], ood['final']['ci95'])}: {change} "
            f"(exact McNemar p = {ood['paired_p']}).", ""]


PHASES = {"eval_s": "round 0's evaluations", "play_s": "play and reflection", "utility_s": "utility",
          "teacher_eval_s": "the teacher's evaluation", "consolidate_s": "consolidation and the gate's evaluations"}


def time_split(rounds: list[dict]) -> str:
    """Where an arm's loop spent its time, from the rounds' timings (rows written before they were recorded
    have none: then nothing is said)."""
    spent: dict[str, float] = {}
    for r in rounds:
        for phase, seconds in (r.get("timings") or {}).items():
            spent[phase] = spent.get(phase, 0.0) + seconds
    if not spent:
        return ""
    return ": " + ", ".join(f"{PHASES.get(phase, phase)} {seconds / 60:.1f} min" for phase, seconds in spent.items())


def recheck_lines(recheck: dict, result: dict, generate: bool) -> list[str]:
    """The recheck paragraph: round 0 and the final TextWorld policy on more test games."""
    return ["### Test recheck (textworld)", "",
            f"Round 0 and the final policy ({recheck['final_policy'] or 'nothing promoted'}) on "
            f"{recheck['round0']['n_games']} test games (the loop's {result['arms']['textworld']['rounds'][0]['n_games']} "
            f"first, then new test seeds): {pct(recheck['round0']['success'], recheck['round0']['ci95'])} -> "
            f"{pct(recheck['final']['success'], recheck['final']['ci95'])}, {recheck['change_points']:+} points "
            f"(exact McNemar p = {recheck['paired_p']}); steps per episode {recheck['round0']['steps']:.1f} -> "
            f"{recheck['final']['steps']:.1f}; generated tokens per episode {recheck['round0']['tokens_per_episode']:.1f} -> "
            f"{recheck['final']['tokens_per_episode']:.1f}"
            + (f"; invalid responses per episode {recheck['round0']['invalid_per_episode']:.1f} -> "
               f"{recheck['final']['invalid_per_episode']:.1f}" if generate and "invalid_per_episode" in recheck["final"]
               and "invalid_per_episode" in recheck["round0"] else "") + ".", ""]


def markdown(result: dict, png: Path, docs: Path) -> str:
    lines = [SECTION[0], "", "## Learning benchmark (`bench/learning.py`)", "",
             f"Command: `{result['command']}`  ",
             f"Measured {result['measured_at']} on {result['machine']}; {result['wall_s'] / 60:.0f} min of compute in all "
             "(each arm's time summed over the bench invocations that built it).",
             "Success is on test games (seeds never trained or gated on; the gate reads separate validation games), "
             "with Wilson 95% intervals in brackets. "
             f"The teacher is the same policy with `teacher_context = {result['config']['textworld']['teacher_context']}` "
             "in its prompt (the baselines change it).", ""]
    generate = result["config"]["textworld"]["action_mode"] == "generate"  # then invalid responses count
    for name, arm in result["arms"].items():
        lines += [f"### {name}", "", "| round | policy | success, no memory | teacher (experience in prompt) | steps/ep |"
                  f" tokens/ep |{' invalid/ep |' * generate} memory active / consolidated / quarantined | gate |",
                  "|---|---|---|---|---|---|" + "---|" * generate + "---|---|"]
        for r in arm["rounds"]:
            invalid = r.get("invalid_per_episode")  # rows made before it was kept have none
            invalid_cell = (f"{invalid:.1f} | " if invalid is not None else "- | ") if generate else ""
            lines.append(f"| {r['round']} | {r['policy']} | {pct(r['success_no_memory'], r['ci95'])} | "
                         f"{pct(r['success_in_context'], r['ci95_in_context'])} | {r['steps']:.1f} | "
                         f"{r['tokens_per_episode']:.1f} | {invalid_cell}{r['memory_active']} / {r['memory_consolidated']} / "
                         f"{r.get('memory_quarantined', 0)} | {r['gate']} |")
        made = [f"{r['candidate']['version']} {pct(r['candidate'].get('validation_success', r['candidate'].get('success_no_memory')))} "
                f"({r['candidate']['status']})" for r in arm["rounds"] if r.get("candidate")]
        lines += ["", f"New checkpoints, validation success without memory (what the gate read): "
                      f"{', '.join(made) or 'none'}.  ",
                  f"Run directory `{arm['run_dir']}`, {arm['wall_s'] / 60:.0f} min{time_split(arm['rounds'])}.", ""]
    ood = result["ood"]
    if ood is None:
        lines += ["### Out of distribution", "", "Not run in this invocation (`--skip ood`).", ""]
    else:
        lines += ood_lines(ood)
    recheck = result["heldout_recheck"]
    if recheck is None:
        lines += ["### Test recheck (textworld)", "", "Not run in this invocation (`--skip textworld`).", ""]
    else:
        lines += recheck_lines(recheck, result, generate)
    lines += ["### Baselines", "", "| baseline | round | success, no memory | in context | gate |", "|---|---|---|---|---|"]
    for name, base in result["baselines"].items():
        if "rounds" not in base:
            lines.append(f"| {name} | - | {base['reason']} | | |")
            continue
        for r in base["rounds"][1:]:
            lines.append(f"| {name} | {r['round']} | {pct(r['success_no_memory'], r['ci95'])} | "
                         f"{pct(r['success_in_context'], r['ci95_in_context'])} | {r['gate']} |")
    lines += ["", "### Targets", "", "| target | measured | wanted | met |", "|---|---|---|---|"]
    for name, t in result["targets"].items():
        met = "-" if isinstance(t["value"], str) or t["met"] is None else "yes" if t["met"] else "no"
        lines.append(f"| {name} | {t['value']} | {t['target']} | {met} |")
    if "gain_points" in result["targets"]:
        p = result["targets"]["gain_points"]["paired_p"]
        lines += ["", "Round 0 against the last round, game by game (exact McNemar test): "
                  + (f"p = {p}." if p is not None else "not recorded (a run made before per-game outcomes were kept).")]
    lines += ["", f"![learning curves]({os.path.relpath(png, docs.parent)})", "", SECTION[1]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 games, 1 round, 4 steps: a pipeline check")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-rounds", type=int, default=1)
    parser.add_argument("--train-games", type=int, default=8)
    parser.add_argument("--validation-games", type=int, default=16, help="games the gate decides on")
    parser.add_argument("--test-games", type=int, default=16, help="games each round is reported on")
    parser.add_argument("--ood-games", type=int, default=96,
                        help="OOD games per policy (at 16, one run read a 19-point drop that 48 did not confirm; "
                             "at 48 a 2-point target is one game)")
    parser.add_argument("--recheck-games", type=int, default=48,
                        help="test games on which round 0 and the final TextWorld policy are compared again")
    parser.add_argument("--frozenlake-test-games", type=int, default=48,
                        help="distinct test boards of the FrozenLake arm (issue 14's target is read on 48)")
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=1, help="games at once (use 16+ on a GPU)")
    parser.add_argument("--sokoban-test-games", type=int, default=48, help="distinct test boards of the Sokoban arm")
    parser.add_argument("--sokoban-max-steps", type=int, default=SOKOBAN_STEPS, help="step limit of the Sokoban arm")
    parser.add_argument("--skip", nargs="*", default=[], choices=["textworld", "ood", "baselines", "frozenlake", "sokoban"],
                        help="leave these parts out (their targets then read 'not measured'); without the TextWorld "
                             "arm there is no recheck, e.g. the board arms alone on a GPU")
    parser.add_argument("--knowledge-model", help="another model that writes the knowledge (baseline)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help="any other OELConfig setting for every arm, e.g. --set learning_rate=3e-4")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/bench-learning"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/learning.json"))
    parser.add_argument("--docs", type=Path, default=Path("docs/RESULTS.md"))
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = args.baseline_rounds = 1
        args.train_games = args.validation_games = args.test_games = args.ood_games = 2
        args.recheck_games = args.frozenlake_test_games = args.sokoban_test_games = 3
        args.max_steps = args.sokoban_max_steps = 4
    console = Console()
    started = time.time()
    extra = settings(parser, args.set)
    base = dict(model=args.model, train_games=args.train_games, validation_games=args.validation_games,
                test_games=args.test_games, seed=args.seed,
                max_steps=args.max_steps, concurrency=args.concurrency, eval_in_context=True, **extra)
    def config(**settings) -> OELConfig:
        # from_dict: an unknown or malformed setting is a one-line error, before any game is played.
        return OELConfig.from_dict({**base, **settings}, source="bench settings")

    tw = config(challenges=TEXTWORLD, rounds=args.rounds)

    if {"textworld", "frozenlake", "sokoban"} <= set(args.skip):
        raise OELError("--skip leaves no arm to run; keep at least one of textworld, frozenlake and sokoban")
    if "textworld" in args.skip and (args.out == parser.get_default("out") or args.docs == parser.get_default("docs")):
        # The full bench's results (its TextWorld arm, recheck and targets) would be replaced by the boards'.
        raise OELError("--skip textworld writes the board arms alone: give --out and --docs files of their own, "
                       f"so that {parser.get_default('out')} and {parser.get_default('docs')} keep the full bench")
    arms = {} if "textworld" in args.skip else {"textworld": run_arm("textworld", tw, args.runs_dir, console)}
    if "frozenlake" not in args.skip:
        arms["frozenlake"] = run_arm("frozenlake", config(challenges=FROZENLAKE, rounds=args.rounds,
                                                          test_games=args.frozenlake_test_games), args.runs_dir, console)
    if "sokoban" not in args.skip:
        arms["sokoban"] = run_arm("sokoban", config(challenges=SOKOBAN, rounds=args.rounds, test_games=args.sokoban_test_games,
                                                    max_steps=args.sokoban_max_steps), args.runs_dir, console)
    recheck = recheck_eval(tw, args.runs_dir / "textworld", args.recheck_games, console) if "textworld" in arms else None
    ood = None
    if "ood" not in args.skip:
        ood_arm = config(challenges=OOD_TRAIN, rounds=args.rounds, eval_in_context=False)
        arms["ood-train"] = run_arm("ood-train", ood_arm, args.runs_dir, console)
        ood = ood_eval(ood_arm, args.runs_dir / "ood-train", args.ood_games, console)
    baselines = {}
    for name, change in (("knowledge_only", {"teacher_context": "knowledge"}),  # insights alone
                         ("raw_trajectories", {"teacher_context": "trajectories"}),
                         ("sft_on_teacher_samples", {"distill_method": "sft"})):
        if "baselines" in args.skip:
            baselines[name] = {"reason": "not run in this invocation (--skip baselines)"}
            continue
        cfg = config(challenges=TEXTWORLD, rounds=args.baseline_rounds, **change)
        baselines[name] = run_arm(f"baseline-{name}", cfg, args.runs_dir, console)
    if args.knowledge_model and "baselines" not in args.skip:
        cfg = config(challenges=TEXTWORLD, rounds=args.baseline_rounds, reflection_model=args.knowledge_model)
        baselines["other_model_knowledge"] = run_arm("baseline-other_model_knowledge", cfg, args.runs_dir, console)
    else:
        baselines["other_model_knowledge"] = {"reason": "not run: no second model is installed here "
                                                        "(pass --knowledge-model DIR)"}

    result = {
        "teacher_context": tw.teacher_context,
        "rounds": arms["textworld"]["rounds"] if "textworld" in arms else [], "arms": arms, "baselines": baselines,
        "ood": ood, "heldout_recheck": recheck,
        "targets": targets(arms["textworld"]["rounds"] if "textworld" in arms else None, ood, tw.action_mode, recheck,
                           arms["frozenlake"]["rounds"] if "frozenlake" in arms else None,
                           arms["sokoban"]["rounds"] if "sokoban" in arms else None),
        "config": {"textworld": tw.to_dict(), "frozenlake_challenges": FROZENLAKE, "sokoban_challenges": SOKOBAN,
                   "ood_train": OOD_TRAIN,
                   "ood_challenges": OOD,
                   "ood_games": args.ood_games, "recheck_games": args.recheck_games, "baseline_rounds": args.baseline_rounds},
        "command": "python -m bench.learning " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "measured_at": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "runtime": _runtime(tw),
        "wall_s": round(sum(a["wall_s"] for a in [*arms.values(), *baselines.values()] if "wall_s" in a)
                        + (ood["wall_s"] if ood else 0) + (recheck["wall_s"] if recheck else 0), 1),
        "invocation_wall_s": round(time.time() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    png = args.out.with_suffix(".png")
    plot(result, png)
    write_docs(args.docs, markdown(result, png, args.docs), SECTION)
    console.print(f"wrote {args.out}, {png} and {args.docs}")
    for name, t in result["targets"].items():
        verdict = "reported" if t["met"] is None else "met" if t["met"] else "NOT met"
        console.print(f"  {name}: {t['value']} (target {t['target']}) -> {verdict}")
    return result


def _runtime(cfg: OELConfig) -> dict:
    """The device and dtype the arms' policies ran on (as `Policy.load` resolves the settings)."""
    from agent.device import dtype_name, resolve_device, resolve_dtype

    device = resolve_device(cfg.device)
    return {"device": str(device), "dtype": dtype_name(resolve_dtype(cfg.dtype, device))}


if __name__ == "__main__":
    with one_line_errors():
        main()
