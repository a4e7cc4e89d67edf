"""Reflection prompts. Items must start with MARKER so the parser can find them."""

MARKER = "KNOWLEDGE:"

REFLECTION_SYSTEM = "You study a finished text adventure game and write short, general lessons for future games."

REFLECTION_USER = """Game type: {env}
Objective: {objective}
What happened (command -> result):
{turns}
Outcome: {outcome}. {reason}
{score_hint}
Lessons already known:
{known}

Write 1 or 2 new lessons that would help win OTHER games of this type: general rules or strategies,
not facts about this one map. Write each lesson on its own line, starting with {marker}"""
