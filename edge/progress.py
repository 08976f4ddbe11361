"""The one progress bar (tqdm) for what a person waits on: `edge models fetch` and `edge eval`.

On a terminal it redraws one line in place. Anywhere else (journald, CI, a pipe)
it prints whole lines, never a ``\\r``: one about every tenth of the way (every
``step`` units when the total is not known), and the final state once.
Imported only by the commands that draw one: tqdm is not loaded by the daemon.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm


class _Lines:
    """A file for tqdm off a terminal: each redraw becomes one line; blank and repeated ones are dropped."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._last = ""

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()
        if line and line != self._last:
            self._last = line
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


class _LineBar(tqdm):
    """Off a terminal, ``close`` prints the final state if the last step's line did not show it."""

    def close(self) -> None:
        if not self.disable and self.n != self.last_print_n:
            self.refresh()
        super().close()


def progress_bar(total: int | None, desc: str, *, fmt: str, fmt_unknown: str | None = None, unit: str = "",
                 scale: float = 1.0, step: int = 1, stream: TextIO | None = None, tty: bool | None = None,
                 redraw: float = 0.1) -> tqdm:
    """A bar for ``total`` units (None: not known), drawn with tqdm's ``bar_format`` ``fmt`` (``fmt_unknown``
    without a total); ``scale`` multiplies the counts shown (1e-6: bytes shown as MB). On a terminal it
    redraws at most every ``redraw`` seconds."""
    stream = stream if stream is not None else sys.stderr
    if tty is None:
        tty = bool(getattr(stream, "isatty", lambda: False)())
    known = total is not None and total > 0
    options = dict(total=total if known else None, desc=desc, unit=unit, unit_scale=scale if scale != 1.0 else False,
                   bar_format=fmt if known else (fmt_unknown or fmt), ascii=" #", dynamic_ncols=False)
    if tty:
        return tqdm(file=stream, mininterval=redraw, **options)
    every = max(1, total // 10) if known else max(1, step)
    return _LineBar(file=_Lines(stream), mininterval=0, miniters=every, leave=False, **options)


__all__ = ["progress_bar"]
