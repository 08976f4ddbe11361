"""The capture thread: read a FrameSource into the FrameRing; notice a stall or a freeze; reopen with backoff.

    source.read() --> frozen? --> numbered, stamped --> FrameRing.put
          |  SourceError (vanished, frozen): close, wait (backoff doubles up to reopen_max_seconds), open again
          |  EdgeError (cannot come back, e.g. the file was deleted): stop, the daemon exits 1
          '  None (the end of a file): close the ring, the daemon finishes

One :class:`CaptureSupervisor` lives as long as the daemon; a reload that
changes the source stops it and starts it again on the new source. It numbers
frames in one place: a source's own sequence numbers are kept, shifted only
when they would go back (a reopened camera, a new source), so the ring's
numbers only grow and a source's gaps stay visible.

A frozen camera (the same pixels for ``stall_seconds``) counts only for a
source that declares ``can_freeze`` (a camera sensor's noise never repeats a
frame bit for bit; a file or an RTSP encoder may, on a still scene).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edge.capture.base import FrameSource, SourceError
from edge.errors import EdgeError

if TYPE_CHECKING:
    from edge.config import SourceConfig
    from edge.ring import FrameRing

logger = logging.getLogger(__name__)

# A thread whose heartbeat is older than this (or 5 model frames) is stuck: the daemon stops the watchdog pings.
HEALTH_LIMIT_SECONDS = 3.0


def health_limit(model_fps: float) -> float:
    """Seconds without a capture or inference heartbeat after which the daemon counts as stuck."""
    return max(HEALTH_LIMIT_SECONDS, 5.0 / model_fps)


def read_timeout(fps: float) -> float:
    """How long one camera read may wait for a frame: a few frame periods, and always under the
    health limit, so a camera that stops answering reads as a vanished camera, not a stuck daemon."""
    return min(max(2.0, 4.0 / fps), 0.9 * HEALTH_LIMIT_SECONDS)


@dataclass
class CaptureStats:
    """What the capture thread counts (the daemon's status.json shows these)."""

    frames_in: int = 0
    reopens: int = 0
    last_frame_mono: float = 0.0
    capture_beat: float = field(default_factory=time.monotonic)
    source_state: str = "starting"  # starting | ok | reconnecting | failed
    last_error: str = ""
    frame_hw: tuple[int, int] | None = None  # (h, w) of the newest frame
    in_times: deque = field(default_factory=lambda: deque(maxlen=64))


class CaptureSupervisor:
    """Runs the capture thread for one source at a time. ``stats`` may be shared with the daemon's own."""

    def __init__(self, ring: FrameRing, stats: CaptureStats, stopped: threading.Event) -> None:
        self.ring = ring
        self.stats = stats
        self.stopped = stopped  # the daemon's stop event: ends the thread as well as stop()
        self.failed = False  # the source failed for good (EdgeError): the daemon exits 1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_seq = 0
        self._shift = 0

    def open(self, source: FrameSource) -> None:
        """Open ``source`` now. One that is not there yet (SourceError) is left to the thread to retry;
        one that cannot be opened at all (EdgeError: a missing file) raises."""
        try:
            source.open()
            if self.stats.source_state != "starting":  # a reopen or a new source; "ok" at start waits for a frame
                self.stats.source_state = "ok"
        except SourceError as err:  # a camera that is not there yet: keep trying in the capture thread
            logger.warning("source %s not available yet (%s): retrying", source.name, err)
            self.stats.source_state = "reconnecting"

    def start(self, source: FrameSource, cfg: SourceConfig) -> None:
        """Start the thread on ``source`` (opened by :meth:`open`, or reconnecting)."""
        self._stop.clear()
        self.failed = False
        self._thread = threading.Thread(target=self._run, args=(source, cfg), name="capture", daemon=True)
        self._thread.start()

    def stop(self, source: FrameSource | None, timeout: float = 2.0) -> None:
        """Stop the thread (up to ``timeout``) and close ``source``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if source is not None:
            try:
                source.close()
            except Exception as err:  # closing a vanished camera may fail; nothing to save there
                logger.debug("closing source: %s", err)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _stopping(self) -> bool:
        return self._stop.is_set() or self.stopped.is_set()

    def _number(self, seq: int) -> int:
        """The ring's number for a frame the source numbered ``seq``: the source's own, shifted if it went back."""
        if seq + self._shift <= self._last_seq:
            self._shift = self._last_seq + 1 - seq
        self._last_seq = seq + self._shift
        return self._last_seq

    def _run(self, source: FrameSource, cfg: SourceConfig) -> None:
        stats, ring = self.stats, self.ring
        backoff = cfg.reopen_min_seconds
        fast = not source.realtime
        can_freeze = source.realtime and source.can_freeze
        last_sig: bytes | None = None
        same_since = 0.0
        need_open = stats.source_state == "reconnecting"
        while not self._stopping():
            stats.capture_beat = time.monotonic()
            try:
                if need_open:
                    source.open()
                    need_open = False
                    backoff = cfg.reopen_min_seconds
                    stats.reopens += 1
                    logger.info("source %s reopened", source.name)
                if fast:
                    ring.wait_for_room(max(2, ring.capacity // 2), self._stopping)
                frame = source.read()
                if frame is None:
                    logger.info("source %s ended", source.name)
                    ring.close()
                    return
                now = time.monotonic()
                if can_freeze:  # frozen camera: identical frames for stall_seconds
                    sig = frame.pixels[::16, ::16].tobytes()
                    if sig == last_sig:
                        if now - same_since > cfg.stall_seconds:
                            raise SourceError(f"{source.name} delivers the same frame for {cfg.stall_seconds:.0f} s (frozen)")
                    else:
                        last_sig, same_since = sig, now
                frame.seq = self._number(frame.seq)
                frame.mono = now
                stats.frame_hw = frame.pixels.shape[:2]
                ring.put(frame)
                stats.frames_in += 1
                stats.last_frame_mono = now
                stats.in_times.append(now)
                if stats.source_state != "ok":
                    stats.source_state = "ok"
            except SourceError as err:
                stats.source_state = "reconnecting"
                stats.last_error = str(err)
                logger.warning("%s: reopening in %.0f s", err, backoff)
                try:
                    source.close()
                except Exception:  # the device may already be gone
                    pass
                need_open = True
                last_sig = None
                deadline = time.monotonic() + backoff
                while not self._stopping() and time.monotonic() < deadline:
                    stats.capture_beat = time.monotonic()
                    self._stop.wait(min(0.5, max(0.0, deadline - time.monotonic())))
                backoff = min(backoff * 2, cfg.reopen_max_seconds)
            except EdgeError as err:  # e.g. the file was deleted: cannot recover by waiting
                stats.source_state = "failed"
                stats.last_error = str(err)
                logger.error("%s", err)
                self.failed = True
                ring.close()
                return


__all__ = ["CaptureStats", "CaptureSupervisor", "HEALTH_LIMIT_SECONDS", "health_limit", "read_timeout"]
