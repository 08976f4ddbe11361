"""The daemon in a real deployment's bad moments (issue #10), with real parts and no sleeps:

- an RTSP server (tests/rtsp_server.py) killed and brought back, and frozen with SIGSTOP;
- ``auto`` with no camera, then a camera that appears (a fake camera probe);
- two daemons on one status path;
- a 1080p file generated here: the ring's own byte count stays within source.ring_mb.

Waits are on the recording sink, on log records and on thread joins; the subprocess test polls the
lock file another process writes (the one place a short wait loop is used, as in test_daemon.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
import yaml
from conftest import REPO
from rtsp import RtspServer, shared_long_clip

from edge import cli
from edge.capture.auto import AutoSource
from edge.capture.fake import FakeSource
from edge.daemon import Daemon
from edge.service import Notifier


def start(daemon: Daemon, ready: bool = True) -> threading.Thread:
    """daemon.run() on a thread; with ``ready``, wait for its first prediction (its sinks are built by then)."""
    th = threading.Thread(target=daemon.run, kwargs={"install_signals": False}, name="test-daemon")
    th.start()
    if ready:
        assert daemon.ready.wait(60), "no first prediction"
    return th


def stop(daemon: Daemon, th: threading.Thread) -> None:
    daemon.stop()
    th.join(20)
    assert not th.is_alive(), "the daemon did not stop"


def log_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --------------------------------------------------------------------------- RTSP: killed and back, frozen


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return shared_long_clip(tmp_path_factory.mktemp("rtsp"), seconds=120)


@pytest.fixture
def server(clip):
    srv = RtspServer(clip).start()
    yield srv
    srv.kill()


def rtsp_config(tiny_config, tmp_path, url: str, labels: list[str], **source):
    # one rule on every label: its score is always 1, so an event is active across the outage
    return tiny_config(source={"kind": "rtsp", "spec": url, "reopen_min_seconds": 0.2, "reopen_max_seconds": 1.0,
                               "stall_seconds": 2.0, **source},
                       watch=[{"name": "any", "labels": labels, "enter": 0.5, "exit": 0.4}],
                       sinks=[{"type": "record", "queue": 10000},
                              {"type": "log", "path": str(tmp_path / "edge.jsonl"), "prediction_every": 0}])


def test_rtsp_server_killed_and_back(server, tiny_config, tiny_labels_path, recorder, tmp_path, on_log):
    labels = tiny_labels_path.read_text().split()
    daemon = Daemon(rtsp_config(tiny_config, tmp_path, server.url, labels, gap_reset_seconds=1.0),
                    notifier=Notifier(address=""))
    lost = on_log("reopening in")
    th = start(daemon)
    try:
        assert recorder.sink.wait_for(lambda ps: len(ps) >= 5, timeout=30), "no predictions from the stream"
        server.kill()
        assert lost.event.wait(30), "the daemon did not notice the server went away"
        assert daemon.snapshot()["source"]["state"] != "ok"
        before = len(recorder.sink.predictions)
        server.start()  # back on the same port
        assert recorder.sink.wait_for(lambda ps: len(ps) >= before + 5, timeout=30), "predictions did not resume"
        snap = daemon.snapshot()
        assert snap["source"]["state"] == "ok" and snap["source"]["reopens"] >= 1
    finally:
        stop(daemon, th)
    ts = [p.t for p in recorder.sink.predictions]
    assert ts == sorted(ts), "t went back across the reconnect"
    lines = log_lines(tmp_path / "edge.jsonl")
    ends = [d for d in lines if d["kind"] == "event" and d.get("phase") == "end"]
    assert ends, "the rule's event never ended (reset at the gap, or stopped)"
    assert all(d["duration"] >= 0 for d in ends), ends
    assert {d.get("src") for d in lines if d["kind"] in ("prediction", "event")} == {"127.0.0.1:%d/clip" % server.port}


def test_rtsp_server_frozen_is_stalled_then_reopened_by_the_daemon(server, tiny_config, tiny_labels_path, recorder,
                                                                    tmp_path, on_log):
    labels = tiny_labels_path.read_text().split()
    daemon = Daemon(rtsp_config(tiny_config, tmp_path, server.url, labels), notifier=Notifier(address=""))
    stalled = on_log("(stalled)")
    th = start(daemon)
    try:
        assert recorder.sink.wait_for(lambda ps: len(ps) >= 5, timeout=30)
        frozen_at = time.monotonic()
        server.freeze()
        assert stalled.event.wait(30), "a frozen stream was never called stalled"
        assert stalled.at - frozen_at < 2.0 + 3.0  # stall_seconds, plus what the decoder had buffered
        snap = daemon.snapshot()
        assert snap["source"]["state"] in ("stalled", "reopening")
        assert snap["healthy"], "the watchdog would kill a daemon that is handling the stall itself"
        before = len(recorder.sink.predictions)
        server.thaw()
        assert recorder.sink.wait_for(lambda ps: len(ps) >= before + 5, timeout=30), "predictions did not resume"
        assert daemon.stats.stalls >= 1
    finally:
        server.thaw()
        stop(daemon, th)
    ts = [p.t for p in recorder.sink.predictions]
    assert ts == sorted(ts)


# --------------------------------------------------------------------------- auto: no camera, then one


class Camera:
    """A camera probe for AutoSource: nothing until ``plug()``, then a fake camera with frames."""

    def __init__(self) -> None:
        self.present = threading.Event()
        self.looked = threading.Event()

    def __call__(self, width, height, fps):
        self.looked.set()
        if not self.present.is_set():
            return "fake camera (not plugged in)"
        frames = ((k * 0.1, (255, 0, 0) if k % 2 else (250, 0, 0)) for k in range(100000))
        return FakeSource(frames, realtime=True, fps=10, interval=0.02, name="fake-camera")


def test_auto_with_no_camera_waits_says_so_and_picks_up_one_that_appears(tiny_config, recorder, on_log, tmp_path):
    import socket

    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(20)
    camera = Camera()
    daemon = Daemon(tiny_config(source={"kind": "auto", "reopen_min_seconds": 0.1, "reopen_max_seconds": 0.2}),
                    notifier=Notifier(address=str(sock_path)),
                    source_factory=lambda cfg: AutoSource(probes=[camera]))
    daemon.WAIT_FOR_SOURCE = 0.5
    none = on_log("no camera found, tried: fake camera (not plugged in)")
    th = start(daemon, ready=False)
    try:
        assert none.event.wait(20), "the daemon did not say what it tried"
        message = sock.recv(4096).decode()
        assert "READY=1" in message and "STATUS=waiting for a camera" in message, message
        assert daemon.snapshot()["source"]["state"] != "ok" and th.is_alive()  # waiting, not exited
        camera.present.set()
        assert daemon.ready.wait(30), "the camera that appeared was not used"
        assert recorder.sink.wait_for(lambda ps: len(ps) >= 3, timeout=30), "the camera that appeared was not used"
        assert daemon.snapshot()["source"]["name"] == "fake-camera"
    finally:
        stop(daemon, th)
        sock.close()
    assert daemon.exit_code == 0


# --------------------------------------------------------------------------- one daemon per status path


def test_a_second_daemon_on_one_status_path_exits_2_naming_the_first(tmp_path, tiny_model_path, tiny_labels_path,
                                                                       make_video, capsys):
    video = make_video(tmp_path / "v.mp4", (255, 0, 0), seconds=2.0, fps=10)
    status = tmp_path / "status.json"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"name": str(tiny_model_path), "labels": str(tiny_labels_path)},
                                   "source": {"kind": "file", "spec": str(video), "loop": True},
                                   "sinks": [{"type": "log", "path": str(tmp_path / "first.jsonl")}],
                                   "status": {"path": str(status)}}))
    once = tmp_path / "once.yaml"  # the same, played once: the runs below end by themselves
    once.write_text(cfg.read_text().replace("loop: true", "loop: false"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen([sys.executable, "-m", "edge", "run", "-c", str(cfg)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        lock = tmp_path / "status.json.lock"
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < deadline:
            try:
                first.wait(timeout=0.1)
                pytest.fail(f"the first daemon ended: {first.stderr.read()}")
            except subprocess.TimeoutExpired:
                pass
        assert lock.read_text().strip() == str(first.pid)
        code = cli.main(["run", "-c", str(cfg), "--log", str(tmp_path / "second.jsonl")])
        err = capsys.readouterr().err
        assert code == 2
        lines = [line for line in err.splitlines() if line.startswith("edge: error: ")]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert f"pid {first.pid}" in lines[0] and str(status) in lines[0] and "--status" in lines[0]
        assert not (tmp_path / "second.jsonl").exists()  # it wrote nothing
        # with its own status path it runs beside the first
        other = tmp_path / "other.json"
        proc = subprocess.run([sys.executable, "-m", "edge", "run", "-c", str(once), "--status", str(other), "--fast",
                               "--log", str(tmp_path / "second.jsonl")],
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(other.read_text())["pid"] != first.pid
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
    assert lock.exists()  # left in place (removing a lock file races the next daemon); the lock itself is gone
    code = cli.main(["run", "-c", str(once), "--fast", "--log", str(tmp_path / "third.jsonl")])
    assert code == 0, capsys.readouterr().err


# --------------------------------------------------------------------------- memory: a 1080p clip made here


def test_a_1080p_file_keeps_the_ring_within_its_byte_budget(tiny_config, recorder, tmp_path):
    path = tmp_path / "hd.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (1920, 1080))
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (1080, 1920, 3), np.uint8)
    for k in range(50):
        writer.write(np.roll(noise, k * 8, axis=1))
    writer.release()
    budget_mb = 4.0
    daemon = Daemon(tiny_config(source={"kind": "file", "spec": str(path), "ring_mb": budget_mb, "ring_seconds": 30}),
                    notifier=Notifier(address=""))
    th = start(daemon)
    try:
        most = 0
        while th.is_alive() and not daemon.finished.is_set():
            most = max(most, daemon.ring.bytes)
            assert daemon.ring.bytes <= budget_mb * 2**20
            daemon.finished.wait(0.05)
        snap = daemon.snapshot()
    finally:
        stop(daemon, th)
    frame_bytes = 640 * 360 * 3  # 1920x1080 fitted inside 640x480
    assert daemon.stats.frame_hw == (360, 640)
    assert most >= int(budget_mb * 2**20 // frame_bytes) * frame_bytes  # the ring filled to its budget, no further
    assert snap["ring"]["max_bytes"] == int(budget_mb * 2**20) and snap["ring"]["bytes"] <= snap["ring"]["max_bytes"]
