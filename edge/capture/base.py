"""The FrameSource protocol and the factory that picks one from the config.

A frame carries RGB uint8 pixels (channel order is fixed once, in the source), a
capture timestamp in seconds since the source started (video time for files)
and a sequence number. ``read()`` returns the next frame, ``None`` at the end of
a file, and raises :class:`SourceError` when a camera stops delivering; the
daemon then reopens it with backoff.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edge.errors import EdgeError

logger = logging.getLogger(__name__)


@dataclass
class Frame:
    pixels: np.ndarray  # (H, W, 3) uint8 RGB
    t: float  # seconds since the source started (for files: the container's PTS)
    seq: int
    mono: float = 0.0  # time.monotonic() when the capture thread received it


class SourceError(Exception):
    """The source stopped delivering (read error, vanished device); it may come back."""


class FrameSource(Protocol):
    name: str  # e.g. "file:clip.mp4", "v4l2:/dev/video0", "picamera2"
    fps: float  # nominal frame rate (0 if unknown)
    realtime: bool  # frames arrive in real time (cameras, paced files)

    def open(self) -> None: ...

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...


def _looks_like_url(spec: str) -> bool:
    return "://" in spec


def describe_spec(spec: str | None) -> str:
    """Guess the source kind from a --source value: picamera2, a URL, a device or a file."""
    if spec is None or spec == "auto":
        return "auto"
    if spec == "picamera2":
        return "picamera2"
    if _looks_like_url(spec):
        return "rtsp"
    if spec.isdigit() or spec.startswith("/dev/video"):
        return "v4l2"
    return "file"


def open_source(kind: str, spec: str | None, *, width: int = 640, height: int = 480, fps: float = 15.0,
                loop: bool = False, paced: bool = True) -> FrameSource:
    """Build (not yet open) the configured source. ``auto`` probes picamera2, then V4L2."""
    if kind == "auto" and spec not in (None, "auto"):
        kind = describe_spec(spec)
    if kind == "file":
        if not spec:
            raise EdgeError("source.kind is file but source.spec (the video path) is empty")
        from edge.capture.opencv import OpenCVSource

        return OpenCVSource.file(spec, loop=loop, paced=paced)
    if kind == "rtsp":
        if not spec:
            raise EdgeError("source.kind is rtsp but source.spec (the URL) is empty")
        from edge.capture.opencv import OpenCVSource

        return OpenCVSource.stream(spec)
    if kind == "v4l2":
        from edge.capture.opencv import OpenCVSource

        return OpenCVSource.device(spec or "0", width=width, height=height, fps=fps)
    if kind == "picamera2":
        from edge.capture.picamera import PicameraSource

        return PicameraSource(width=width, height=height, fps=fps)
    if kind == "auto":
        return _auto(width, height, fps)
    raise EdgeError(f"unknown source kind {kind!r} (known: auto, picamera2, v4l2, file, rtsp)")


def _auto(width: int, height: int, fps: float) -> FrameSource:
    tried = []
    from edge.capture.picamera import PicameraSource, camera_present

    present, why = camera_present()
    if present:
        return PicameraSource(width=width, height=height, fps=fps)
    tried.append(f"picamera2 ({why})")
    devices = sorted(Path("/dev").glob("video[0-9]*"), key=lambda p: int(p.name[5:]))
    if devices:
        from edge.capture.opencv import OpenCVSource

        return OpenCVSource.device(str(devices[0]), width=width, height=height, fps=fps)
    tried.append("v4l2 (no /dev/video* device)")
    raise EdgeError("no camera found, tried: " + "; ".join(tried)
                    + ": connect a camera, or set source.kind/spec (a file or an rtsp:// URL)")
