"""The capture thread: read a FrameSource into the FrameRing; notice a stall or a freeze; reopen with backoff.

    source.read() --> frozen? --> numbered, timed --> FrameRing.put
          |  SourceError (vanished, frozen, not there yet): close, wait (backoff doubles up to
          |      reopen_max_seconds), open again: no source kind is ever given up on
          |  EdgeError (cannot come back, e.g. a file that was deleted): stop, the daemon exits 1
          '  None (the end of a file): close the ring, the daemon finishes

    watcher: a read (or open) blocked for stall_seconds --> state "stalled"; the blocked thread is
             left to return on its own and a new one reads a new source from the factory

One :class:`CaptureSupervisor` lives as long as the daemon; a reload that
changes the source stops it and starts it again on the new source.

Numbers and times are given in one place, here. A source's own sequence numbers
are kept, shifted only when they would go back (a reopened camera, a new
source), so the ring's numbers only grow and a source's gaps stay visible.
A frame's ``t`` is the source's own clock as long as that clock goes forward.
A source reopened with its clock restarted (OpenCV stamps a stream from 0 at
each open) is shifted so the timeline goes on from the last frame plus the real
time the source was away (a live source), or one frame later (a file): ``t``
never goes back, so an event's duration is never negative, and an outage still
shows as a gap (which resets the model state).

A frozen camera (the same pixels for ``stall_seconds``) counts only for a
source that declares ``can_freeze`` (a camera sensor's noise never repeats a
frame bit for bit; a file or an RTSP encoder may, on a still scene). A read that
blocks counts for every source: a frozen RTSP server, a hung USB camera. The
watcher marks it ``stalled`` after ``stall_seconds`` and, given a factory,
reads from a fresh source at once; the blocked read is never interrupted (a
decoder closed under its own read may crash), its thread closes that source
when it returns and ends. While it acts, the watcher keeps the capture
heartbeat fresh, so systemd's watchdog (30 s) is left for a daemon that is
really stuck: more than :data:`MAX_ABANDONED` reads blocked at once.

Repeated failures are logged once, then only when the reason changes (a
camera that stays unplugged all night is one line, not one a minute).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from edge.capture.base import FrameSource, SourceError
from edge.errors import EdgeError
from edge.ring import frames_for

if TYPE_CHECKING:
    from edge.config import SourceConfig
    from edge.ring import FrameRing

logger = logging.getLogger(__name__)

# A thread whose heartbeat is older than this (or 5 model frames) is stuck: the daemon stops the watchdog pings.
HEALTH_LIMIT_SECONDS = 3.0
MAX_ABANDONED = 3  # reads left blocked in their threads; beyond this the supervisor stops vouching for capture
WATCH_EVERY = 0.25  # seconds between the watcher's looks at the capture thread


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
    stalls: int = 0  # reads that blocked for stall_seconds (the source was replaced, or waited for)
    last_frame_mono: float = 0.0
    capture_beat: float = field(default_factory=time.monotonic)
    # starting | ok | stalled (no frame for stall_seconds) | reconnecting (failed or absent: reopened with backoff) | failed
    source_state: str = "starting"
    last_error: str = ""
    frame_hw: tuple[int, int] | None = None  # (h, w) of the newest frame
    in_times: deque = field(default_factory=lambda: deque(maxlen=64))


class CaptureSupervisor:
    """Runs the capture thread for one source at a time. ``stats`` may be shared with the daemon's own.

    ``factory`` builds a fresh source (not yet open) for a read that stalled; without one a stall is
    only reported, and the source's own read timeout ends it. ``on_source`` is told of the new one.
    """

    def __init__(self, ring: FrameRing, stats: CaptureStats, stopped: threading.Event,
                 factory: Callable[[], FrameSource] | None = None,
                 on_source: Callable[[FrameSource], None] | None = None) -> None:
        self.ring = ring
        self.stats = stats
        self.stopped = stopped  # the daemon's stop event: ends the thread as well as stop()
        self.factory = factory
        self.on_source = on_source
        self.failed = False  # the source failed for good (EdgeError): the daemon exits 1
        self.source: FrameSource | None = None  # the source the capture thread reads now
        self._cfg: SourceConfig | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watcher: threading.Thread | None = None
        self._lock = threading.Lock()
        self._gen = 0  # the live capture thread's generation; an older thread has been abandoned
        self._busy_since = 0.0  # monotonic start of the read or open the live thread is in, 0 when none
        self._abandoned: list[threading.Thread] = []
        self._last_seq = 0
        self._shift = 0
        self._last_t: float | None = None  # the ring's newest t, and when it arrived
        self._last_mono = 0.0
        self._t_shift = 0.0
        self._rebase = False  # the next frame comes from a (re)opened source: check its clock
        self._problem = ""  # the last failure logged (repeats go to debug)
        self._room_said: tuple[int, int, float] | None = None  # (w, h, fps) the ring's shortfall was logged for

    # ------------------------------------------------------------------ control

    def open(self, source: FrameSource) -> None:
        """Open ``source`` now. One that is not there yet (SourceError) is left to the thread to retry;
        one that cannot be opened at all (EdgeError: a missing file) raises."""
        try:
            source.open()
            if self.stats.source_state != "starting":  # a reopen or a new source; "ok" at start waits for a frame
                self.stats.source_state = "ok"
        except SourceError as err:  # a camera that is not there yet: keep trying in the capture thread
            self._report(str(err), f"source {source.name} not available yet ({err}): retrying")
            self.stats.source_state = "reconnecting"
            self.stats.last_error = str(err)

    def start(self, source: FrameSource, cfg: SourceConfig) -> None:
        """Start the thread on ``source`` (opened by :meth:`open`, or reconnecting), and the watcher."""
        self._stop.clear()
        self.failed = False
        self._cfg = cfg
        self._rebase = True
        self._spawn(source, need_open=self.stats.source_state == "reconnecting")
        if self._watcher is None or not self._watcher.is_alive():
            self._watcher = threading.Thread(target=self._watch, name="capture-watch", daemon=True)
            self._watcher.start()

    def stop(self, source: FrameSource | None = None, timeout: float = 2.0) -> None:
        """Stop the threads (up to ``timeout``) and close the source being read (``source`` by default)."""
        self._stop.set()
        with self._lock:
            self._gen += 1
            thread, current = self._thread, self.source
        for th in (thread, self._watcher):
            if th is not None:
                th.join(timeout)
        for src in {id(s): s for s in (source, current) if s is not None}.values():
            if thread is not None and thread.is_alive() and src is current:
                continue  # still blocked in a read: its thread closes it when the read returns
            try:
                src.close()
            except Exception as err:  # closing a vanished camera may fail; nothing to save there
                logger.debug("closing source: %s", err)

    def refit(self, cfg: SourceConfig) -> None:
        """A reload changed only the ring's keys (source.ring_seconds, ring_mb; the daemon resized the ring):
        the running thread goes on with ``cfg``, the ring's frame count is fitted to the source's real rate
        again and a byte budget still short of ring_seconds is said again, with the new numbers."""
        self._cfg = cfg
        self._room_said = None
        newest = self.ring.last_seconds(0.0)
        if self.source is not None and newest:
            self._check_room(self.source, newest[-1])

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _stopping(self) -> bool:
        return self._stop.is_set() or self.stopped.is_set()

    def _spawn(self, source: FrameSource, need_open: bool) -> None:
        with self._lock:
            self._gen += 1
            self.source = source
            self._busy_since = 0.0
            self._thread = threading.Thread(target=self._run, args=(source, self._gen, need_open),
                                            name="capture", daemon=True)
            self._thread.start()

    def _current(self, gen: int) -> bool:
        return gen == self._gen and not self._stopping()

    def _report(self, problem: str, message: str | None = None) -> None:
        """Log ``message`` (default: ``problem``) at the first ``problem``, and again only when it changes."""
        if problem != self._problem:
            self._problem = problem
            logger.warning("%s", message or problem)
        else:
            logger.debug("%s", message or problem)

    # ------------------------------------------------------------------ numbers and times

    def _number(self, seq: int) -> int:
        """The ring's number for a frame the source numbered ``seq``: the source's own, shifted if it went back."""
        if seq + self._shift <= self._last_seq:
            self._shift = self._last_seq + 1 - seq
        self._last_seq = seq + self._shift
        return self._last_seq

    def _time(self, t: float, now: float, live: bool, fps: float) -> float:
        """The ring's ``t`` for a frame the source stamped ``t``: never back, and gaps kept."""
        if self._rebase and self._last_t is not None and t + self._t_shift < self._last_t:
            # a reopened source whose clock restarted (OpenCV stamps a stream from 0 at each open): a live one
            # goes on by the real time it was away, a file one frame after the last
            away = max(now - self._last_mono, 1e-3) if live else (1.0 / fps if fps else 0.04)
            self._t_shift = self._last_t + away - t
        self._rebase = False
        out = t + self._t_shift
        if self._last_t is not None and out < self._last_t:  # a source whose own clock stepped back
            self._t_shift += self._last_t - out
            out = self._last_t
        self._last_t, self._last_mono = out, now
        return out

    # ------------------------------------------------------------------ the capture thread

    def _run(self, source: FrameSource, gen: int, need_open: bool) -> None:
        try:
            self._capture(source, gen, need_open)
        finally:
            if gen != self._gen and not self._stopping():  # abandoned after a stall: this source is ours to close
                try:
                    source.close()
                except Exception as err:
                    logger.debug("closing a stalled source: %s", err)
                logger.info("a stalled read of %s returned; its source is closed", source.name)

    def _busy(self, gen: int, on: bool) -> None:
        with self._lock:
            if gen == self._gen:
                self._busy_since = time.monotonic() if on else 0.0

    def _capture(self, source: FrameSource, gen: int, need_open: bool) -> None:
        cfg, stats, ring = self._cfg, self.stats, self.ring
        backoff = cfg.reopen_min_seconds
        fast = not source.realtime
        can_freeze = source.realtime and getattr(source, "can_freeze", False)
        live = source.realtime and getattr(source, "kind", None) != "file"
        last_sig: bytes | None = None
        same_since = 0.0
        read_at = 0.0  # when the read in progress began
        sized = False  # the ring's room checked against this source's frames
        while self._current(gen):
            stats.capture_beat = time.monotonic()
            try:
                if need_open:
                    self._busy(gen, True)
                    source.open()
                    self._busy(gen, False)
                    if not self._current(gen):
                        return
                    need_open = False
                    backoff = cfg.reopen_min_seconds
                    self._rebase = True
                    stats.reopens += 1
                    logger.info("source %s reopened", source.name)
                if fast:
                    ring.wait_for_room(max(2, ring.capacity // 2), lambda: not self._current(gen))
                self._busy(gen, True)
                read_at = time.monotonic()
                frame = source.read()
                read_at = 0.0
                self._busy(gen, False)
                if not self._current(gen):
                    return
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
                frame.t = self._time(frame.t, now, live, source.fps)
                frame.mono = now
                stats.frame_hw = frame.pixels.shape[:2]
                ring.put(frame)
                if not sized:
                    sized = True
                    self._check_room(source, frame)
                stats.frames_in += 1
                stats.last_frame_mono = now
                stats.in_times.append(now)
                if stats.source_state != "ok":
                    if self._problem:
                        logger.info("source %s delivers frames again", source.name)
                    stats.source_state = "ok"
                    self._problem = ""
            except SourceError as err:
                self._busy(gen, False)
                if not self._current(gen):
                    return
                blocked, read_at = (time.monotonic() - read_at if read_at else 0.0), 0.0
                if blocked >= 0.8 * cfg.stall_seconds:  # the source's own read timeout (stall_seconds): a stall
                    if stats.source_state != "stalled":
                        stats.stalls += 1
                    stats.source_state = "stalled"
                    err = SourceError(f"{source.name}: no frame for {blocked:.0f} s (stalled)")
                else:
                    stats.source_state = "reconnecting"
                stats.last_error = str(err)
                self._report(str(err), f"{err}: reopening in {backoff:.0f} s (then every {cfg.reopen_max_seconds:.0f} s "
                                       "at most; logged again when the reason changes)")
                try:
                    source.close()
                except Exception:  # the device may already be gone
                    pass
                need_open = True
                last_sig = None
                deadline = time.monotonic() + backoff
                while self._current(gen) and time.monotonic() < deadline:
                    stats.capture_beat = time.monotonic()
                    self._stop.wait(min(0.5, max(0.0, deadline - time.monotonic())))
                backoff = min(backoff * 2, cfg.reopen_max_seconds)
            except EdgeError as err:  # e.g. the file was deleted: cannot recover by waiting
                self._busy(gen, False)
                if not self._current(gen):
                    return
                stats.source_state = "failed"
                stats.last_error = str(err)
                logger.error("%s", err)
                self.failed = True
                ring.close()
                return

    def _check_room(self, source: FrameSource, frame) -> None:
        """At a source's first frame (its real size and rate known): fit the ring's frame count to ring_seconds
        of it, and say once when the byte budget keeps less than that (clips get less before)."""
        cfg = self._cfg
        fps = source.fps or cfg.fps
        want = cfg.ring_seconds * fps
        self.ring.fit(frames_for(cfg.ring_seconds, fps))  # the ring was made before the source said its rate
        holds = self.ring.holds
        h, w = frame.pixels.shape[:2]
        if holds + 1 < want and self._room_said != (w, h, fps):  # a replacement source of the same size: said
            self._room_said = (w, h, fps)
            logger.warning("the frame ring holds %d frames of %dx%d, %.1f s at %.0f fps, not source.ring_seconds "
                           "(%.0f s): raise source.ring_mb (%.0f MB) or lower source.width/height", holds, w, h,
                           holds / fps, fps, cfg.ring_seconds, cfg.ring_mb)

    # ------------------------------------------------------------------ the watcher

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_EVERY) and not self.stopped.is_set():
            now = time.monotonic()
            with self._lock:
                busy, gen, source = self._busy_since, self._gen, self.source
            self._abandoned = [th for th in self._abandoned if th.is_alive()]
            # vouch for a read that is slow but not yet a stall, or a stall a new source is taking over from;
            # never for one blocked past the stall limit with no way to replace it (the watchdog's case)
            waiting = busy and now - busy > self._cfg.stall_seconds + WATCH_EVERY * 4
            if self.alive and len(self._abandoned) <= MAX_ABANDONED and not (waiting and self.factory is None):
                self.stats.capture_beat = now
            if busy and now - busy > self._cfg.stall_seconds and source is not None:
                self._stalled(source, gen, now - busy)

    def _stalled(self, source: FrameSource, gen: int, blocked: float) -> None:
        stats = self.stats
        if stats.source_state != "stalled":
            stats.stalls += 1
            stats.source_state = "stalled"
            stats.last_error = f"{source.name}: no frame for {blocked:.0f} s (stalled)"
            self._report(stats.last_error + (": reading from a new connection" if self.factory else
                                             ": waiting for the read to time out"))
        if self.factory is None:
            return
        try:
            fresh = self.factory()
        except Exception as err:  # a factory that fails now would fail at every try: keep waiting on the old read
            logger.warning("cannot build a new source after a stall: %s", err)
            self.factory = None
            return
        if fresh is source:  # a factory that hands out one object (a test's fake) cannot replace it
            self.factory = None
            return
        with self._lock:
            if gen != self._gen:
                return
            if self._thread is not None:
                self._abandoned.append(self._thread)
        self._spawn(fresh, need_open=True)  # still "stalled" until the fresh source delivers
        if self.on_source is not None:
            self.on_source(fresh)


__all__ = ["CaptureStats", "CaptureSupervisor", "HEALTH_LIMIT_SECONDS", "MAX_ABANDONED", "health_limit",
           "read_timeout"]
