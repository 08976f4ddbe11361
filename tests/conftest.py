"""Shared fixtures: the tiny models in tests/fixtures, solid frames, the real A0 model, shared videos."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge.capture.fake import FakeSource, solid_frame  # noqa: F401  (FakeSource: for `from conftest import`)

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

REAL_MODEL = "movinet_a0_stream_int8.tflite"
REAL_LABELS = "kinetics600_label_map.txt"


class ReferenceStream:
    """numpy port of ``reference_step`` in fixtures/make_tiny_model.py, fed uint8 RGB 8x8 frames."""

    def __init__(self) -> None:
        self.buf = np.zeros((1, 2, 8, 8, 3), np.float32)
        self.sum = np.zeros((1, 1, 1, 1, 4), np.float32)
        self.count = np.zeros((1,), np.int32)

    def step(self, frame: np.ndarray) -> np.ndarray:
        image = (frame.astype(np.float32) * np.float32(1.0 / 255.0)).reshape(1, 1, 8, 8, 3)
        f = np.array([image[..., 0].mean(), image[..., 1].mean(), image[..., 2].mean(),
                      self.buf[:, -1].mean()], np.float32).reshape(1, 1, 1, 1, 4)
        self.buf = np.concatenate([self.buf[:, 1:], image], axis=1)
        self.sum = (self.sum + f).astype(np.float32)
        self.count = self.count + np.int32(1)
        pooled = self.sum.reshape(4) / np.float32(self.count[0])
        return np.concatenate([np.float32(10.0) * pooled, [np.float32(0.0)]]).astype(np.float32)

    def cap(self, n: int) -> None:
        """What StreamModel.cap_head does: rescale the sum to n frames' worth."""
        c = int(self.count[0])
        if c > n:
            self.sum *= np.float32(n / c)
            self.count[...] = n


@pytest.fixture
def reference():
    """The numpy reference stream class: ``reference().step(frame)`` -> logits."""
    return ReferenceStream


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def tiny_model_path(fixtures_dir: Path) -> Path:
    return fixtures_dir / "tiny_stream.tflite"


@pytest.fixture
def tiny_labels_path(fixtures_dir: Path) -> Path:
    return fixtures_dir / "tiny_labels.txt"


@pytest.fixture
def solid():
    """``solid((255, 0, 0), h, w)``: a frame of one colour, any size."""
    return solid_frame


@pytest.fixture
def real_model() -> tuple[Path, Path]:
    """(model, labels) of the real MoViNet A0 stream model, or skip."""
    dirs = [Path(os.environ["EDGE_MODEL_DIR"])] if os.environ.get("EDGE_MODEL_DIR") else []
    dirs.append(REPO / "models")
    for d in dirs:
        model, labels = d / REAL_MODEL, d / REAL_LABELS
        if model.is_file() and labels.is_file():
            return model, labels
    pytest.skip("real MoViNet A0 model not installed: run ./install.sh (or set EDGE_MODEL_DIR)")


@pytest.fixture
def shared_videos() -> Path:
    """The shared test clips (../shared/videos next to the repo), or skip."""
    path = REPO.parent / "shared" / "videos"
    if not path.is_dir():
        pytest.skip(f"shared test videos not found at {path}")
    return path


# --------------------------------------------------------------------------- daemon tests: recording sink, fake sources


class RecordingSink:
    """Stand-in for a plug-in sink: keeps every prediction and event; tests wait on it with a timeout (never sleep)."""

    type = "record"

    def __init__(self, cfg, ctx) -> None:
        import threading

        self.cfg, self.ctx = cfg, ctx
        self.predictions: list = []
        self.received: list = []  # (event, latest prediction) pairs, in order
        self.cond = threading.Condition()
        self.started = self.closed = False

    def start(self) -> None:
        self.started = True

    def emit(self, prediction) -> None:
        with self.cond:
            self.predictions.append(prediction)
            self.cond.notify_all()

    def event(self, event, latest) -> None:
        with self.cond:
            self.received.append((event, latest))
            self.cond.notify_all()

    def close(self) -> None:
        self.closed = True

    def status(self) -> dict:
        return {"received": len(self.predictions)}

    def describe(self) -> str:
        return "record"

    def wait_for(self, condition, timeout: float = 10.0) -> bool:
        """Wait until ``condition(predictions)`` holds; False on timeout."""
        with self.cond:
            return self.cond.wait_for(lambda: condition(self.predictions), timeout)

    def wait_for_events(self, condition, timeout: float = 10.0) -> bool:
        """Wait until ``condition(events)`` holds; False on timeout."""
        with self.cond:
            return self.cond.wait_for(lambda: condition([ev for ev, _ in self.received]), timeout)

    @property
    def events(self) -> list:
        with self.cond:
            return [ev for ev, _ in self.received]


class _FakeEntryPoint:
    def __init__(self, name: str, target) -> None:
        self.name = name
        self.value = f"tests.conftest:{getattr(target, '__name__', target)}"
        self._target = target

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


@pytest.fixture
def plugin_sinks(monkeypatch):
    """``plugin_sinks(name=cls_or_exception, ...)`` registers fake entry-point sinks (group edge.sinks)."""
    import importlib.metadata

    import edge.sinks

    real_entry_points = importlib.metadata.entry_points

    def register(**targets):
        eps = {name: _FakeEntryPoint(name, target) for name, target in targets.items()}

        def entry_points(**params):  # config validation and the registry both look here
            if params.get("group") == edge.sinks.ENTRY_POINT_GROUP:
                return list(eps.values())
            return real_entry_points(**params)

        monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
        monkeypatch.setattr(edge.sinks, "_plugins", lambda: dict(eps))
        return eps

    return register


@pytest.fixture
def recorder(plugin_sinks):
    """A ``type: record`` sink for daemon configs; ``recorder.sinks`` holds the ones built (newest last)."""
    built: list[RecordingSink] = []

    class Recorder(RecordingSink):
        def __init__(self, cfg, ctx) -> None:
            super().__init__(cfg, ctx)
            built.append(self)

    plugin_sinks(record=Recorder)

    class Handle:
        sinks = built

        @property
        def sink(self) -> RecordingSink:
            assert built, "no record sink was built"
            return built[-1]

    return Handle()


@pytest.fixture
def tiny_config(tmp_path, tiny_model_path, tiny_labels_path):
    """``tiny_config(**sections)``: a validated Config on the tiny fixture model, status in tmp, a record sink."""
    from edge import config

    def make(**sections):
        data = {"model": {"name": str(tiny_model_path), "labels": str(tiny_labels_path)},
                "sinks": [{"type": "record"}], "status": {"path": str(tmp_path / "status.json")}}
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return config.parse(data)

    return make


def write_video(path: Path, colour: tuple[int, int, int], seconds: float = 2.0, fps: float = 15.0,
                size: tuple[int, int] = (64, 48)) -> Path:
    """A video of one solid RGB colour (mp4v), ``seconds`` long at ``fps``."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened(), f"cannot write {path}"
    bgr = solid_frame(colour[::-1], size[1], size[0])
    for _ in range(int(round(seconds * fps))):
        writer.write(bgr)
    writer.release()
    return path


def write_noise_video(path: Path, frames: int = 10, size: tuple[int, int] = (320, 240), fps: float = 10.0) -> Path:
    """Random MJPEG frames: every frame too big for FFmpeg's read buffer to hide a truncation of the file."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened(), f"cannot write {path}"
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (size[1], size[0], 3), np.uint8))
    writer.release()
    return Path(path)


@pytest.fixture
def make_video():
    """``make_video(path, (255, 0, 0), seconds=2.0, fps=15.0)``: write a solid-colour mp4v clip, return its path."""
    return write_video


# --------------------------------------------------------------------------- a real full disk


def mount_tmpfs(folder: Path, size: str = "64k") -> str:
    """Mount a tmpfs of ``size`` on ``folder``; "" when done, else why not."""
    import subprocess

    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True,
                          text=True)
    return "" if done.returncode == 0 else done.stderr.strip() or f"mount exited {done.returncode}"


def unmount(folder: Path) -> None:
    """Unmount ``folder``, even while a file on it is still open (a failed test's sink, held by its traceback):
    then lazily, so the mount is gone at once and its memory is freed when the last file closes."""
    import subprocess

    if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "--lazy", str(folder)], capture_output=True, check=False)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs, for disk-full tests without mocks (skip where mounting is not permitted); always unmounted
    after the test, passed or failed (a mount left behind would stop pytest deleting its old temp folders)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    problem = mount_tmpfs(disk)
    if problem:
        pytest.skip(f"cannot mount a tmpfs here: {problem}")
    try:
        yield disk
    finally:
        unmount(disk)


# --------------------------------------------------------------------------- logging


@pytest.fixture(autouse=True)
def _leave_logging_to_pytest(monkeypatch):
    """cli.main() configures the root logger for a real process; in process, leave pytest's handlers alone."""
    from edge import cli

    monkeypatch.setattr(cli, "setup_logging", lambda *args, **kwargs: None)


# --------------------------------------------------------------------------- waiting for a log line


class LogEvent(logging.Handler):
    """Sets ``event`` (and notes the time) at the first record whose message contains ``needle``."""

    def __init__(self, needle: str) -> None:
        super().__init__(logging.DEBUG)
        self.needle, self.event, self.at = needle, threading.Event(), 0.0

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage() and not self.event.is_set():
            self.at = time.monotonic()
            self.event.set()


@pytest.fixture
def on_log():
    """``on_log(needle)``: a LogEvent on the ``edge`` loggers (DEBUG included), so a test waits for a line, not a sleep."""
    log = logging.getLogger("edge")
    old = log.level
    log.setLevel(logging.DEBUG)
    handlers: list[LogEvent] = []

    def make(needle: str) -> LogEvent:
        handlers.append(LogEvent(needle))
        log.addHandler(handlers[-1])
        return handlers[-1]

    yield make
    for h in handlers:
        log.removeHandler(h)
    log.setLevel(old)
