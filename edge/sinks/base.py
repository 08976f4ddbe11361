"""The Sink base class and the runner that isolates it.

A sink is ``start()``, ``emit(prediction)``, ``event(event, latest)``,
``close()`` with no-op defaults (as picamera2's ``Output``). ``emit`` gets every
published :class:`~edge.prediction.Prediction`; ``event`` gets every watch-rule
event phase (start, end) in its own envelope with the latest prediction (None
before the first one), whether it happened at a frame or at a stop, reset or
reload. For a frame that causes events, the events come first, then the
prediction.

Each sink runs on its own thread behind a bounded queue (:class:`SinkRunner`):
the inference thread never waits for a sink, a slow sink loses the oldest
predictions but never an event, and a failing sink is logged (rate-limited) and
counted but never stops the pipeline or the other sinks.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from edge.prediction import Prediction
from edge.ratelog import RateLimitedLog

if TYPE_CHECKING:
    from edge.ring import FrameRing
    from edge.smoothing import Event

logger = logging.getLogger(__name__)

# The open picamera2.Picamera2 (for the overlay's DRM preview), or None: always called, never guessed,
# because the capture supervisor may reopen the camera (a new object) at any time.
CameraRef = Callable[[], Any]


@dataclass
class SinkContext:
    """What a sink may need from the daemon besides predictions."""

    labels: list[str]
    ring: FrameRing | None = None
    source_fps: Callable[[], float] = lambda: 0.0
    rules: list[str] = field(default_factory=list)
    frame_size: Callable[[], tuple[int, int] | None] = lambda: None  # (h, w) of the source frames
    source: Callable[[], str] = lambda: ""  # the source's short name (a log line's src: merged logs stay readable)
    camera: CameraRef = lambda: None  # the open picamera2.Picamera2 or None (see CameraRef)

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

    def event(self, event: Event, latest: Prediction | None) -> None:
        """A watch rule's event started or ended; ``latest`` is the newest prediction (None before the first)."""

    def close(self) -> None:
        pass

    def status(self) -> dict[str, Any]:
        """Extra health facts for status.json (e.g. lines not written)."""
        return {}

    def describe(self) -> str:
        return self.type


class _Item(NamedTuple):
    """One queued delivery: a prediction (event None) or an event with the latest prediction."""

    prediction: Prediction | None
    event: Event | None = None


class SinkRunner:
    """Runs one sink on its own thread behind a bounded queue; counts what goes wrong."""

    ERROR_LOG_INTERVAL = 30.0  # seconds between repeated error lines of one sink

    def __init__(self, sink: Sink, queue_size: int = 64) -> None:
        self.sink = sink
        self.queue_size = max(1, queue_size)
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.emitted = 0
        self.dropped = 0
        self.errors = 0
        self.last_error = ""
        self.last_error_time = 0.0
        self.error_log = RateLimitedLog(logger, self.ERROR_LOG_INTERVAL)  # one line per interval, with the count
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
        """Never blocks. When full, the oldest queued prediction goes (this one, if only events are queued)."""
        with self._cond:
            if not self._make_room():
                self.dropped += 1  # this one: only events are queued
                return
            self._queue.append(_Item(prediction))
            self._cond.notify()

    def submit_event(self, event: Event, latest: Prediction | None) -> None:
        """Never blocks; an event is never dropped (when only events are queued, the queue grows by this one)."""
        with self._cond:
            self._make_room()
            self._queue.append(_Item(latest, event))
            self._cond.notify()

    def _make_room(self) -> bool:
        """Called with the lock held: drop the oldest queued prediction if the queue is full; False if full of events."""
        if len(self._queue) < self.queue_size:
            return True
        victim = next((i for i, item in enumerate(self._queue) if item.event is None), None)
        if victim is None:
            return False
        del self._queue[victim]
        self.dropped += 1
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if not self._queue and self._stop:
                    return
                item = self._queue.popleft()
                self.busy = True
            where = "emit" if item.event is None else "event"
            try:
                if item.event is None:
                    self.sink.emit(item.prediction)
                else:
                    self.sink.event(item.event, item.prediction)
                self.emitted += 1
            except Exception as err:
                self._error(where, err)
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
                with self._cond:
                    events = sum(item.event is not None for item in self._queue)
                    predictions = len(self._queue) - events
                logger.warning("sink %s did not finish within %.1f s; %d predictions not written%s", self.name,
                               timeout, predictions, f" and {events} events lost" if events else "")
        try:
            self.sink.close()
        except Exception as err:
            self._error("close", err)

    def _error(self, where: str, err: Exception) -> None:
        self.errors += 1
        self.last_error = f"{where}: {type(err).__name__}: {err}"
        self.last_error_time = time.time()
        self.error_log.log("error", "sink %s failed in %s: %s", self.name, where, err)

    def health(self) -> dict[str, Any]:
        with self._cond:
            queued = len(self._queue)
        ok = self.started and (not self.last_error or time.time() - self.last_error_time > 60)
        return {"sink": self.name, "ok": ok, "emitted": self.emitted, "queued": queued, "dropped": self.dropped,
                "errors": self.errors, "last_error": self.last_error, **self.sink.status()}
