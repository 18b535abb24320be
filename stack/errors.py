"""The one error type the CLI turns into a single actionable line and a non-zero exit."""


class StackError(Exception):
    """What is wrong, and the exact command or setting that fixes it."""
