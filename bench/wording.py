"""How the acting prompt asks for a command, in generate mode: how often the model's response is one.

    .venv/bin/python -m bench.wording [--games 12] [--samples 4] [--json]

Issue 19's lever "how the acting prompt asks for a command". The embedded model, left to write, mostly
narrates instead of writing a command (docs/RESULTS.md). Each wording changes the acting prompt's words
only: the system prompt (`strict`), the list of valid commands one a line (`list`), or the closing request
(`only`). The situations are real: the first move of each validation game and its third, after two seeded
random moves. Each wording samples `--samples` one-line responses to each situation with the same seeds, as
acting samples them (the acting temperature, the stop at the first line break), and each response is
grounded by acting's rule (`agent.prompts.ground_response`). A row gives the share of responses that ground
to a valid command (Wilson 95% interval; responses to one situation are not independent, so read it as
rough), the generated tokens a response, and the responses gained / lost against `base`, paired response by
response (exact McNemar p). Validation games only. Writes --out (JSON).
"""

from __future__ import annotations

import random

from agent.arena import open_env
from agent.policy import Policy
from agent.prompts import SYSTEM_PROMPT, acting_messages, ground_response, situation_text
from agent.templates import response_stop
from bench.common import pct, report_comparison, validation_comparison, versus, versus_cells
from oel.errors import one_line_errors
from oel.stats import wilson

STRICT = {"system": "You are playing a text adventure game. Reply with one of the valid commands, copied exactly, "
                    "and nothing else."}
LISTED = {"list": True, "ask": "Reply with one of these commands, exactly as written:"}
ONLY = {"ask": "Reply with the command only:"}
WORDINGS = {
    "base": {},  # the product's acting prompt (transcript format)
    "strict": STRICT,
    "list": LISTED,
    "strict+list": {**STRICT, **LISTED},
    "only": ONLY,
    "strict+only": {**STRICT, **ONLY},
}
"""Each wording's changes to the acting prompt: the system prompt, the commands one a line, the closing request."""


def worded(messages: list[dict], admissible: list[str], wording: dict) -> list[dict]:
    """The acting prompt (system and situation messages) in `wording`."""
    system, user = messages
    text = user["content"]
    if wording.get("list"):
        text = text.replace("Valid commands: " + ", ".join(admissible), "Valid commands:\n" + "\n".join(admissible))
    if "ask" in wording:
        text = text.removesuffix("Your command:") + wording["ask"]
    return [{**system, "content": wording.get("system", SYSTEM_PROMPT)}, {**user, "content": text}]


def situations(suite, max_steps: int, seed: int) -> list[tuple[list[dict], list[str]]]:
    """(acting prompt, valid commands) at the first move of each game and at its third (two seeded random
    moves later, if the game lasts)."""
    rng, found = random.Random(seed), []
    for game, family in suite:
        env = open_env(game, family, max_steps)
        first = env.reset()
        history, observation, admissible = [], first.text, first.admissible
        found.append((acting_messages(situation_text(first.objective, history, observation, admissible)), admissible))
        for _ in range(2):
            action = rng.choice(admissible)
            step = env.step(action)
            history.append({"action": action, "feedback": step.text})
            observation, admissible = step.text, step.admissible
            if step.done or not admissible:
                break
        else:
            found.append((acting_messages(situation_text(first.objective, history, observation, admissible)),
                          admissible))
    return found


def options(parser) -> None:
    parser.add_argument("--samples", type=int, default=4, help="responses sampled per situation and wording")


def main(argv: list[str] | None = None) -> dict:
    args, cfg, _, suite = validation_comparison(__doc__.splitlines()[0], "bench/results/wording.json", argv, options)
    policy = Policy.load(cfg.model, device=cfg.device, dtype=cfg.dtype)
    found = situations(suite, cfg.max_steps, cfg.seed)
    stop = response_stop(True, False)
    rows = {}
    for name, wording in WORDINGS.items():
        prompts = [policy.render(worded(messages, admissible, wording)) for messages, admissible in found]
        valid, tokens = [], 0
        for sample in range(args.samples):
            outputs = policy.generate(prompts, cfg.max_new_tokens, cfg.temperature, stop=stop, seed=cfg.seed + sample)
            for (text, n), (_, admissible) in zip(outputs, found):
                valid.append(int(ground_response(text, admissible)[1]))
                tokens += n
        rows[name] = {"valid": sum(valid) / len(valid), "ci95": wilson(sum(valid), len(valid)),
                      "tokens_per_response": round(tokens / len(valid), 1), "responses": len(valid), "valid_flags": valid}
    for row in rows.values():
        row["vs_base"] = versus(rows["base"], row, "valid_flags")
    result = {"games": args.games, "situations": len(found), "samples": args.samples, "split": "validation",
              "wordings": WORDINGS, "rows": rows}
    return report_comparison(
        args, result, ["wording", "valid responses", "tokens/response", "vs base: gained / lost", "p"],
        f"Acting prompt wordings, {len(found)} situations of {args.games} validation games, {args.samples} samples each",
        lambda row: [pct(row["valid"], row["ci95"]), f"{row['tokens_per_response']:.1f}", *versus_cells(row["vs_base"])])


if __name__ == "__main__":
    with one_line_errors():
        main()
