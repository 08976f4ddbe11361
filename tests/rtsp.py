"""A real RTSP server for tests: tests/rtsp_server.py (GStreamer rtsp-server) run with the system python3.

``RtspServer(video).start()`` serves ``video`` on ``rtsp://127.0.0.1:PORT/clip``; ``kill()`` ends it
(SIGKILL), ``start()`` again brings it back on the same port, ``freeze()``/``thaw()`` stop and continue
it (SIGSTOP/SIGCONT: a stream that stops without closing its socket). :func:`skip_reason` says why it
cannot run here (packages missing), for ``pytest.skip``.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
from pathlib import Path

SERVER = Path(__file__).resolve().parent / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"
PACKAGES = ("python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
            "gstreamer1.0-plugins-ugly gstreamer1.0-libav")
PROBE = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
         "from gi.repository import Gst; Gst.init(None); "
         "missing = [e for e in ('x264enc', 'rtph264pay', 'decodebin', 'videoconvert') "
         "if Gst.ElementFactory.find(e) is None]; print(' '.join(missing))")


@functools.lru_cache(maxsize=1)
def skip_reason() -> str | None:
    """None when the server can run here, else why not (and how to get it)."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"no {SYSTEM_PYTHON} for the GStreamer RTSP server"
    try:
        done = subprocess.run([SYSTEM_PYTHON, "-c", PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"the GStreamer RTSP server cannot be probed: {err}"
    if done.returncode != 0:
        return f"the GStreamer RTSP server is not installed (apt install {PACKAGES}; .ci/run does it)"
    if done.stdout.strip():
        return f"GStreamer elements missing: {done.stdout.strip()} (apt install {PACKAGES})"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    def __init__(self, video: Path, port: int | None = None, path: str = "/clip") -> None:
        self.video, self.port, self.path = Path(video), port or free_port(), path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.path}"

    def start(self) -> RtspServer:
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), str(self.video), "--port", str(self.port),
                                      "--path", self.path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # "ready" once it listens; "" if it died
        if line.strip() != "ready":
            self.proc.kill()
            err = self.proc.communicate(timeout=10)[1]
            raise RuntimeError(f"RTSP server did not start: {err.strip()[-500:]}")
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen one too
            self.proc.kill()
            self.proc.wait(timeout=10)

    def freeze(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()


def long_clip(clip: Path, out: Path, seconds: float = 60.0, fps: float = 25.0) -> Path:
    """``clip`` looped to ``seconds`` (MJPEG), so a stream outlasts a test; frames kept in ``out`` only."""
    from benchmarks.memory import make_source

    return make_source(clip, None, out, seconds=seconds, fps=fps)


def shared_long_clip(folder: Path, seconds: float = 60.0) -> Path:
    """The shared carving_ice clip looped to ``seconds`` in ``folder``, or pytest.skip with the reason."""
    import pytest

    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    shared = Path(__file__).resolve().parents[2] / "shared" / "videos" / "carving_ice.mp4"
    if not shared.is_file():
        pytest.skip(f"shared clip {shared} not found")
    return long_clip(shared, folder / "long.avi", seconds=seconds)
