"""One error type for everything a user can fix: the CLI prints its message as one line."""


class OELError(Exception):
    """A problem with the user's input or environment. The message says what to fix."""


class Interrupted(OELError):
    """The user stopped a long command (Ctrl-C). The message says where, and how to go on."""


class GameNotMade(OELError):
    """This challenge spec and seed give no game (tw-make cannot build the quest, TextArena no board)."""


class one_line_errors:
    """`with one_line_errors(): main()` in a script: an OELError is one line on stderr and exit status 1,
    Ctrl-C exit status 130, never a traceback (the examples and benches use it, as the CLI does)."""

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        import sys

        if kind is not None and issubclass(kind, OELError):
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)
        if kind is KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        return False
