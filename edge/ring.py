"""FrameRing: the last few seconds of frames, bounded, shared by capture and inference.

``put`` never blocks: when full it drops the oldest frame and counts it. The
inference thread reads the frames newer than the last one it saw; the clip sink
reads the last N seconds for pre-event footage. A non-realtime source (a file
with ``--fast``) may wait for the reader to catch up instead of dropping, with
:meth:`wait_for_room`, so every frame of the file is offered to the model.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable

from edge.capture.base import Frame


class FrameRing:
    def __init__(self, capacity: int) -> None:
        if capacity < 2:
            raise ValueError("ring capacity must be >= 2")
        self.capacity = capacity
        self._frames: deque[Frame] = deque(maxlen=capacity)
        self._cond = threading.Condition()
        self.dropped = 0  # frames pushed out before the reader saw them
        self.pushed = 0
        self._read_seq = -1  # newest seq the reader has taken
        self.closed = False  # the source ended (file without loop) or the capture stopped

    def __len__(self) -> int:
        with self._cond:
            return len(self._frames)

    def put(self, frame: Frame) -> None:
        with self._cond:
            if len(self._frames) == self.capacity:
                oldest = self._frames[0]
                if oldest.seq > self._read_seq:
                    self.dropped += 1
            self._frames.append(frame)
            self.pushed += 1
            self._cond.notify_all()

    def unread(self) -> int:
        with self._cond:
            return sum(1 for f in self._frames if f.seq > self._read_seq)

    def wait_for_room(self, max_unread: int, stopped: Callable[[], bool], timeout: float = 0.5) -> None:
        """Block while more than ``max_unread`` frames wait to be read (backpressure for --fast files)."""
        with self._cond:
            while not stopped() and sum(1 for f in self._frames if f.seq > self._read_seq) >= max_unread:
                self._cond.wait(timeout)

    def newer(self, seq: int, timeout: float) -> list[Frame]:
        """Frames with a sequence number above ``seq``, oldest first; waits up to ``timeout`` for one."""
        with self._cond:
            if not self._has_newer(seq) and not self.closed:
                self._cond.wait_for(lambda: self._has_newer(seq) or self.closed, timeout)
            out = [f for f in self._frames if f.seq > seq]
            if out:
                self._read_seq = max(self._read_seq, out[-1].seq)
                self._cond.notify_all()
            return out

    def since(self, seq: int) -> list[Frame]:
        """Frames with a sequence number above ``seq``, oldest first: no waiting, and the
        inference thread's read cursor (what counts as dropped) is left alone. For sinks."""
        with self._cond:
            return [f for f in self._frames if f.seq > seq]

    def _has_newer(self, seq: int) -> bool:
        return bool(self._frames) and self._frames[-1].seq > seq

    def last_seconds(self, seconds: float, until: float | None = None) -> list[Frame]:
        """The frames of the last ``seconds`` before ``until`` (default: the newest frame), oldest first."""
        with self._cond:
            if not self._frames:
                return []
            end = self._frames[-1].t if until is None else until
            return [f for f in self._frames if end - seconds <= f.t <= end]

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self.closed = False

    def clear(self) -> None:
        with self._cond:
            self._frames.clear()
