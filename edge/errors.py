"""The one exception type a user sees as a one-line message, never as a traceback."""


class EdgeError(Exception):
    """A problem the user can fix. ``str(err)`` is one line: what is wrong and what to do."""
