"""The inference thread: the ring's new frames, paced by the sampler, through the Pipeline, to the sinks.

    FrameRing.newer --> sampler (model fps; a late loop keeps only the newest due frame)
        --> gap in time? reset the model state (active events end: "reset")
        --> Pipeline.step --> Prediction + events --> every SinkRunner (events first, in their own envelope)

One :class:`InferenceLoop` lives as long as the daemon. A reload hands it a new
Pipeline with :meth:`InferenceLoop.swap`; the thread takes it between frames and
ends the old pipeline's events if the watch rules changed. Counts go to the
daemon's :class:`~edge.status.Stats`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Callable

from edge.status import Stats

if TYPE_CHECKING:
    from edge.capture.base import Frame
    from edge.pipeline import Pipeline
    from edge.prediction import Prediction
    from edge.ring import FrameRing
    from edge.sinks.base import SinkRunner
    from edge.smoothing import Event, RuleTracker

logger = logging.getLogger(__name__)


class InferenceLoop:
    """Runs ``pipeline`` on the frames of ``ring`` in its own thread until ``stopped`` is set or the ring ends.

    ``sinks`` and ``realtime`` are asked on every frame (a reload may replace the
    sinks or the source). ``ready`` is set after the first prediction, ``finished``
    when the ring is closed and read to the end (a file without loop).
    """

    def __init__(self, pipeline: Pipeline, ring: FrameRing, stats: Stats, stopped: threading.Event,
                 sinks: Callable[[], list[SinkRunner]], realtime: Callable[[], bool], gap_reset_seconds: float,
                 ready: threading.Event | None = None, finished: threading.Event | None = None) -> None:
        self.pipeline = pipeline
        self.ring = ring
        self.stats = stats
        self.stopped = stopped
        self.sinks = sinks
        self.realtime = realtime
        self.gap = gap_reset_seconds
        self.ready = ready or threading.Event()
        self.finished = finished or threading.Event()
        self.last: Prediction | None = None  # the newest prediction published
        self._pending: Pipeline | None = None
        self._pending_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def swap(self, pipeline: Pipeline) -> None:
        """Use ``pipeline`` from the next frame on (a reload)."""
        with self._pending_lock:
            self._pending = pipeline

    def end_events(self, reason: str) -> None:
        """End every active event now (the daemon stops), stamped with the newest prediction's time."""
        self._end_all(self.pipeline.tracker, self.last.t if self.last else 0.0, reason)

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        ring = self.ring
        last_seq = 0
        last_t: float | None = None
        while not self.stopped.is_set():
            self.stats.infer_beat = time.monotonic()
            with self._pending_lock:
                if self._pending is not None:
                    self._take(self._pending, last_t)
                    self._pending = None
            p = self.pipeline
            frames = ring.newer(last_seq, timeout=0.5)
            if not frames:
                if ring.closed and not ring.unread():
                    self.finished.set()
                    return
                continue
            last_seq = frames[-1].seq
            due = [f for f in frames if p.sampler.accept(f.t)]
            self.stats.sampled_out += len(frames) - len(due)
            if not due:
                continue
            if len(due) > 1 and self.realtime():
                self.stats.overrun_drops += len(due) - 1
                due = due[-1:]
            for frame in due:
                if last_t is not None and (frame.t - last_t > self.gap or frame.t < last_t):
                    self._reset_state(p, frame.t, f"{frame.t - last_t:.1f} s gap in frames")
                last_t = frame.t
                try:
                    self._infer(p, frame)
                except Exception as err:  # never let one bad frame kill the daemon
                    self.stats.last_error = f"inference: {err}"
                    logger.exception("inference failed on frame %d", frame.seq)

    def _reset_state(self, p: Pipeline, t: float, why: str) -> None:
        logger.info("resetting model state: %s", why)
        p.reset()
        self.stats.resets += 1
        self._end_all(p.tracker, t, "reset")

    def _infer(self, p: Pipeline, frame: Frame) -> None:
        pred, events = p.step(frame, model_fps=Stats.rate(self.stats.infer_times),
                              drops=self.ring.dropped + self.stats.overrun_drops)
        self.last = pred  # before publishing: a stop that follows ends events with this one as the latest
        self._publish(events, pred)
        for runner in self.sinks():
            runner.submit(pred)
        for stage, value in pred.latency.items():
            self.stats.latency[stage].append(value)
        now = time.monotonic()
        self.stats.inferences += 1
        self.stats.last_infer_mono = now
        self.stats.infer_times.append(now)
        self.ready.set()

    def _publish(self, events: list[Event], latest: Prediction | None) -> None:
        """Every event phase goes to every sink in its own envelope, with the latest prediction."""
        for ev in events:
            if ev.phase == "start":
                logger.info("event %s start at %.1f s (score %.2f)", ev.rule, ev.t, ev.score)
            else:
                logger.info("event %s end at %.1f s (%s)", ev.rule, ev.t, ev.reason)
            for runner in self.sinks():
                runner.submit_event(ev, latest)

    def _end_all(self, tracker: RuleTracker, t: float, reason: str) -> None:
        """End the tracker's active events and send the end events to the sinks."""
        self._publish(tracker.end_all(t, reason), self.last)

    def _take(self, new: Pipeline, last_t: float | None) -> None:
        old = self.pipeline
        if old is not None and old.tracker is not new.tracker:
            self._end_all(old.tracker, last_t or 0.0, "reload")
        self.pipeline = new


__all__ = ["InferenceLoop"]
