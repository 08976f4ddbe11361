"""Frame sources and the factory that builds the configured one.

    open_source(kind, spec) --> PicameraSource (picamera.py)   a Pi CSI camera
                            --> OpenCVSource   (opencv.py)     a V4L2 device (and files, streams without PyAV)
                            --> PyAVSource     (pyav.py)       a video file, an RTSP stream
                            --> AutoSource     (auto.py)       whichever camera is there, waited for when none is
    FakeSource (fake.py): frames from a list or generator, for tests and dry runs
    CaptureSupervisor (supervisor.py): the capture thread that reads one into the ring

The implementations are imported only when the factory builds one, so a board
without picamera2 (or a laptop) never imports it.
"""

from __future__ import annotations

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
        return _decoder().file(spec, loop=loop, paced=paced, width=width, height=height)
    if kind == "rtsp":
        if not spec:
            raise EdgeError("source.kind is rtsp but source.spec (the URL) is empty")
        return _decoder().stream(spec, width=width, height=height, timeout=timeout)
    if kind == "v4l2":
        from edge.capture.opencv import OpenCVSource

        return OpenCVSource.device(spec or "0", width=width, height=height, fps=fps)
    if kind == "picamera2":
        from edge.capture.picamera import PicameraSource

        return PicameraSource(width=width, height=height, fps=fps, timeout=_camera_timeout(fps))
    if kind == "auto":
        from edge.capture.auto import AutoSource

        return AutoSource(width=width, height=height, fps=fps)  # no camera yet: waited for, like any camera
    raise EdgeError(f"unknown source kind {kind!r} (known: auto, picamera2, v4l2, file, rtsp)")


def _decoder():
    """Files and streams: PyAV where it imports (it scales while it converts: no full-size copy of a 4K
    frame), else OpenCV (a 32-bit board without python3-av)."""
    from edge.capture import pyav

    if pyav.available():
        return pyav.PyAVSource
    from edge.capture.opencv import OpenCVSource

    return OpenCVSource


__all__ = ["Frame", "FrameSource", "SourceError", "describe_spec", "open_source"]
