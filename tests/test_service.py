"""sd_notify against a real AF_UNIX datagram socket: what systemd would receive, and when.

The daemon runs in-process on the tiny fixture model with a paced fake camera, its
Notifier pointed at a socket bound here (a path, and an abstract ``@`` name), with a
0.2 s watchdog interval. Datagrams are read with socket timeouts; nothing sleeps to
wait. The last test runs ``python -m edge run`` for real with NOTIFY_SOCKET set and
stops it with SIGTERM, as systemd does.
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO
from helpers import edge_run

from edge import config
from edge.capture.base import Frame, SourceError
from edge.daemon import Daemon
from edge.service import Notifier

PING = 0.2  # watchdog interval for the tests (systemd would pass WATCHDOG_USEC=2 * this)


class Listener:
    """The service manager's end: an AF_UNIX datagram socket that collects notifications."""

    def __init__(self, address: str) -> None:
        self.address = address  # as NOTIFY_SOCKET: a path, or "@name" for the abstract namespace
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.seen: list[list[str]] = []

    def close(self) -> None:
        self.sock.close()

    def receive(self, timeout: float) -> list[str] | None:
        """One datagram as its lines, or None when nothing came within ``timeout`` seconds."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        lines = data.decode().split("\n")
        self.seen.append(lines)
        return lines

    def wait_for(self, line: str, timeout: float = 10.0) -> list[list[str]]:
        """Datagrams up to and including the first holding ``line``; fails after ``timeout``."""
        got: list[list[str]] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self.receive(left)
            if msg is None:
                break
            got.append(msg)
            if line in msg:
                return got
        pytest.fail(f"no {line!r} within {timeout} s (got {got[-5:]})")

    def collect(self, seconds: float) -> list[list[str]]:
        """Every datagram arriving in the next ``seconds``."""
        got: list[list[str]] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            msg = self.receive(left)
            if msg is not None:
                got.append(msg)
        return got


def count(messages: list[list[str]], line: str) -> int:
    return sum(line in m for m in messages)


@pytest.fixture
def listener(tmp_path):
    path = tmp_path / "notify"
    if len(str(path)) > 100:  # sun_path holds 108 bytes
        path = Path(tempfile.mkdtemp(prefix="edge-notify-")) / "notify"
    lst = Listener(str(path))
    yield lst
    lst.close()


@pytest.fixture
def abstract_listener():
    lst = Listener(f"@edge-test-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    yield lst
    lst.close()


class PacedCamera:
    """A camera stand-in: a new colour every ``interval`` s (never frozen) until closed.

    ``gate``: read() delivers nothing until it is set (a camera still warming up).
    ``stall_after``: after that many frames read() hangs (a wedged driver) until
    :meth:`release`; from then on frames flow again.
    """

    name = "paced"
    fps = 20.0
    realtime = True
    can_freeze = True

    def __init__(self, interval: float = 0.05, gate: threading.Event | None = None,
                 stall_after: int | None = None) -> None:
        self.interval = interval
        self.gate = gate
        self.stall_after = stall_after
        self.stalled = threading.Event()
        self.released = threading.Event()
        self.closed = threading.Event()
        self.frames = 0
        self.t0 = time.monotonic()

    def open(self) -> None:
        self.closed.clear()

    def close(self) -> None:
        self.closed.set()

    def release(self) -> None:
        self.released.set()
        if self.gate is not None:
            self.gate.set()

    def read(self) -> Frame:
        if self.gate is not None:
            while not self.gate.wait(0.05):
                if self.closed.is_set():
                    raise SourceError("closed while waiting")
        if self.stall_after is not None and self.frames >= self.stall_after and not self.released.is_set():
            self.stalled.set()
            self.released.wait(60)  # hangs like a wedged driver: the capture heartbeat goes stale
            raise SourceError("the stalled camera came back")
        if self.closed.wait(self.interval):
            raise SourceError("closed")
        self.frames += 1
        pixels = np.full((8, 8, 3), (self.frames * 37 % 256, 90, 30), np.uint8)
        return Frame(pixels, time.monotonic() - self.t0, self.frames)


@pytest.fixture
def service_config(tmp_path, tiny_model_path, tiny_labels_path):
    return config.parse({
        "model": {"name": str(tiny_model_path), "labels": str(tiny_labels_path)},
        "source": {"reopen_min_seconds": 0.2},
        "sinks": [],
        "status": {"path": str(tmp_path / "status.json"), "interval": 0.2},
    })


@contextmanager
def serving(cfg, camera: PacedCamera, address: str):
    """The real Daemon.run() on a thread, notifying ``address`` with a PING s watchdog interval."""
    notifier = Notifier(address=address)
    notifier.watchdog_interval = PING
    daemon = Daemon(cfg, notifier=notifier, source_factory=lambda _cfg: camera)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(daemon.run(install_signals=False)), name="test-daemon")
    thread.start()
    try:
        yield daemon
    finally:
        camera.release()
        daemon.stop()
        thread.join(10)
        notifier.close()
        assert not thread.is_alive(), "the daemon did not stop"
    assert codes == [0]


# --------------------------------------------------------------------------- the protocol


def test_ready_only_after_the_first_inference(service_config, listener):
    gate = threading.Event()
    camera = PacedCamera(gate=gate)
    with serving(service_config, camera, listener.address) as daemon:
        early = listener.collect(1.0)  # model loaded, source open, no frame yet
        assert count(early, "READY=1") == 0
        assert daemon.stats.inferences == 0
        gate.set()
        got = listener.wait_for("READY=1")
        assert daemon.stats.inferences >= 1
        ready = got[-1]
        status = [line for line in ready if line.startswith("STATUS=")]
        assert status and "top:" in status[0]  # READY carries the first status line


def test_watchdog_pings_while_frames_flow(service_config, listener):
    camera = PacedCamera()
    with serving(service_config, camera, listener.address) as daemon:
        listener.wait_for("READY=1")
        frames = daemon.stats.frames_in
        window = listener.collect(6 * PING)
        assert count(window, "WATCHDOG=1") >= 3
        assert daemon.stats.frames_in > frames
        assert count(window, "READY=1") == 0  # once
        assert any(line.startswith("STATUS=") for m in window for line in m)


def test_no_watchdog_while_the_camera_hangs(service_config, listener):
    camera = PacedCamera(stall_after=10)
    with serving(service_config, camera, listener.address) as daemon:
        listener.wait_for("READY=1")
        assert camera.stalled.wait(10)
        # pings go on until the capture heartbeat is stale (3 s), then stop
        deadline = time.monotonic() + 10
        while daemon.healthy() and time.monotonic() < deadline:
            listener.receive(0.2)
        assert not daemon.healthy(), "a hung read() must make the daemon unhealthy"
        listener.collect(0.3)  # a ping decided just before the switch may still be in flight
        hung = listener.collect(1.5)
        assert count(hung, "WATCHDOG=1") == 0, hung
        assert daemon.stats.frames_in == 10
        # systemd would restart it now; here the camera comes back: pings resume (the capture
        # thread is alive again, reopening it) and then frames flow again
        camera.release()
        listener.wait_for("WATCHDOG=1", timeout=10)
        deadline = time.monotonic() + 10
        while daemon.stats.frames_in <= 10 and time.monotonic() < deadline:
            listener.receive(0.2)
        assert daemon.stats.frames_in > 10


def test_stopping_at_shutdown(service_config, listener):
    camera = PacedCamera()
    with serving(service_config, camera, listener.address) as daemon:
        listener.wait_for("READY=1")
        daemon.stop()
        listener.wait_for("STOPPING=1")


def test_abstract_socket_name(service_config, abstract_listener):
    camera = PacedCamera()
    with serving(service_config, camera, abstract_listener.address) as daemon:
        abstract_listener.wait_for("READY=1")
        abstract_listener.wait_for("WATCHDOG=1")
        daemon.stop()
        abstract_listener.wait_for("STOPPING=1")


def test_reload_says_reloading_then_ready(service_config, listener, tmp_path, tiny_model_path, tiny_labels_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"model": {"name": str(tiny_model_path), "labels": str(tiny_labels_path)},
                                    "sinks": [], "status": {"path": str(tmp_path / "status.json")}}))
    camera = PacedCamera()
    notifier = Notifier(address=listener.address)
    daemon = Daemon(config.load(path), notifier=notifier, config_path=path, source_factory=lambda _cfg: camera)
    thread = threading.Thread(target=daemon.run, kwargs={"install_signals": False})
    thread.start()
    try:
        listener.wait_for("READY=1")
        daemon.request_reload()  # what the SIGHUP handler does
        got = listener.wait_for("READY=1")
        reloading = [m for m in got if "RELOADING=1" in m]
        assert reloading and any(line.startswith("MONOTONIC_USEC=") for line in reloading[0])
    finally:
        camera.release()
        daemon.stop()
        thread.join(10)
        notifier.close()


def test_watchdog_interval_from_the_environment(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert Notifier(address="@x").watchdog_interval == 15.0  # half of WatchdogSec=30
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert Notifier(address="@x").watchdog_interval == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert Notifier(address="@x").watchdog_interval == 0.0
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    quiet = Notifier()
    assert not quiet.enabled and quiet.ready() is False  # outside systemd: a no-op


# --------------------------------------------------------------------------- the real process


def write_clip(path: Path, frames: int = 30, fps: float = 10.0) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    for k in range(frames):
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[:, :] = (k * 8 % 256, 255 - k * 8 % 256, 60)
        writer.write(frame)
    writer.release()
    return path


def test_sigterm_sends_stopping_and_exits_0(tmp_path, listener, tiny_model_path, tiny_labels_path):
    clip = write_clip(tmp_path / "clip.mp4")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": {"name": str(tiny_model_path), "labels": str(tiny_labels_path)},
        "source": {"kind": "file", "spec": str(clip), "loop": True},
        "sinks": [{"type": "log", "path": str(tmp_path / "edge.jsonl")}],
        "status": {"path": str(tmp_path / "status.json"), "interval": 0.2}}))
    env = dict(os.environ, NOTIFY_SOCKET=listener.address, WATCHDOG_USEC=str(int(2 * PING * 1e6)))
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("WATCHDOG_PID", None)
    env.pop("JOURNAL_STREAM", None)
    with edge_run(cfg, tmp_path / "stderr.txt", cwd=tmp_path, env=env) as proc:
        listener.wait_for("READY=1", timeout=30)
        listener.wait_for("WATCHDOG=1")
        proc.send_signal(signal.SIGTERM)
        listener.wait_for("STOPPING=1")
        assert proc.wait(timeout=15) == 0, (tmp_path / "stderr.txt").read_text()
