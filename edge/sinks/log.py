"""LogSink: predictions and events as JSON lines in a local file (no broker, no network).

One object a line: ``{"t", "wall", "kind": "prediction"|"event"|"status", ...}``.
Predictions carry the raw ``top`` and the ``smoothed`` top; they are written at
most every ``prediction_every`` seconds of source time. Event (and status)
lines are always written, then fsynced.

The file rotates by size: past ``max_mb`` it is renamed ``edge.jsonl.1`` (the
older ones move up to ``.2`` .. ``.keep``, the oldest is deleted) and a new one
is started. A line is never split across files.

Losing the disk does not lose the daemon. When a write fails (disk full, quota,
file size limit, read-only remount, I/O error, permissions) the file is cut back
to the end of the last whole line, so it never holds a partial line; the sink
counts what it could not write (``unwritten``, split into events and
predictions; prediction lines are dropped), keeps the newest unwritten event
lines in memory (``backlog`` of them; older ones are ``lost_events``) and tries
again every ``retry_seconds``; when the file is writable again the backlog goes
first, in order. ``status()`` shows all of it (so status.json
does) and marks the sink not ok meanwhile. It logs the first failure, then at
most one reminder a minute, and once more when writing resumes. It never raises
for a disk problem.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import threading
import time
from collections import deque
from typing import Any

from edge.prediction import Prediction, event_wall, iso_wall
from edge.ratelog import RateLimitedLog
from edge.sinks.base import Sink, SinkContext

logger = logging.getLogger(__name__)

MB = 1_000_000
REMIND_SECONDS = 60.0  # between repeated "still cannot write" lines
TAIL_CHECK = 1 << 16  # bytes read back at open to find the last whole line

# errors that mean "the disk/file cannot take it now"; any other OSError is treated the same way
# (the sink must never stop the daemon) but these get a fix in the log line
FIXES = {
    errno.ENOSPC: "the disk is full: free some space",
    errno.EDQUOT: "the disk quota is exhausted: free some space or raise the quota",
    errno.EFBIG: "the file size limit was reached (ulimit -f / LimitFSIZE=): raise it or lower max_mb",
    errno.EACCES: "no permission: let the service user write there (LogsDirectory= in the unit)",
    errno.EPERM: "no permission: let the service user write there (LogsDirectory= in the unit)",
    errno.EROFS: "the file system is read-only (remounted after errors?): check the SD card",
    errno.EIO: "I/O error: the SD card or USB disk may be failing",
}


def prediction_line(p: Prediction, top: int) -> dict[str, Any]:
    return {
        "t": round(p.t, 3), "wall": p.wall_iso, "kind": "prediction", "seq": p.seq,
        "top": [s.as_dict() for s in p.top[:top]],
        "smoothed": [s.as_dict() for s in p.smoothed_top[:top]],
        "active": sorted(p.active),
    }


def event_line(ev, latest: Prediction | None) -> dict[str, Any]:
    return {"t": round(ev.t, 3), "wall": iso_wall(event_wall(ev, latest)), "kind": "event", "label": ev.rule,
            **ev.as_dict()}


def _encode(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode("utf-8")


class LogSink(Sink):
    type = "log"

    def __init__(self, cfg, ctx: SinkContext) -> None:
        super().__init__(cfg, ctx)
        self.path = ctx.logs_path(cfg.path)
        self._fd: int | None = None
        self._offset = 0  # file size after the last whole line
        self._next_t: float | None = None
        self._lock = threading.RLock()
        self._started = False
        self._closed = False
        self._backlog: deque[bytes] = deque(maxlen=cfg.backlog) if cfg.backlog > 0 else deque(maxlen=0)
        self._failing = False  # the last attempt to write failed
        self._retry_at = 0.0  # monotonic time of the next attempt while failing
        self._reminders = RateLimitedLog(logger, REMIND_SECONDS, logging.WARNING)  # while failing: a line a minute
        self.lines = 0
        self.rotations = 0
        self.unwritten_events = 0  # event/status lines that could not be written when they happened
        self.unwritten_predictions = 0  # prediction lines that could not be written (they are dropped)
        self.lost_events = 0  # unwritten event lines that never made it (backlog full, or still waiting at stop)
        self.failed_writes = 0  # write attempts that failed
        self.last_error = ""

    @property
    def unwritten(self) -> int:
        return self.unwritten_events + self.unwritten_predictions

    def describe(self) -> str:
        return f"log:{self.path}"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        with self._lock:
            self._started = True
            self._open()
            if self._fd is not None:
                logger.info("logging predictions to %s", self.path)
            self.write_status("started")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self._started:
                self._retry_at = 0.0  # one last try for the backlog
                self.write_status("stopped")
            self._closed = True
            if self._backlog:
                lost = len(self._backlog)
                self.lost_events += lost
                self._backlog.clear()
                logger.error("log %s: %d event lines could not be written before stopping (%s)",
                             self.path, lost, self.last_error)
            self._close_fd()

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def _open(self) -> bool:
        """Open (creating folders) for appending; repair a torn last line. False when not possible now."""
        if self._fd is not None:
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            self._failed(err)
            return False
        try:
            self._offset = self._whole_lines_end(fd)
        except OSError as err:
            os.close(fd)
            self._failed(err)
            return False
        self._fd = fd
        return True

    def _whole_lines_end(self, fd: int) -> int:
        """The file's size, cut back to after its last newline if a crash left a partial line."""
        size = os.fstat(fd).st_size
        if size == 0:
            return 0
        with open(self.path, "rb") as f:
            f.seek(max(0, size - TAIL_CHECK))
            tail = f.read()
        if tail.endswith(b"\n"):
            return size
        cut = tail.rfind(b"\n")
        good = size - len(tail) + cut + 1 if cut >= 0 else (0 if size <= TAIL_CHECK else size)
        if good != size:
            os.ftruncate(fd, good)
            logger.warning("log %s ended in a partial line (%d bytes, an earlier crash?): removed it", self.path,
                           size - good)
        return good

    # ------------------------------------------------------------------ lines

    def _tagged(self, line: dict[str, Any]) -> dict[str, Any]:
        """The line with its source's short name (``src``), so two daemons' lines in one file can be told apart."""
        src = self.ctx.source()
        return {**line, "src": src} if src else line

    def write_status(self, what: str, **extra: Any) -> None:
        wall = iso_wall(time.time())
        with self._lock:
            self._line(_encode(self._tagged({"t": extra.pop("t", None), "wall": wall, "kind": "status", "status": what,
                                             **extra})),
                       event=True)

    def event(self, event, latest: Prediction | None) -> None:
        with self._lock:
            if not self._closed:
                self._line(_encode(self._tagged(event_line(event, latest))), event=True)

    def emit(self, p: Prediction) -> None:
        with self._lock:
            if self._closed:
                return
            every = self.cfg.prediction_every
            if self._next_t is None or p.t >= self._next_t or every == 0:
                self._line(_encode(self._tagged(prediction_line(p, self.cfg.top))), event=False)
                self._next_t = p.t + every if self._next_t is None or p.t - self._next_t > every else self._next_t + every

    def _line(self, data: bytes, event: bool) -> None:
        """Write one line (events: fsynced; backlog first); on failure keep events in the backlog."""
        if self._failing and time.monotonic() < self._retry_at:
            self._lost(data, event)
            return
        if self._backlog and not self._flush_backlog():
            self._lost(data, event)
            return
        if self._write(data, sync=event):
            return
        self._lost(data, event)

    def _lost(self, data: bytes, event: bool) -> None:
        if not event:
            self.unwritten_predictions += 1
            return
        self.unwritten_events += 1
        if len(self._backlog) == self._backlog.maxlen:
            self.lost_events += 1  # the oldest one falls out (or, with backlog 0, this one)
        self._backlog.append(data)

    def _flush_backlog(self) -> bool:
        while self._backlog:
            if not self._write(self._backlog[0], sync=len(self._backlog) == 1):
                return False
            self._backlog.popleft()
        return True

    def _write(self, data: bytes, sync: bool) -> bool:
        if self._fd is None and not self._open():
            return False
        try:
            if self._offset > 0 and self._offset + len(data) > self.cfg.max_mb * MB:
                self._rotate()
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                if n <= 0:
                    raise OSError(errno.EIO, "write returned 0")
                view = view[n:]
            if sync:
                os.fsync(self._fd)
        except OSError as err:
            self._undo_partial()
            self._failed(err)
            return False
        self._offset += len(data)
        self.lines += 1
        if self._failing:
            self._recovered()
        return True

    def _undo_partial(self) -> None:
        """Cut the file back to the last whole line; if even that fails, reopen (and repair) later."""
        if self._fd is None:
            return
        try:
            if os.fstat(self._fd).st_size != self._offset:
                os.ftruncate(self._fd, self._offset)
        except OSError:
            self._close_fd()  # _open() repairs the tail when it next succeeds

    def _rotate(self) -> None:
        """edge.jsonl -> edge.jsonl.1 -> .2 ... -> .keep (deleted beyond). Raises OSError."""
        keep = self.cfg.keep
        self._close_fd()
        base = str(self.path)
        for old in self._rotated():
            if old > keep:
                os.unlink(f"{base}.{old}")
        if keep == 0:
            os.unlink(base)
        else:
            for i in range(keep - 1, 0, -1):
                if os.path.exists(f"{base}.{i}"):
                    os.replace(f"{base}.{i}", f"{base}.{i + 1}")
            os.replace(base, f"{base}.1")
        self.rotations += 1
        if not self._open():
            raise OSError(errno.EIO, f"could not reopen {self.path} after rotating")

    def _rotated(self) -> list[int]:
        pattern = re.compile(re.escape(self.path.name) + r"\.(\d+)$")
        try:
            names = os.listdir(self.path.parent)
        except OSError:
            return []
        return sorted(int(m.group(1)) for n in names if (m := pattern.match(n)))

    # ------------------------------------------------------------------ failure and recovery

    def _failed(self, err: OSError) -> None:
        self.failed_writes += 1
        self.last_error = f"{errno.errorcode.get(err.errno, err.errno)}: {err.strerror or err}"
        self._retry_at = time.monotonic() + self.cfg.retry_seconds
        if not self._failing:
            self._failing = True
            fix = FIXES.get(err.errno, "check the disk and the path")
            self._reminders.log("write", "log %s cannot be written (%s): %s; events are kept in memory (up to %d) "
                                "and the daemon keeps running", self.path, err.strerror or err, fix,
                                self._backlog.maxlen, level=logging.ERROR)
        else:
            self._reminders.log("write", "log %s still cannot be written (%s): %d events waiting, %d lines unwritten "
                                "so far", self.path, self.last_error, len(self._backlog), self.unwritten)

    def _recovered(self) -> None:
        self._failing = False
        self._reminders.forget("write")
        logger.warning("log %s is writable again: so far %d lines could not be written in time "
                       "(%d events, %d of them lost; %d predictions, dropped)", self.path, self.unwritten,
                       self.unwritten_events, self.lost_events, self.unwritten_predictions)

    def status(self) -> dict[str, Any]:
        with self._lock:
            out = {"path": str(self.path), "lines": self.lines, "unwritten": self.unwritten,
                   "unwritten_events": self.unwritten_events, "unwritten_predictions": self.unwritten_predictions,
                   "lost_events": self.lost_events, "backlog": len(self._backlog), "rotations": self.rotations, "writable": not self._failing}
            if self._failing:
                out["ok"] = False  # overrides the runner's view: this sink is degraded
                out["write_error"] = self.last_error
            return out
