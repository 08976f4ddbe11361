"""Frame sources and the factory that builds the configured one.

    open_source(kind, spec) --> PicameraSource (picamera.py)   a Pi CSI camera
                            --> OpenCVSource   (opencv.py)     a V4L2 device, a video file, an RTSP stream
    FakeSource (fake.py): frames from a list or generator, for tests and dry runs
    CaptureSupervisor (supervisor.py): the capture thread that reads one into the ring

The implementations are imported only when the factory builds one, so a board
without picamera2 (or a laptop) never imports it.
"""

from __future__ import annotations

from pathlib import Path

from edge.capture.base import Frame, FrameSource, SourceError, describe_spec
from edge.errors import EdgeError


def _camera_timeout(fps: float) -> float:
    from edge.capture.supervisor import read_timeout

    return read_timeout(fps)


def open_source(kind: str, spec: str | None, *, width: int = 640, height: int = 480, fps: float = 15.0,
                loop: bool = False, paced: bool = True, timeout: float = 5.0) -> FrameSource:
    """Build (not yet open) the configured source. ``auto`` probes picamera2, then V4L2.

    Every kind delivers frames of at most ``width`` x ``height`` (aspect kept); ``timeout`` is how long
    a stream's open or read may block before it counts as stalled."""
    if kind == "auto" and spec not in (None, "auto"):
        kind = describe_spec(spec)
    if kind == "file":
        if not spec:
            raise EdgeError("source.kind is file but source.spec (the video path) is empty")
        from edge.capture.opencv import OpenCVSource

        return OpenCVSource.file(spec, loop=loop, paced=paced, width=width, height=height)
    if kind == "rtsp":
        if not spec:
            raise EdgeError("source.kind is rtsp but source.spec (the URL) is empty")
        from edge.capture.opencv import OpenCVSource

        return OpenCVSource.stream(spec, width=width, height=height, timeout=timeout)
    if kind == "v4l2":
        from edge.capture.opencv import OpenCVSource

        return OpenCVSource.device(spec or "0", width=width, height=height, fps=fps)
    if kind == "picamera2":
        from edge.capture.picamera import PicameraSource

        return PicameraSource(width=width, height=height, fps=fps, timeout=_camera_timeout(fps))
    if kind == "auto":
        return _auto(width, height, fps)
    raise EdgeError(f"unknown source kind {kind!r} (known: auto, picamera2, v4l2, file, rtsp)")


def _auto(width: int, height: int, fps: float) -> FrameSource:
    tried = []
    from edge.capture.picamera import PicameraSource, camera_present

    present, why = camera_present()
    if present:
        return PicameraSource(width=width, height=height, fps=fps, timeout=_camera_timeout(fps))
    tried.append(f"picamera2 ({why})")
    devices = sorted(Path("/dev").glob("video[0-9]*"), key=lambda p: int(p.name[5:]))
    if devices:
        from edge.capture.opencv import OpenCVSource

        return OpenCVSource.device(str(devices[0]), width=width, height=height, fps=fps)
    tried.append("v4l2 (no /dev/video* device)")
    raise EdgeError("no camera found, tried: " + "; ".join(tried)
                    + ": connect a camera, or set source.kind/spec (a file or an rtsp:// URL)")


__all__ = ["Frame", "FrameSource", "SourceError", "describe_spec", "open_source"]
