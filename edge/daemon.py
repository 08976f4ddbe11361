"""The live daemon: wiring and start/stop order. The only module that imports every stage.

    capture thread --> FrameRing --> inference thread --> SinkRunner threads
    (capture/supervisor.py) (ring.py)  (inference.py:        (sinks/: log, overlay,
                                        pipeline.py's step)   gpio, clip, notify)

The main thread only waits: it writes status.json, pings the systemd watchdog
while the pipeline is alive, logs a stats line a minute and applies a SIGHUP
reload; what it counts and writes is edge/status.py. Signal handlers only set flags. Stop order: capture, inference, active
events ended, sinks flushed and closed.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edge import config as config_mod
from edge import heap
from edge import sinks as sink_registry
from edge.capture import FrameSource, describe_spec, open_source
from edge.capture.auto import AutoSource
from edge.capture.picamera import PicameraSource
from edge.capture.supervisor import CaptureSupervisor, health_limit
from edge.config import Config, LogSinkConfig
from edge.engine import Engine
from edge.errors import EdgeError
from edge.inference import InferenceLoop
from edge.learn_requests import LearnRequests
from edge.pipeline import Pipeline
from edge.ring import FrameRing, frames_for
from edge.capture.base import short_name
from edge.service import Notifier, StatusLock, default_status_path, write_atomic
from edge.sinks.base import SinkContext, SinkRunner
from edge.status import Stats, snapshot, stats_line, status_line

logger = logging.getLogger(__name__)

@dataclass
class Overrides:
    """Command-line settings that win over config.yaml (and survive a reload)."""

    source: str | None = None
    fast: bool = False
    log: str | None = None
    head: str | None = None  # learned classes (edge learn): a head file, as model.head
    status: str | None = None  # status.json path (a dry run beside the service needs its own: one daemon per path)

    def apply(self, cfg: Config) -> Config:
        cfg = cfg.model_copy(deep=True)
        if self.status:
            cfg.status.path = str(Path(self.status).expanduser())
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


RING_KEYS = ("ring_seconds", "ring_mb")  # applied to the running ring on reload
LIVE_KEYS = RING_KEYS + ("gap_reset_seconds",)  # source keys a reload applies without reopening the source


def ring_keys(cfg: Config) -> tuple:
    return tuple(getattr(cfg.source, k) for k in RING_KEYS)


def reopen_keys(cfg: Config) -> dict[str, Any]:
    """The source keys a reload applies by opening the source again (kind, spec, size, rate, loop, stall, reopen)."""
    return cfg.source.model_dump(exclude=set(LIVE_KEYS))


def urls_files(cfg: Config) -> dict[str, str | None]:
    """Each notify sink's urls_file and a digest of its content now (None: unreadable; the sink says why)."""
    import hashlib

    out: dict[str, str | None] = {}
    for sink in cfg.sinks:
        name = getattr(sink, "urls_file", None)
        if isinstance(name, str):
            path = SinkContext.state_path(name)
            try:
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()  # the secrets are not kept
            except OSError:
                out[str(path)] = None
    return out


class Daemon:
    # seconds without a source before READY=1 is sent anyway: well under the unit's TimeoutStartSec
    # (systemd/edge.service; tests/test_structure.py checks the two together)
    WAIT_FOR_SOURCE = 30.0
    TRIM_EVERY = 60.0  # seconds between handing the heap's free pages back to the system (edge.heap)

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
        self.status_path = Path(self.cfg.status.path) if self.cfg.status.path else default_status_path()
        self._lock = StatusLock(self.status_path)  # one daemon per status path
        self.ready = threading.Event()  # first inference done
        self.finished = threading.Event()  # the source ended (file without loop)
        self.exit_code = 0
        self._shut_down = False
        self._reload_flag = threading.Event()
        self.capture: CaptureSupervisor | None = None
        self.inference: InferenceLoop | None = None
        self._urls: dict[str, str | None] = {}  # the notify urls_files the sinks read (a reload compares)
        # `edge learn record` while the service runs: clips from the ring, on a worker thread (learn_requests.py)
        self.learn_requests = LearnRequests(self.status_path, lambda: self.ring, self.stop_event)

    @property
    def pipeline(self) -> Pipeline | None:
        """The pipeline the inference thread runs now (None before start)."""
        return self.inference.pipeline if self.inference is not None else None

    # ------------------------------------------------------------------ building

    def _open_configured_source(self, cfg: Config) -> FrameSource:
        s = cfg.source
        return open_source(s.kind, s.spec, width=s.width, height=s.height, fps=s.fps, loop=s.loop,
                           paced=not self.overrides.fast, timeout=s.stall_seconds)

    def _build_sinks(self, cfg: Config, labels: list[str]) -> list[SinkRunner]:
        ctx = SinkContext(labels=labels, ring=self.ring, source_fps=lambda: getattr(self.source, "fps", 0.0) or 0.0,
                          rules=[r.name for r in cfg.watch], frame_size=lambda: self.stats.frame_hw,
                          camera=self._camera, source=lambda: short_name(self.source.name) if self.source else "")
        return [sink_registry.build(sc, ctx) for sc in cfg.sinks]

    def _camera(self) -> Any:
        """The open picamera2 camera (the overlay's DRM preview draws on it), or None for any other source."""
        return self.source.camera if isinstance(self.source, (PicameraSource, AutoSource)) else None

    def _ring(self, cfg: Config, source: FrameSource) -> FrameRing:
        """ring_seconds of frames (by their time) within ring_mb; the frame count only a safety net (a source's
        rate is not known before it opens, and may be more than it says; the capture thread raises it to the
        rate the source gives at its first frame)."""
        return FrameRing(*self._ring_bounds(cfg, source))

    @staticmethod
    def _ring_bounds(cfg: Config, source: FrameSource) -> tuple[int, int, float]:
        """(frames, bytes, seconds) for the ring of ``cfg`` on ``source``: at start, and a reload that changed them."""
        fps = max(source.fps or 0.0, cfg.source.fps, 30.0)
        return frames_for(cfg.source.ring_seconds, fps), int(cfg.source.ring_mb * 2**20), cfg.source.ring_seconds

    def _on_source(self, source: FrameSource) -> None:
        """The capture supervisor replaced a stalled source with a fresh one."""
        self.source = source

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Open model, source and sinks; start the threads. Raises EdgeError on a setup mistake."""
        self._lock.acquire()  # before anything else: a second daemon on this status path stops here, touching nothing
        pipeline = Pipeline.build(self.cfg)
        self.source = self.source_factory(self.cfg)
        self.ring = self._ring(self.cfg, self.source)
        self.capture = CaptureSupervisor(self.ring, self.stats, self.stop_event,
                                         factory=lambda: self.source_factory(self.cfg), on_source=self._on_source)
        self.capture.open(self.source)
        self.runners, self._urls = self._build_sinks(self.cfg, pipeline.labels), urls_files(self.cfg)
        for r in self.runners:
            r.start()
        self._start_capture(self.cfg)
        self.inference = InferenceLoop(pipeline, self.ring, self.stats, self.stop_event, sinks=lambda: self.runners,
                                       realtime=lambda: self.source is not None and self.source.realtime,
                                       gap_reset_seconds=self.cfg.source.gap_reset_seconds,
                                       ready=self.ready, finished=self.finished)
        self.inference.start()
        self.learn_requests.open()

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
        if self.inference is not None:
            self.inference.join(3.0)
            self.inference.end_events("stopped")
        self.learn_requests.close()
        for r in self.runners:
            r.close(timeout=2.0)
        self._write_status()  # before forgetting the sinks: the last status.json keeps their final counts
        self._lock.release()
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
        next_status = next_stats = next_ping = time.monotonic()
        next_trim = next_status + self.TRIM_EVERY
        announced = False
        while not self.stop_event.wait(0.1):
            now = time.monotonic()
            if not announced and self.ready.is_set():
                announced = True
                self.notifier.ready(self._status_line())
                logger.info("ready: %s", self._status_line())
            elif (not announced and self.stats.source_state in ("reconnecting", "stalled")
                  and now - self.stats.started_mono > self.WAIT_FOR_SOURCE):
                # No camera at boot: tell systemd we are up (waiting) rather than let its start
                # timeout kill us into a restart loop; the watchdog still catches a hang.
                announced = True
                what = "a camera" if isinstance(self.source, AutoSource) else "the source"
                why = f"waiting for {what}: {self.stats.last_error or 'not available'}"
                self.notifier.ready(why)
                logger.warning("%s (started anyway; frames will be classified when it appears)", why)
            if self._reload_flag.is_set():
                self._reload_flag.clear()
                self.reload()
            self.learn_requests.poll(now)
            if self.finished.is_set():
                logger.info("end of %s", self.source.name if self.source else "source")
                break
            cfg = self.cfg.status  # a reload may change the intervals
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
            if now >= next_trim:
                heap.trim()
                next_trim = now + self.TRIM_EVERY

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
            urls = urls_files(new)  # an edited notify urls_file (Ansible pushes one, then reloads) is read again
            rebuild = new.sinks != old.sinks or engine is not self.pipeline.engine or urls != self._urls
            runners = self._build_sinks(new, pipeline.labels) if rebuild else None
            # a bad kind/spec fails here; the ring's keys and gap_reset_seconds apply without reopening the source
            source = self.source_factory(new) if reopen_keys(new) != reopen_keys(old) else None
        except EdgeError as err:
            return self._reload_failed(err)
        if source is not None and not self._swap_source(source, new):
            for r in runners or []:  # built, never started
                r.close(timeout=0.1)
            return False
        if source is None and ring_keys(new) != ring_keys(old):  # resized in place: sinks and readers keep it
            self.ring.resize(*self._ring_bounds(new, self.source))
            self.capture.refit(new.source)
        self.inference.gap = new.source.gap_reset_seconds
        self.inference.swap(pipeline)
        if runners is not None:
            for r in self.runners:
                r.close(timeout=2.0)
            for r in runners:
                r.start()
            self.runners, self._urls = runners, urls
        self.cfg = new
        changed = [name for name in ("model", "source", "smoothing", "watch", "sinks", "status")
                   if getattr(new, name) != getattr(old, name)]
        logger.info("config reloaded from %s (changed: %s)", self.config_path, ", ".join(changed) or "nothing")
        if new.status.path != old.status.path:  # the one key a reload cannot apply: this daemon holds its lock
            logger.warning("reload: status.path changed: it takes effect at the next restart "
                           "(systemctl restart edge); status.json stays %s until then", self.status_path)
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
        self.ring.resize(*self._ring_bounds(cfg, source))
        self.ring.reopen()
        self._start_capture(cfg)
        return True

    # ------------------------------------------------------------------ status

    def _status_line(self) -> str:
        return status_line(self.stats, self.inference.last if self.inference else None)

    def _stats_line(self) -> str:
        return stats_line(self.stats, self.ring.dropped if self.ring else 0, self.runners)

    def snapshot(self) -> dict[str, Any]:
        """status.json's content now."""
        return snapshot(self.stats, source_name=self.source.name if self.source else None, pipeline=self.pipeline,
                        ring_dropped=self.ring.dropped if self.ring else 0, ring=self.ring.stats() if self.ring else None,
                        last=self.inference.last if self.inference else None, runners=self.runners,
                        healthy=self.healthy())

    def _write_status(self) -> None:
        try:
            write_atomic(self.status_path, self.snapshot())
        except OSError as err:
            if self.stats.last_error != f"status: {err}":
                logger.warning("cannot write %s: %s", self.status_path, err)
            self.stats.last_error = f"status: {err}"
