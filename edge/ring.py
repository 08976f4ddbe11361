"""FrameRing: the last few seconds of frames, bounded, shared by capture and inference.

Bounded three ways: by time (``source.ring_seconds`` of frames, by their ``t``),
by a number of frames (a safety net for a source whose clock stands still) and by
a byte budget (``source.ring_mb``), so a big or fast source cannot take the
board's memory whatever its resolution or frame rate. ``put`` never blocks: when either bound is
reached it drops the oldest frames (never the newest) and counts those the reader
had not seen. The
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


def frames_for(seconds: float, fps: float) -> int:
    """The frame-count bound for ``seconds`` of frames at ``fps``: only a safety net under the time bound
    (a source whose clock stands still), so it errs high."""
    return max(8, int(seconds * fps) + 1)


def _check_bounds(capacity: int, max_bytes: int | None, seconds: float | None) -> None:
    if capacity < 2:
        raise ValueError("ring capacity must be >= 2")
    if max_bytes is not None and max_bytes <= 0:
        raise ValueError("ring byte budget must be > 0")
    if seconds is not None and seconds <= 0:
        raise ValueError("ring seconds must be > 0")


class FrameRing:
    def __init__(self, capacity: int, max_bytes: int | None = None, seconds: float | None = None) -> None:
        _check_bounds(capacity, max_bytes, seconds)
        self.capacity = capacity
        self.max_bytes = max_bytes  # None: bounded by frames only
        self.seconds = seconds  # None: not bounded by time
        self._frames: deque[Frame] = deque()
        self._bytes = 0  # pixels held now
        self._frame_bytes = 0  # size of the newest frame
        self._cond = threading.Condition()
        self.dropped = 0  # frames pushed out before the reader saw them
        self.pushed = 0
        self._read_seq = -1  # newest seq the reader has taken
        self.closed = False  # the source ended (file without loop) or the capture stopped

    def __len__(self) -> int:
        with self._cond:
            return len(self._frames)

    @property
    def bytes(self) -> int:
        """Bytes of pixels the ring holds now (the figure ``source.ring_mb`` bounds)."""
        with self._cond:
            return self._bytes

    @property
    def holds(self) -> int:
        """Frames the ring can hold at the newest frame's size: the smaller of the two bounds."""
        with self._cond:
            return self._holds()

    def _holds(self) -> int:
        if self.max_bytes is None or not self._frame_bytes:
            return self.capacity
        return max(1, min(self.capacity, self.max_bytes // self._frame_bytes))

    def fit(self, capacity: int) -> None:
        """Raise the frame-count bound to ``capacity`` (never lower it): the ring is made before its source
        opens, so its first bound is a guess at the source's rate; the capture thread fits it to the real one."""
        with self._cond:
            self.capacity = max(self.capacity, int(capacity))

    def resize(self, capacity: int, max_bytes: int | None, seconds: float | None) -> None:
        """New bounds (a reload that changed source.ring_seconds or ring_mb), in place: the capture thread
        goes on putting, every reader keeps its cursor and ``since``/``last_seconds`` keep working. A smaller
        ring lets go of its oldest frames now, exactly as ``put`` would have with these bounds; the newest
        (a clip in progress reads those) stay."""
        _check_bounds(capacity, max_bytes, seconds)
        with self._cond:
            self.capacity = int(capacity)
            self.max_bytes = max_bytes
            self.seconds = seconds
            if self._frames:
                self._trim(self._frames[-1].t)
            self._cond.notify_all()

    def put(self, frame: Frame) -> None:
        size = frame.pixels.nbytes
        with self._cond:
            self._frames.append(frame)
            self._bytes += size
            self._frame_bytes = size
            self.pushed += 1
            self._trim(frame.t)
            self._cond.notify_all()

    def _trim(self, newest_t: float) -> None:
        """Drop the oldest frames (never the newest) while a bound is passed, counting those not read yet."""
        while len(self._frames) > 1 and (len(self._frames) > self.capacity
                                         or (self.max_bytes is not None and self._bytes > self.max_bytes)
                                         or (self.seconds is not None and newest_t - self._frames[0].t > self.seconds)):
            oldest = self._frames.popleft()
            self._bytes -= oldest.pixels.nbytes
            if oldest.seq > self._read_seq:
                self.dropped += 1

    def stats(self) -> dict[str, float | int | None]:
        """What status.json shows: frames and bytes held, the budget, the seconds they span."""
        with self._cond:
            span = self._frames[-1].t - self._frames[0].t if len(self._frames) > 1 else 0.0
            return {"frames": len(self._frames), "bytes": self._bytes, "max_bytes": self.max_bytes,
                    "seconds": round(span, 2)}

    def unread(self) -> int:
        with self._cond:
            return sum(1 for f in self._frames if f.seq > self._read_seq)

    def wait_for_room(self, max_unread: int, stopped: Callable[[], bool], timeout: float = 0.5) -> None:
        """Block while ``max_unread`` frames (or half what the byte budget holds, or half the seconds the ring
        keeps) wait to be read: backpressure for --fast files, so no frame is pushed out unread."""
        with self._cond:
            while not stopped() and self._unread_full(max_unread):
                self._cond.wait(timeout)

    def _unread_full(self, max_unread: int) -> bool:
        unread = [f for f in self._frames if f.seq > self._read_seq]
        if len(unread) >= min(max_unread, max(1, self._holds() // 2)):
            return True
        return bool(unread) and self.seconds is not None and unread[-1].t - unread[0].t >= self.seconds / 2

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
            self._bytes = 0
