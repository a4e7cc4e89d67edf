"""One error type for everything a user can fix: the CLI prints its message as one line."""


class OELError(Exception):
    """A problem with the user's input or environment. The message says what to fix."""


class Interrupted(OELError):
    """The user stopped a long command (Ctrl-C). The message says where, and how to go on."""


class GameNotMade(OELError):
    """This challenge spec and seed give no game (tw-make cannot build the quest, TextArena no board)."""
