"""Reflection prompts. Items must start with MARKER so the parser can find them."""

MARKER = "KNOWLEDGE:"

PREFILL = MARKER + " To win,"
"""How the model's answer starts. Read on 8 logged episodes of the 135M model: after a bare marker it writes
about "the game of text world" in general; after "To win," it names the goal and the commands that reach
it ("To win, you need to find a way to bring the broom to the floor of the basement")."""

REFLECTION_SYSTEM = "You study a finished text adventure game and write short, general lessons for future games."

# No "lessons already known" section: shown the 2 stored lessons, the 135M model copied one verbatim in
# 8 of 8 reflections (measured on the 8 round-1 episodes of bench/learning.py); without them, 7 of 8 wrote
# a new lesson. Repeats are handled by the memory instead: a near-duplicate merges (support + 1).
REFLECTION_USER = """Game type: {env}
Objective: {objective}
What happened (command -> result):
{turns}
Outcome: {outcome}. {reason}
{score_hint}

Write 1 or 2 new lessons that would help win OTHER games of this type: general rules or strategies,
not facts about this one map. Write each lesson on its own line, starting with {marker}"""
