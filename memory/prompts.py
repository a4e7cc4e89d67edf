"""Reflection prompts. Items must start with MARKER so the parser can find them."""

MARKER = "KNOWLEDGE:"

PREFILL = MARKER + " When you see"
"""How the model's answer starts. Measured on the 8 round-1 episodes of bench/learning.py, 4 samples each at
T=0.7 (docs/RESULTS.md): after a bare marker the 135M model writes about "the game of text world" in
general; after "To win," 13 of 36 lessons passed the grounding check ("To win, you need to understand the
rules of the game"); after "When you see," 19 of 37, as situation-action rules ("When you see a coin, take
it."). "The command" passed 30 of 34, but as empty statements about commands ("The command to go north is
not to go east"), so it was not adopted."""

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
