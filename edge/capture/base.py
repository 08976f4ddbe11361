"""The FrameSource protocol and the factory that picks one from the config.

A frame carries RGB uint8 pixels (channel order is fixed once, in the source), a
capture timestamp in seconds since the source started (video time for files)
and a sequence number. ``read()`` returns the next frame, ``None`` at the end of
a file, and raises :class:`SourceError` when a camera stops delivering; the
daemon then reopens it with backoff.
"""

from __future__ import annotations

import logging
import re
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


_SECRET_KEYS = re.compile(r"(?i)([?&;](?:password|passwd|pwd|pass|token|key|secret|auth)[^=&;]*=)[^&;#]*")


def redact(spec: str | None) -> str:
    """A source spec fit to show anyone: a URL loses its userinfo and the values of query keys
    that look like secrets (``rtsp://admin:pw@cam/s?token=x`` -> ``rtsp://cam/s?token=***``).

    Every name a source gets goes through here, so log lines, status.json, events and clip
    metadata never carry the password config.yaml keeps 0640 for.
    """
    if not spec:
        return ""
    scheme, sep, rest = spec.partition("://")
    if not sep:
        return spec
    # userinfo ends at the last '@' before the query: a password may hold an unencoded '/' (or '@'),
    # so a path holding '@' is cut too: a shorter name, never a leaked secret
    head = min(i for i in (rest.find("?"), rest.find("#"), len(rest)) if i >= 0)
    rest = rest[rest.rfind("@", 0, head) + 1:]
    return f"{scheme}://" + _SECRET_KEYS.sub(r"\1***", rest)


def fit_within(width: int, height: int, max_width: int, max_height: int) -> tuple[int, int] | None:
    """The size (w, h) a ``width`` x ``height`` frame is scaled to so it fits ``max_width`` x ``max_height``
    with its aspect kept, or None when it already fits (or no limit is set)."""
    if max_width <= 0 or max_height <= 0 or (width <= max_width and height <= max_height):
        return None
    scale = min(max_width / width, max_height / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


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
