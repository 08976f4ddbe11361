"""The live daemon: wiring and start/stop order. The only module that imports every stage.

    capture thread --> FrameRing --> inference thread --> SinkRunner threads
      (source.read)                   (sampler, engine,      (log, overlay,
                                       smoother, rules)       gpio, clip)

The main thread only waits: it writes status.json, pings the systemd watchdog
while the pipeline is alive, logs a stats line a minute and applies a SIGHUP
reload. Signal handlers only set flags. Stop order: capture, inference, active
events ended, sinks flushed and closed.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge import config as config_mod
from edge import sinks as sink_registry
from edge.capture import FrameSource, describe_spec, open_source
from edge.capture.base import Frame
from edge.capture.auto import AutoSource
from edge.capture.picamera import PicameraSource
from edge.capture.supervisor import CaptureStats, CaptureSupervisor, health_limit
from edge.config import Config, LogSinkConfig
from edge.engine import Engine
from edge.errors import EdgeError
from edge.pipeline import STAGES, Pipeline
from edge.prediction import Prediction
from edge.ring import FrameRing
from edge.service import Notifier, default_status_path, write_atomic
from edge.sinks.base import SinkContext, SinkRunner
from edge.smoothing import Event, RuleTracker

logger = logging.getLogger(__name__)

@dataclass
class Overrides:
    """Command-line settings that win over config.yaml (and survive a reload)."""

    source: str | None = None
    fast: bool = False
    log: str | None = None
    head: str | None = None  # learned classes (edge learn): a head file, as model.head

    def apply(self, cfg: Config) -> Config:
        cfg = cfg.model_copy(deep=True)
        if self.head:
            cfg.model.head = str(Path(self.head).expanduser().resolve())  # a flag's path is the shell's, not models/
        if self.source:
            cfg.source.kind = describe_spec(self.source)
            cfg.source.spec = None if self.source in ("auto", "picamera2") else self.source
        if self.log:
            logs = [s for s in cfg.sinks if isinstance(s, LogSinkConfig)]
            if logs:
                logs[0].path = self.log
            else:
                cfg.sinks.append(LogSinkConfig(path=self.log))
        return cfg


@dataclass
class Stats(CaptureStats):
    """The capture thread's counts (CaptureStats) and the inference thread's."""

    started: float = field(default_factory=time.time)
    started_mono: float = field(default_factory=time.monotonic)
    inferences: int = 0
    sampled_out: int = 0  # frames the 5 fps sampler skipped (a faster source)
    overrun_drops: int = 0  # due frames skipped because inference ran late
    resets: int = 0
    last_infer_mono: float = 0.0
    infer_beat: float = field(default_factory=time.monotonic)
    infer_times: deque = field(default_factory=lambda: deque(maxlen=64))
    latency: dict[str, deque] = field(default_factory=lambda: {s: deque(maxlen=300) for s in STAGES})

    @staticmethod
    def rate(times: deque, window: float = 5.0) -> float:
        if len(times) < 2:
            return 0.0
        now = time.monotonic()
        recent = [t for t in times if now - t <= window]
        if len(recent) < 2:
            return 0.0
        span = recent[-1] - recent[0]
        return (len(recent) - 1) / span if span > 0 else 0.0

    def percentiles(self) -> dict[str, dict[str, float]]:
        out = {}
        for stage, values in self.latency.items():
            if values:
                arr = np.fromiter(values, dtype=np.float64)
                out[stage] = {"p50_ms": round(float(np.percentile(arr, 50)) * 1000, 2),
                              "p95_ms": round(float(np.percentile(arr, 95)) * 1000, 2)}
        return out


class Daemon:
    # seconds without a source before READY=1 is sent anyway: well under the unit's TimeoutStartSec
    # (systemd/edge.service; tests/test_structure.py checks the two together)
    WAIT_FOR_SOURCE = 30.0
    def __init__(self, cfg: Config, overrides: Overrides | None = None, config_path: str | os.PathLike[str] | None = None,
                 notifier: Notifier | None = None, source_factory: Callable[[Config], FrameSource] | None = None) -> None:
        self.overrides = overrides or Overrides()
        self.config_path = Path(config_path) if config_path else None
        self.cfg = self.overrides.apply(cfg)
        self.notifier = notifier or Notifier()
        self.source_factory = source_factory or self._open_configured_source
        self.stop_event = threading.Event()
        self.stats = Stats()
        self.ring: FrameRing | None = None
        self.source: FrameSource | None = None
        self.runners: list[SinkRunner] = []
        self.pipeline: Pipeline | None = None
        self.status_path = Path(self.cfg.status.path) if self.cfg.status.path else default_status_path()
        self.ready = threading.Event()  # first inference done
        self.finished = threading.Event()  # the source ended (file without loop)
        self.exit_code = 0
        self._shut_down = False
        self._pending: Pipeline | None = None
        self._pending_lock = threading.Lock()
        self._reload_flag = threading.Event()
        self.capture: CaptureSupervisor | None = None
        self._infer_thread: threading.Thread | None = None
        self._last: Prediction | None = None

    # ------------------------------------------------------------------ building

    def _open_configured_source(self, cfg: Config) -> FrameSource:
        s = cfg.source
        return open_source(s.kind, s.spec, width=s.width, height=s.height, fps=s.fps, loop=s.loop,
                           paced=not self.overrides.fast)

    def _build_sinks(self, cfg: Config, labels: list[str]) -> list[SinkRunner]:
        ctx = SinkContext(labels=labels, ring=self.ring, source_fps=lambda: getattr(self.source, "fps", 0.0) or 0.0,
                          rules=[r.name for r in cfg.watch], frame_size=lambda: self.stats.frame_hw,
                          camera=self._camera)
        return [sink_registry.build(sc, ctx) for sc in cfg.sinks]

    def _camera(self) -> Any:
        """The open picamera2 camera (the overlay's DRM preview draws on it), or None for any other source."""
        return self.source.camera if isinstance(self.source, (PicameraSource, AutoSource)) else None

    def _ring_capacity(self, cfg: Config, source: FrameSource) -> int:
        fps = source.fps if source.fps and source.fps > 0 else cfg.source.fps
        return max(8, int(cfg.source.ring_seconds * fps) + 1)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Open model, source and sinks; start the threads. Raises EdgeError on a setup mistake."""
        self.pipeline = Pipeline.build(self.cfg)
        self.source = self.source_factory(self.cfg)
        self.ring = FrameRing(self._ring_capacity(self.cfg, self.source), max_bytes=int(self.cfg.source.ring_mb * 2**20))
        self.capture = CaptureSupervisor(self.ring, self.stats, self.stop_event)
        self.capture.open(self.source)
        self.runners = self._build_sinks(self.cfg, self.pipeline.labels)
        for r in self.runners:
            r.start()
        self._start_capture(self.cfg)
        self._infer_thread = threading.Thread(target=self._infer_loop, name="inference", daemon=True)
        self._infer_thread.start()

    def _start_capture(self, cfg: Config) -> None:
        self.capture.start(self.source, cfg.source)

    def _stop_capture(self, timeout: float = 2.0) -> None:
        if self.capture is not None:
            self.capture.stop(self.source, timeout)

    def stop(self) -> None:
        self.stop_event.set()

    def request_reload(self) -> None:
        self._reload_flag.set()

    def shutdown(self) -> None:
        """Stop in order: capture, inference, end events, flush sinks. Idempotent."""
        if self._shut_down:
            return
        self._shut_down = True
        self.stop_event.set()
        self.notifier.stopping()
        self._stop_capture()
        if self.capture is not None and self.capture.failed:
            self.exit_code = 1
        if self.ring is not None:
            self.ring.close()
        if self._infer_thread is not None:
            self._infer_thread.join(3.0)
        self._end_events("stopped")
        for r in self.runners:
            r.close(timeout=2.0)
        self._write_status()  # before forgetting the sinks: the last status.json keeps their final counts
        self.runners = []
        logger.info("stopped after %.0f s: %d frames, %d inferences", time.monotonic() - self.stats.started_mono,
                    self.stats.frames_in, self.stats.inferences)

    def run(self, install_signals: bool = True) -> int:
        """Start, serve until SIGTERM/SIGINT or the end of a file, stop. Returns the exit code."""
        if install_signals and threading.current_thread() is threading.main_thread():
            self._install_signals()
        self.start()
        try:
            self._serve()
        finally:
            self.shutdown()
        return self.exit_code

    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())

    def _serve(self) -> None:
        cfg = self.cfg.status
        next_status = next_stats = next_ping = time.monotonic()
        announced = False
        while not self.stop_event.wait(0.1):
            now = time.monotonic()
            if not announced and self.ready.is_set():
                announced = True
                self.notifier.ready(self._status_line())
                logger.info("ready: %s", self._status_line())
            elif (not announced and self.stats.source_state == "reconnecting"
                  and now - self.stats.started_mono > self.WAIT_FOR_SOURCE):
                # No camera at boot: tell systemd we are up (waiting) rather than let its start
                # timeout kill us into a restart loop; the watchdog still catches a hang.
                announced = True
                why = f"waiting for the source: {self.stats.last_error or 'not available'}"
                self.notifier.ready(why)
                logger.warning("%s (started anyway; frames will be classified when it appears)", why)
            if self._reload_flag.is_set():
                self._reload_flag.clear()
                self.reload()
            if self.finished.is_set():
                logger.info("end of %s", self.source.name if self.source else "source")
                break
            if now >= next_status:
                next_status = now + cfg.interval
                self._write_status()
                if announced:
                    self.notifier.status(self._status_line())
            if self.notifier.watchdog_interval and now >= next_ping:
                if self.healthy():
                    self.notifier.watchdog()
                    next_ping = now + self.notifier.watchdog_interval
                else:
                    next_ping = now + 0.5  # check again soon; systemd restarts us if this persists
            if now >= next_stats:
                if now > self.stats.started_mono + 1:
                    logger.info("stats: %s", self._stats_line())
                next_stats = now + cfg.stats_every

    # ------------------------------------------------------------------ health

    def healthy(self, now: float | None = None) -> bool:
        """True while both threads are alive and making progress.

        A camera that vanished and is being reopened is healthy (the capture loop
        is alive, waiting between attempts); a read or an invoke() that hangs is
        not, and then the watchdog pings stop so systemd restarts the service.
        When frames are flowing, inferences must be completing too.
        """
        now = time.monotonic() if now is None else now
        limit = health_limit(self.cfg.model.fps)
        s = self.stats
        if now - s.capture_beat > limit or now - s.infer_beat > limit:
            return False
        if s.last_frame_mono and now - s.last_frame_mono < limit / 2 and self.ready.is_set():
            return now - s.last_infer_mono < limit
        return True

    # ------------------------------------------------------------------ inference thread

    def _infer_loop(self) -> None:
        ring = self.ring
        last_seq = 0
        last_t: float | None = None
        gap = self.cfg.source.gap_reset_seconds
        while not self.stop_event.is_set():
            self.stats.infer_beat = time.monotonic()
            with self._pending_lock:
                if self._pending is not None:
                    self._swap_pipeline(self._pending, last_t)
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
            if len(due) > 1 and self.source is not None and self.source.realtime:
                self.stats.overrun_drops += len(due) - 1
                due = due[-1:]
            for frame in due:
                if last_t is not None and (frame.t - last_t > gap or frame.t < last_t):
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
        self._last = pred  # before publishing: a stop that follows ends events with this one as the latest
        self._publish(events, pred)
        for runner in self.runners:
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
            for runner in self.runners:
                runner.submit_event(ev, latest)

    def _end_all(self, tracker: RuleTracker, t: float, reason: str) -> None:
        """End the tracker's active events and send the end events to the sinks."""
        self._publish(tracker.end_all(t, reason), self._last)

    def _end_events(self, reason: str) -> None:
        if self.pipeline is not None:
            self._end_all(self.pipeline.tracker, self._last.t if self._last else 0.0, reason)

    def _swap_pipeline(self, new: Pipeline, last_t: float | None) -> None:
        old = self.pipeline
        if old is not None and old.tracker is not new.tracker:
            self._end_all(old.tracker, last_t or 0.0, "reload")
        self.pipeline = new

    # ------------------------------------------------------------------ reload

    def reload(self) -> bool:
        """Apply the config file again. An invalid file changes nothing (one error line)."""
        if self.config_path is None:
            logger.warning("reload requested but the daemon was started without a config file")
            return False
        self.notifier.reloading()
        try:
            new = self.overrides.apply(config_mod.load(self.config_path))
            old = self.cfg
            same_model = new.model == old.model
            engine = self.pipeline.engine if same_model else Engine(new.model)
            pipeline = Pipeline.build(new, engine)  # reads model.head again: a changed head file is picked up
            same_model = same_model and pipeline.labels == self.pipeline.labels  # the head may have other classes
            # what did not change keeps its state: an active event (and the GPIO pin it drives)
            # must not blink off and on because an unrelated key was edited
            if same_model and new.smoothing == old.smoothing:
                pipeline.smoother = self.pipeline.smoother
            if same_model and new.watch == old.watch:
                pipeline.tracker = self.pipeline.tracker
            if same_model:
                pipeline.sampler = self.pipeline.sampler
            runners = self._build_sinks(new, pipeline.labels) if new.sinks != old.sinks or engine is not self.pipeline.engine else None
            source = self.source_factory(new) if new.source != old.source else None  # a bad kind/spec fails here
        except EdgeError as err:
            return self._reload_failed(err)
        if source is not None and not self._swap_source(source, new):
            for r in runners or []:  # built, never started
                r.close(timeout=0.1)
            return False
        with self._pending_lock:
            self._pending = pipeline
        if runners is not None:
            for r in self.runners:
                r.close(timeout=2.0)
            for r in runners:
                r.start()
            self.runners = runners
        self.cfg = new
        changed = [name for name in ("model", "source", "smoothing", "watch", "sinks", "status")
                   if getattr(new, name) != getattr(old, name)]
        logger.info("config reloaded from %s (changed: %s)", self.config_path, ", ".join(changed) or "nothing")
        self.notifier.ready(self._status_line())
        return True

    def _reload_failed(self, err: Exception) -> bool:
        logger.error("reload failed, still running the previous config: %s", err)
        self.stats.last_error = f"reload: {err}"
        self.notifier.ready(self._status_line())
        return False

    def _swap_source(self, source: FrameSource, cfg: Config) -> bool:
        """Capture from ``source`` instead. One that cannot be opened at all (a file that is not
        there: EdgeError) fails the reload and capture goes back to the old source; one that is
        merely not there yet (SourceError) is retried by the capture loop like a vanished camera."""
        self._stop_capture()
        try:
            self.capture.open(source)
        except EdgeError as err:
            self._reload_failed(err)
            try:
                self.capture.open(self.source)
            except EdgeError as again:
                logger.warning("source %s not available yet (%s): retrying", self.source.name, again)
                self.stats.source_state = "reconnecting"
            self._start_capture(self.cfg)
            return False
        self.source = source
        self.ring.clear()
        self.ring.reopen()
        self._start_capture(cfg)
        return True

    # ------------------------------------------------------------------ status

    def _top3(self) -> list[dict]:
        last = self._last
        return [s.as_dict() for s in last.smoothed_top[:3]] if last else []

    def _status_line(self) -> str:
        top = self._top3()
        best = f"{top[0]['label']} {top[0]['score']:.2f}" if top else "-"
        return f"{Stats.rate(self.stats.infer_times):.1f} fps, top: {best}, source {self.stats.source_state}"

    def _stats_line(self) -> str:
        s = self.stats
        lat = s.percentiles().get("total", {})
        return (f"in {Stats.rate(s.in_times):.1f} fps, model {Stats.rate(s.infer_times):.1f} fps, "
                f"{s.inferences} inferences, drops ring {self.ring.dropped if self.ring else 0} overrun {s.overrun_drops}, "
                f"latency p50 {lat.get('p50_ms', 0)} ms p95 {lat.get('p95_ms', 0)} ms, reopens {s.reopens}, "
                f"sinks {'ok' if all(r.health()['ok'] for r in self.runners) else 'degraded'}")

    def snapshot(self) -> dict[str, Any]:
        s = self.stats
        p = self.pipeline
        active = p.tracker.active() if p else {}
        return {
            "pid": os.getpid(),
            "updated": time.time(),
            "started": s.started,
            "uptime_s": round(time.monotonic() - s.started_mono, 1),
            "source": {"name": self.source.name if self.source else None, "state": s.source_state,
                       "fps": round(Stats.rate(s.in_times), 2), "frames": s.frames_in, "reopens": s.reopens},
            "model": {"name": p.engine.describe() if p else None, "fps": round(Stats.rate(s.infer_times), 2),
                      "inferences": s.inferences, "resets": s.resets},
            "drops": {"ring": self.ring.dropped if self.ring else 0, "overrun": s.overrun_drops,
                      "subsampled": s.sampled_out},
            "latency": s.percentiles(),
            "top": self._top3(),
            "active_events": [{"rule": name, "since": round(ev.start, 2), "peak": round(ev.peak, 3)}
                              for name, ev in active.items()],
            "sinks": [r.health() for r in self.runners],
            "healthy": self.healthy(),
            "last_error": s.last_error,
        }

    def _write_status(self) -> None:
        try:
            write_atomic(self.status_path, self.snapshot())
        except OSError as err:
            if self.stats.last_error != f"status: {err}":
                logger.warning("cannot write %s: %s", self.status_path, err)
            self.stats.last_error = f"status: {err}"
