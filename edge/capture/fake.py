"""FakeSource: a FrameSource played from a list or generator, shipped with the code (as gpiozero ships MockFactory).

Use it to run the real daemon (or anything that reads a FrameSource) without a
camera: tests, a dry run of a config, a replay of frames decoded elsewhere.

Each item of ``items`` is one call to :meth:`FakeSource.read`:

- ``(t, pixels)``: a frame at source time ``t``; ``pixels`` is an (H, W, 3) uint8
  RGB array, or an ``(r, g, b)`` colour for a solid ``size`` x ``size`` frame;
- an exception instance: raised from ``read`` (a :class:`SourceError` is a camera
  that vanished, an :class:`~edge.errors.EdgeError` one that cannot come back);
- ``None``: the end of the stream (``read`` returns None, as at the end of a file).

When the items run out, ``at_end="end"`` returns None and ``at_end="block"`` waits
like a camera with nothing to show until :meth:`abort`. A realtime source waits
``interval`` seconds before each frame (the wait ends early on abort).
``opens``/``reads`` count calls; :meth:`wait_opens` and :meth:`wait_reads` wait
for them with a timeout, so a test never sleeps to wait for the capture thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np

from edge.capture.base import Frame, SourceError


def solid_frame(rgb: tuple[int, int, int], height: int = 8, width: int = 8) -> np.ndarray:
    """A contiguous uint8 RGB frame of one colour."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[...] = np.asarray(rgb, np.uint8)
    return frame


class FakeSource:
    """A FrameSource that plays ``items`` (see the module doc). ``open()`` may be made to fail with ``open_errors``."""

    def __init__(self, items: Iterable[Any], *, realtime: bool = False, fps: float = 30.0, size: int = 8,
                 name: str = "fake", interval: float = 0.0, at_end: Literal["end", "block"] = "end",
                 can_freeze: bool | None = None) -> None:
        if at_end not in ("end", "block"):
            raise ValueError(f"at_end must be 'end' or 'block', not {at_end!r}")
        self._items = iter(items)
        self.realtime = realtime
        self.can_freeze = realtime if can_freeze is None else can_freeze  # as a camera, unless told it is a file
        self.fps = fps
        self.size = size
        self.name = name
        self.interval = interval
        self.at_end = at_end
        self.opens = 0
        self.closes = 0
        self.reads = 0
        self.open_errors: list[Exception] = []  # raised by the next open() calls, one each
        self.aborted = threading.Event()
        self._cond = threading.Condition()

    def open(self) -> None:
        with self._cond:
            self.opens += 1
            self._cond.notify_all()
        if self.open_errors:
            raise self.open_errors.pop(0)

    def close(self) -> None:
        self.closes += 1

    def abort(self) -> None:
        """Unblock a read that waits (a test's teardown)."""
        self.aborted.set()

    def wait_opens(self, n: int, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.opens >= n, timeout)

    def wait_reads(self, n: int, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.reads >= n, timeout)

    def read(self) -> Frame | None:
        with self._cond:
            self.reads += 1
            seq = self.reads
            self._cond.notify_all()
        if self.realtime and self.interval and self.aborted.wait(self.interval):
            raise SourceError(f"{self.name} aborted")
        item = next(self._items, StopIteration)
        if item is StopIteration:
            if self.at_end == "block":
                self.aborted.wait(60)
                raise SourceError(f"{self.name} aborted")
            return None
        if item is None:
            return None
        if isinstance(item, BaseException):
            raise item
        t, pixels = item
        if not isinstance(pixels, np.ndarray):
            pixels = solid_frame(pixels, self.size, self.size)
        return Frame(pixels, float(t), seq)


__all__ = ["FakeSource", "solid_frame"]
