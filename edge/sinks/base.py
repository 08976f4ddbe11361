"""The Sink base class, the Prediction it receives, and the runner that isolates it.

A sink is ``start()``, ``emit(prediction)``, ``close()`` with no-op defaults (as
picamera2's ``Output``). Each sink runs on its own thread behind a bounded
queue (:class:`SinkRunner`): the inference thread never waits for a sink, a
slow sink loses the oldest predictions (never one carrying an event while a
plain one can go instead), and a failing sink is logged (rate-limited) and
counted but never stops the pipeline or the other sinks.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:
    from edge.capture.base import Frame
    from edge.engine import Scored
    from edge.ring import FrameRing
    from edge.smoothing import Event

logger = logging.getLogger(__name__)


@dataclass
class Prediction:
    """One model output, published by the inference thread to every sink."""

    t: float  # source seconds (video time for files)
    wall: float  # time.time() when the prediction was made
    seq: int  # the frame's sequence number
    probs: np.ndarray
    top: list[Scored]
    smoothed: np.ndarray
    smoothed_top: list[Scored]
    scores: dict[str, float] = field(default_factory=dict)  # watch rule -> score
    events: list[Event] = field(default_factory=list)  # events that started/ended at this prediction
    active: dict[str, Event] = field(default_factory=dict)  # events in progress
    latency: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    frame: Frame | None = None  # the frame the model saw (full size, RGB)
    model_fps: float = 0.0
    drops: int = 0

    @property
    def wall_iso(self) -> str:
        return datetime.fromtimestamp(self.wall, timezone.utc).astimezone().isoformat(timespec="milliseconds")


@dataclass
class SinkContext:
    """What a sink may need from the daemon besides predictions."""

    labels: list[str]
    ring: FrameRing | None = None
    source_fps: Callable[[], float] = lambda: 0.0
    rules: list[str] = field(default_factory=list)
    frame_size: Callable[[], tuple[int, int] | None] = lambda: None  # (h, w) of the source frames
    camera: Callable[[], Any] = lambda: None  # the open picamera2.Picamera2 (it changes when the source reopens), for the drm display

    @staticmethod
    def state_path(path: str) -> Path:
        """A relative path under $STATE_DIRECTORY (systemd), else the current folder."""
        return _under(path, "STATE_DIRECTORY")

    @staticmethod
    def logs_path(path: str) -> Path:
        """A relative path under $LOGS_DIRECTORY (systemd), else the current folder."""
        return _under(path, "LOGS_DIRECTORY")


def _under(path: str, env: str) -> Path:
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    base = os.environ.get(env, "").split(":")[0]
    return Path(base) / p if base else p


class Sink:
    """Base class: override what you need. ``close()`` must be idempotent."""

    type = "sink"

    def __init__(self, cfg: Any, ctx: SinkContext) -> None:
        self.cfg = cfg
        self.ctx = ctx

    def start(self) -> None:
        pass

    def emit(self, prediction: Prediction) -> None:
        pass

    def close(self) -> None:
        pass

    def status(self) -> dict[str, Any]:
        """Extra health facts for status.json (e.g. lines not written)."""
        return {}

    def describe(self) -> str:
        return self.type


class SinkRunner:
    """Runs one sink on its own thread behind a bounded queue; counts what goes wrong."""

    ERROR_LOG_INTERVAL = 30.0  # seconds between repeated error lines of one sink

    def __init__(self, sink: Sink, queue_size: int = 64) -> None:
        self.sink = sink
        self.queue_size = max(1, queue_size)
        self._queue: deque[Prediction] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.emitted = 0
        self.dropped = 0
        self.errors = 0
        self.last_error = ""
        self.last_error_time = 0.0
        self._last_logged = float("-inf")  # not 0.0: monotonic time starts near 0 at boot, which hid the first error
        self._suppressed = 0
        self.started = False
        self.busy = False

    @property
    def name(self) -> str:
        return self.sink.describe()

    def start(self) -> None:
        try:
            self.sink.start()
            self.started = True
        except Exception as err:
            self._error("start", err)
        self._thread = threading.Thread(target=self._run, name=f"sink-{self.sink.type}", daemon=True)
        self._thread.start()

    def submit(self, prediction: Prediction) -> None:
        """Never blocks. When full, drop the oldest plain prediction (or the oldest, if all carry events)."""
        with self._cond:
            if len(self._queue) >= self.queue_size:
                victim = next((p for p in self._queue if not p.events), None)
                if victim is not None:
                    self._queue.remove(victim)
                else:
                    self._queue.popleft()
                self.dropped += 1
            self._queue.append(prediction)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if not self._queue and self._stop:
                    return
                item = self._queue.popleft()
                self.busy = True
            try:
                self.sink.emit(item)
                self.emitted += 1
            except Exception as err:
                self._error("emit", err)
            finally:
                with self._cond:
                    self.busy = False
                    self._cond.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until the queue is empty and the sink idle; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self.busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 2.0) -> None:
        """Flush what is queued (up to ``timeout``), stop the thread, close the sink. Idempotent."""
        with self._cond:
            if self._stop:
                return
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("sink %s did not finish within %.1f s; %d predictions not written",
                               self.name, timeout, len(self._queue))
        try:
            self.sink.close()
        except Exception as err:
            self._error("close", err)

    def _error(self, where: str, err: Exception) -> None:
        self.errors += 1
        self.last_error = f"{where}: {type(err).__name__}: {err}"
        self.last_error_time = time.time()
        now = time.monotonic()
        if now - self._last_logged >= self.ERROR_LOG_INTERVAL:
            more = f" ({self._suppressed} more since the last report)" if self._suppressed else ""
            logger.error("sink %s failed in %s: %s%s", self.name, where, err, more)
            self._last_logged = now
            self._suppressed = 0
        else:
            self._suppressed += 1

    def health(self) -> dict[str, Any]:
        with self._cond:
            queued = len(self._queue)
        ok = self.started and (not self.last_error or time.time() - self.last_error_time > 60)
        return {"sink": self.name, "ok": ok, "emitted": self.emitted, "queued": queued, "dropped": self.dropped,
                "errors": self.errors, "last_error": self.last_error, **self.sink.status()}
