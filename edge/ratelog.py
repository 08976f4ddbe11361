"""One rate-limited error line: a problem that repeats is logged once per interval, per key, with how
many times it happened in between (a failing sink or disk must not flood the journal)."""

from __future__ import annotations

import logging
import time


class RateLimitedLog:
    """``log(key, msg, *args)``: logs at ``level`` unless ``key`` was logged less than ``interval`` s ago."""

    def __init__(self, logger: logging.Logger, interval: float, level: int = logging.ERROR) -> None:
        self.logger = logger
        self.interval = interval
        self.level = level
        self._last: dict[str, float] = {}  # key -> monotonic time of its last line
        self._held: dict[str, int] = {}  # key -> lines held back since

    def log(self, key: str, msg: str, *args: object, level: int | None = None) -> bool:
        """True when the line was written (the first, or the first after ``interval``); ``level`` overrides
        the default for this line (a problem's first line an error, its reminders warnings)."""
        now = time.monotonic()
        if now - self._last.get(key, float("-inf")) < self.interval:  # -inf: monotonic time may start near 0
            self._held[key] = self._held.get(key, 0) + 1
            return False
        held = self._held.pop(key, 0)
        if held:
            msg, args = msg + " (%d more since the last report)", (*args, held)
        self.logger.log(self.level if level is None else level, msg, *args)
        self._last[key] = now
        return True

    def forget(self, key: str) -> None:
        """The problem ``key`` is over: its next occurrence is logged at once."""
        self._last.pop(key, None)
        self._held.pop(key, None)


__all__ = ["RateLimitedLog"]
